"""Errors of the control API: `{"error": CODE, "detail": message}` with a fitting 4xx (SPEC §5)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import ProtectedError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.engine.errors import EngineError

ENGINE_STATUS = {
    "TASK_NOT_FOUND": status.HTTP_404_NOT_FOUND,
    "INVALID_PARAMETERS": status.HTTP_400_BAD_REQUEST,
    "INVALID_JOB": status.HTTP_409_CONFLICT,
    "JOB_DISABLED": status.HTTP_409_CONFLICT,
    "JOB_ALREADY_RUNNING": status.HTTP_409_CONFLICT,
    "NOT_ACTIVE": status.HTTP_409_CONFLICT,
    "NOT_KILLABLE": status.HTTP_409_CONFLICT,
    "KILL_FAILED": status.HTTP_409_CONFLICT,
    "NOT_RESTARTABLE": status.HTTP_409_CONFLICT,
    "NO_LOG": status.HTTP_409_CONFLICT,
}

DRF_CODES = [
    (exceptions.NotAuthenticated, "UNAUTHORIZED"),
    (exceptions.AuthenticationFailed, "UNAUTHORIZED"),
    (exceptions.PermissionDenied, "FORBIDDEN"),
    (exceptions.NotFound, "NOT_FOUND"),
    (exceptions.MethodNotAllowed, "METHOD_NOT_ALLOWED"),
    (exceptions.NotAcceptable, "NOT_ACCEPTABLE"),
    (exceptions.UnsupportedMediaType, "UNSUPPORTED_MEDIA_TYPE"),
    (exceptions.ParseError, "MALFORMED_REQUEST"),
    (exceptions.Throttled, "THROTTLED"),
    (exceptions.ValidationError, "INVALID_INPUT"),
]


def flatten(detail, prefix: str = "") -> list[str]:
    """DRF's nested error detail as "field: message" lines."""
    if isinstance(detail, dict):
        return [line for key, value in detail.items()
                for line in flatten(value, f"{prefix}{key}: " if key != "non_field_errors" else prefix)]
    if isinstance(detail, list):
        return [line for item in detail for line in flatten(item, prefix)]
    return [f"{prefix}{detail}"]


def error_response(code: str, detail: str, http_status: int, fields=None) -> Response:
    body = {"error": code, "detail": detail}
    if fields is not None:
        body["fields"] = fields
    return Response(body, status=http_status)


def exception_handler(exc, context):
    if isinstance(exc, EngineError):
        return error_response(exc.code, exc.message, ENGINE_STATUS.get(exc.code, status.HTTP_400_BAD_REQUEST))
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    # Django's own exceptions, as DRF turns them into its own (which carry the `detail` read below).
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    if isinstance(exc, ProtectedError):
        return error_response("IN_USE", "It is still referenced (a job with executions, an application with "
                              "jobs): disable it instead, or remove what refers to it first.", status.HTTP_409_CONFLICT)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = next((name for kind, name in DRF_CODES if isinstance(exc, kind)), "ERROR")
    if isinstance(exc, exceptions.ValidationError):
        return error_response(code, "; ".join(flatten(exc.detail)), response.status_code, fields=exc.detail)
    response.data = {"error": code, "detail": "; ".join(flatten(exc.detail))}
    return response


class ErrorSerializer(serializers.Serializer):
    """The body of every control-API error."""

    error = serializers.CharField(help_text="A code: NOT_FOUND, INVALID_INPUT, JOB_ALREADY_RUNNING, IN_USE, …")
    detail = serializers.CharField(help_text="What went wrong, for a person.")
    fields = serializers.JSONField(required=False, help_text="INVALID_INPUT only: the messages per field.")
