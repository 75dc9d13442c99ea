"""The control API's OpenAPI schema documents the errors each operation can answer (SPEC §5: a
fitting 4xx, `{"error": CODE, "detail": message}`), so that clients and schemathesis know them."""

from __future__ import annotations

from drf_spectacular.openapi import AutoSchema

from apps.api.errors import ErrorSerializer

WRITES = {"POST", "PUT", "PATCH"}


class ControlApiSchema(AutoSchema):
    """Adds 400/401/403/404 where they can happen; codes an operation declares itself (409s) win."""

    def _get_response_bodies(self, direction="response"):
        # drf-spectacular has no public hook for responses every operation shares; this is the
        # method extensions such as drf-standardized-errors override for the same purpose.
        responses = super()._get_response_bodies(direction)
        for code in self.error_statuses():
            response = self._get_response_for_code(ErrorSerializer, str(code), direction=direction)
            responses.setdefault(str(code), response)
        return responses

    def error_statuses(self) -> list[int]:
        codes = [401, 403]  # no credentials; a role that does not allow it
        if self.method in WRITES or self.get_override_parameters():
            codes.append(400)  # a body or a filter that does not validate
        if "{" in self.path or getattr(self.view, "action", None) == "list":
            codes.append(404)  # no such object; a page past the end
        return sorted(codes)
