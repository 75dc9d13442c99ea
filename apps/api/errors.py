"""Errors of the control API: `{"error": CODE, "detail": message}` with a fitting 4xx (SPEC §5)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import Http404
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.errors import BatchError, ErrorCode

DRF_CODES = [
    (exceptions.NotAuthenticated, ErrorCode.UNAUTHORIZED),
    (exceptions.AuthenticationFailed, ErrorCode.UNAUTHORIZED),
    (exceptions.PermissionDenied, ErrorCode.FORBIDDEN),
    (exceptions.NotFound, ErrorCode.NOT_FOUND),
    (exceptions.MethodNotAllowed, ErrorCode.METHOD_NOT_ALLOWED),
    (exceptions.NotAcceptable, ErrorCode.NOT_ACCEPTABLE),
    (exceptions.UnsupportedMediaType, ErrorCode.UNSUPPORTED_MEDIA_TYPE),
    (exceptions.ParseError, ErrorCode.MALFORMED_REQUEST),
    (exceptions.Throttled, ErrorCode.THROTTLED),
    (exceptions.ValidationError, ErrorCode.INVALID_INPUT),
]


def flatten(detail, prefix: str = "") -> list[str]:
    """DRF's nested error detail as "field: message" lines."""
    if isinstance(detail, dict):
        return [line for key, value in detail.items()
                for line in flatten(value, f"{prefix}{key}: " if key != "non_field_errors" else prefix)]
    if isinstance(detail, list):
        return [line for item in detail for line in flatten(item, prefix)]
    return [f"{prefix}{detail}"]


def error_response(code: ErrorCode, detail: str | None = None, http_status: int | None = None,
                   fields=None) -> Response:
    body = {"error": str(code), "detail": detail or code.message}
    if fields is not None:
        body["fields"] = fields
    return Response(body, status=http_status or code.status)


def exception_handler(exc, context):
    if isinstance(exc, BatchError):
        return error_response(exc.code, exc.message)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    # Django's own exceptions, as DRF turns them into its own (which carry the `detail` read below).
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, ProtectedError):
        return error_response(ErrorCode.IN_USE, in_use_detail(exc))
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((name for kind, name in DRF_CODES if isinstance(exc, kind)), ErrorCode.INVALID_INPUT)
    if isinstance(exc, exceptions.ValidationError):
        return error_response(code, "; ".join(flatten(exc.detail)), response.status_code, fields=exc.detail)
    response.data = {"error": str(code), "detail": "; ".join(flatten(exc.detail))}
    return response


def in_use_detail(exc: ProtectedError) -> str:
    """Name up to 10 of what still refers to the object, so the operator knows where to look."""
    blockers = sorted(f"{type(obj)._meta.verbose_name} {obj}" for obj in exc.protected_objects)
    named = ", ".join(blockers[:10])
    more = f" and {len(blockers) - 10} more" if len(blockers) > 10 else ""
    return f"{ErrorCode.IN_USE.message} Still used by: {named}{more}."


class ErrorSerializer(serializers.Serializer):
    """The body of every control-API error."""

    error = serializers.CharField(help_text="A code: NOT_FOUND, INVALID_INPUT, JOB_ALREADY_RUNNING, IN_USE, …")
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    fields = serializers.JSONField(required=False, help_text="INVALID_INPUT only: the messages per field.")
