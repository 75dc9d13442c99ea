"""The Sunbird background-tasks contract (SPEC §5.1): the envelope to the letter, errors too."""

from __future__ import annotations

import json
import uuid

from django.db.models import Exists, OuterRef
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiTypes,
    extend_schema,
    inline_serializer,
)
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.api.permissions import BatchPermission
from apps.catalog import validators
from apps.catalog.models import JobDefinition
from apps.engine import services
from apps.engine.models import Execution, Status, Trigger
from apps.errors import BatchError, ErrorCode
from apps.scheduling.models import next_fire_of_job

ERRORS = {
    "TASK_NOT_FOUND": (status.HTTP_404_NOT_FOUND, "RESOURCE_NOT_FOUND"),
    "UNAUTHORIZED": (status.HTTP_401_UNAUTHORIZED, "UNAUTHORIZED"),
    "FORBIDDEN": (status.HTTP_403_FORBIDDEN, "FORBIDDEN"),
}
CLIENT_ERROR = (status.HTTP_400_BAD_REQUEST, "CLIENT_ERROR")


def timestamp() -> str:
    """`YYYY-MM-DD HH:MM:SS:mmm+hhmm` in the installation's zone."""
    now = timezone.localtime()
    return f"{now:%Y-%m-%d %H:%M:%S}:{now.microsecond // 1000:03d}{now:%z}"


def envelope(api_id: str, request, *, result=None, err: str | None = None, errmsg: str | None = None,
             response_code: str = "OK") -> dict:
    return {
        "id": api_id,
        "ver": "v1",
        "ts": timestamp(),
        "params": {
            "resmsgid": str(uuid.uuid4()),
            "msgid": (request.headers.get("X-Request-ID") or "")[:128] or str(uuid.uuid4()),
            "err": err,
            "status": "failure" if err else "success",
            "errmsg": errmsg,
        },
        "responseCode": response_code,
        "result": result if result is not None else {},
    }


class EnvelopeView(APIView):
    """Every answer, 401 and 403 included, in the Sunbird envelope."""

    api_id = ""

    def handle_exception(self, exc):
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            code, message = "UNAUTHORIZED", str(exc.detail)
        elif isinstance(exc, exceptions.PermissionDenied):
            code, message = "FORBIDDEN", str(exc.detail)  # the role's refusal, or "CSRF Failed: …"
        elif isinstance(exc, BatchError):
            code, message = exc.code, exc.message
        elif isinstance(exc, (exceptions.ParseError, exceptions.UnsupportedMediaType)):
            code, message = "INVALID_PARAMETERS", f"The body must be empty or JSON {{\"parameters\": \"k=v||k2=v2\"}}: {exc.detail}"
        elif isinstance(exc, exceptions.APIException):
            # Whatever else DRF refuses (a method not allowed, an Accept it cannot serve) keeps
            # its status, in the envelope like every other error of these endpoints.
            return self._respond(exc.default_code.upper(), str(exc.detail), exc.status_code, CLIENT_ERROR[1])
        else:
            raise exc
        return self._respond(code, message, *ERRORS.get(code, CLIENT_ERROR))

    def _respond(self, code: str, message: str, http_status: int, response_code: str) -> Response:
        response = Response(envelope(self.api_id, self.request, err=code, errmsg=message, response_code=response_code),
                            status=http_status)
        if http_status == status.HTTP_401_UNAUTHORIZED:
            response["WWW-Authenticate"] = 'Token realm="api"'
        return response


class BackgroundTaskSerializer(serializers.Serializer):
    """For the schema: one item of the list."""

    taskGroup = serializers.CharField(help_text="The job's application.")
    taskName = serializers.CharField(help_text="The job's name.")
    description = serializers.CharField()
    jobType = serializers.CharField()
    enabled = serializers.BooleanField()
    running = serializers.BooleanField()
    nextRun = serializers.DateTimeField(allow_null=True)
PARAMS = inline_serializer("EnvelopeParams", {
    "resmsgid": serializers.UUIDField(), "msgid": serializers.CharField(),
    "err": serializers.CharField(allow_null=True), "status": serializers.ChoiceField(["success", "failure"]),
    "errmsg": serializers.CharField(allow_null=True),
})


def envelope_schema(name: str, result) -> serializers.Serializer:
    return inline_serializer(name, {
        "id": serializers.CharField(), "ver": serializers.CharField(), "ts": serializers.CharField(),
        "params": PARAMS, "responseCode": serializers.CharField(), "result": result,
    })


# One component per status, shared by both endpoints: `result` is {} in an error.
ERROR_ENVELOPES = {code: envelope_schema(f"BackgroundTaskError{code}", serializers.DictField())
                   for code in (400, 401, 403, 404)}

REQUEST_ID = OpenApiParameter("X-Request-ID", OpenApiTypes.STR, OpenApiParameter.HEADER, required=False,
                              description="Echoed as params.msgid.")


class BackgroundTaskList(EnvelopeView):
    """Every job definition known to the scheduler, read from the database."""

    api_id = "api.backgroundtasks.read"
    permission_classes = [BatchPermission]
    permission_required = "catalog.view_jobdefinition"

    @extend_schema(
        operation_id="backgroundtasks_list", parameters=[REQUEST_ID],
        responses={
            200: envelope_schema("BackgroundTasksRead", inline_serializer(
                "BackgroundTasksResult", {"response": BackgroundTaskSerializer(many=True)})),
            401: ERROR_ENVELOPES[401],
            403: ERROR_ENVELOPES[403],
        },
    )
    def get(self, request):
        running = Execution.objects.filter(job=OuterRef("pk"), status=Status.RUNNING)
        jobs = (JobDefinition.objects.order_by("application__name", "name").with_type_name()
                .annotate(running=Exists(running), next_run=next_fire_of_job())
                .values_list("application__name", "name", "description", "type_name", "enabled", "running", "next_run"))
        tasks = [
            {"taskGroup": group, "taskName": name, "description": description, "jobType": job_type,
             "enabled": enabled, "running": is_running, "nextRun": nxt.isoformat() if nxt else None}
            for group, name, description, job_type, enabled, is_running, nxt in jobs
        ]
        return Response(envelope(self.api_id, request, result={"response": tasks}))


class TriggerBackgroundTask(EnvelopeView):
    """Trigger a job now; administrators only."""

    api_id = "api.backgroundtasks.trigger"
    permission_classes = [BatchPermission]
    permission_required = "catalog.trigger_jobdefinition"
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="backgroundtasks_trigger", parameters=[REQUEST_ID],
        request=inline_serializer("TriggerRequest", {"parameters": serializers.CharField(required=False)}),
        responses={
            200: envelope_schema("BackgroundTaskTriggered", inline_serializer(
                "TriggerResult", {"response": serializers.CharField(), "executionId": serializers.IntegerField()})),
            **ERROR_ENVELOPES,
        },
    )
    def post(self, request, task_name: str):
        if not validators.job_name.regex.search(task_name):
            # No job can have this name; asking the database (PostgreSQL refuses a NUL) is pointless.
            raise BatchError(ErrorCode.TASK_NOT_FOUND, f"No job named {task_name[:100]!r}.")
        execution = services.trigger_by_name(
            task_name, parameters=self._parameters(request), trigger=Trigger.API,
            triggered_by=request.user.get_username(),
        )
        return Response(envelope(self.api_id, request, result={"response": "SUCCESS", "executionId": execution.pk}))

    @staticmethod
    def _parameters(request) -> str:
        if not request.body.strip():
            return ""
        data = request.data
        if not isinstance(data, dict):
            raise BatchError(ErrorCode.INVALID_PARAMETERS, "The body must be a JSON object: {\"parameters\": \"k=v||k2=v2\"}.")
        parameters = data.get("parameters", "")
        if parameters is None:
            return ""
        if not isinstance(parameters, str):
            raise BatchError(ErrorCode.INVALID_PARAMETERS, f"parameters must be a string like \"k=v||k2=v2\", not {json.dumps(parameters)[:100]}.")
        if "\x00" in parameters:
            raise BatchError(ErrorCode.INVALID_PARAMETERS, "parameters must not contain null characters.")
        return parameters
