"""The control API of SPEC §5.2: thin views over the catalog, engine, scheduling and agents services."""

from __future__ import annotations

import re
import zoneinfo
from datetime import UTC

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiTypes,
    extend_schema,
    extend_schema_view,
    inline_serializer,
)
from rest_framework import mixins, pagination, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from apps import audit
from apps.agents import services as agents
from apps.agents.models import Agent, AgentKind
from apps.api import serializers as s
from apps.api.errors import ErrorSerializer
from apps.api.permissions import BatchPermission
from apps.api.schema import ControlApiSchema
from apps.catalog import services as catalog
from apps.catalog.models import Application, Flow, JobDefinition, JobType
from apps.console.health import health_report
from apps.console.paging import EstimatedCountPaginator
from apps.engine import services as engine
from apps.engine.models import Execution, Status, Trigger
from apps.errors import BatchError, ErrorCode
from apps.flows import services as flows
from apps.flows.models import FlowRun, RunStatus
from apps.scheduling import services as scheduling
from apps.scheduling import timing
from apps.scheduling.models import Schedule, next_fire_of_job


class Pages(pagination.PageNumberPagination):
    # Exact counts up to 10,000 rows, PostgreSQL's estimate beyond (a COUNT(*) of a million
    # executions cost more than the page itself).
    django_paginator_class = EstimatedCountPaginator
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class CountedPages(Pages):
    # An exact count, whatever the number of rows: for flow runs, a row per flow and business date
    # (10,000 in a month of a busy console), whose COUNT is an index scan of milliseconds. Past
    # EXACT_UP_TO the estimating paginator asks an EXPLAIN more: the page's queries would change.
    django_paginator_class = Paginator


class BatchViewSet(viewsets.GenericViewSet):
    permission_classes = [BatchPermission]
    action_permissions: dict[str, str | dict[str, str]] = {}
    pagination_class = Pages
    schema = ControlApiSchema()

    def username(self) -> str:
        return self.request.user.get_username()

    # Every write through the API goes into the audit trail, in the transaction of the write.

    def perform_create(self, serializer) -> None:
        with transaction.atomic():
            super().perform_create(serializer)
            self.audit("create", serializer.instance, serializer)

    def perform_update(self, serializer) -> None:
        with transaction.atomic():
            super().perform_update(serializer)
            self.audit("edit", serializer.instance, serializer)

    def perform_destroy(self, instance) -> None:
        with transaction.atomic():
            audit.record(self.username(), "delete", instance, "through the API")
            super().perform_destroy(instance)

    def audit(self, action: str, instance, serializer=None) -> None:
        """Record a write: who, what, and which fields it carried (names only: never a value, so
        never a secret)."""
        given = getattr(serializer, "initial_data", None)
        fields = sorted(name for name in given if name in serializer.fields) if isinstance(given, dict) else []
        audit.record(self.username(), action, instance,
                     f"through the API: {', '.join(fields)}" if fields else "through the API")

    def get_success_headers(self, data) -> dict:
        # DRF would send the body's "url" as Location: for a job type that is the external
        # system's base URL, not this resource (and a newline in it made the answer a 500).
        return {}


def text(params, name: str) -> str | None:
    """A text filter from the query string; a NUL, which no stored text holds (and PostgreSQL
    refuses), is a bad request rather than a database error."""
    value = params.get(name)
    if value and "\x00" in value:
        raise ValidationError({name: "Null characters are not allowed."})
    return value or None


def one_of(value: str | None, choices, name: str) -> str | None:
    if value in (None, ""):
        return None
    if value not in choices:
        raise ValidationError({name: f"{value!r} is not one of {', '.join(choices)}."})
    return value


def a_date(value: str, name: str):
    try:
        parsed = parse_date(value)
    except ValueError:  # well formed but impossible: 2026-02-30
        parsed = None
    if parsed is None:
        raise ValidationError({name: f"{value[:40]!r} is not a date such as 2026-12-01."})
    return parsed


def moment(value: str | None, name: str):
    if value in (None, ""):
        return None
    try:
        # parse_datetime answers None for a malformed value but raises ValueError for a
        # well-formed impossible one (month 13, offset +99:00); the shift to UTC that the
        # database needs can overflow at the ends of the calendar.
        parsed = parse_datetime(value)
        if parsed is not None:
            parsed = parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed)
            return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        pass
    raise ValidationError({name: f"{value[:64]!r} is not an ISO 8601 date-time such as 2026-11-22T06:00:00Z."})


OFFSET = re.compile(r"[0-9]+")  # a log offset: ASCII digits
IN_USE = extend_schema(responses={204: None, 409: ErrorSerializer})


@extend_schema_view(destroy=IN_USE)
class ApplicationViewSet(BatchViewSet, viewsets.ModelViewSet):
    queryset = Application.objects.all()
    serializer_class = s.ApplicationSerializer
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9_-]+"
    action_permissions = {"configure": "catalog.change_application"}

    @extend_schema(responses=inline_serializer("ApplicationStats", {
        "agents": serializers.IntegerField(), "jobs": serializers.IntegerField(), "running": serializers.IntegerField()}))
    @action(detail=True, methods=["get"])
    def stats(self, request, name=None):
        app = self.get_object()
        return Response({
            # Every live cluster serves every application.
            "agents": Agent.objects.alive(AgentKind.CLUSTER).count(),
            "jobs": app.jobs.count(),
            "running": app.executions.filter(status=Status.RUNNING).count(),
        })

    @extend_schema(request=s.ConfigureSerializer, responses=s.ConfigureSerializer)
    @action(detail=True, methods=["post"])
    def configure(self, request, name=None):
        app = self.get_object()
        body = s.ConfigureSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        catalog.configure_environment(app, body.validated_data["job_types"])
        configured = {env.job_type.name: {"url": env.url, "scope": env.scope}
                      for env in app.job_type_environments.select_related("job_type")}
        return Response({"job_types": configured})


class JobTypeViewSet(BatchViewSet, viewsets.ModelViewSet):
    queryset = JobType.objects.all()
    serializer_class = s.JobTypeSerializer
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9_-]+"
    action_permissions = {"check": "catalog.check_jobtype"}

    @extend_schema(request=None, responses=inline_serializer("SystemCheck", {
        "up": serializers.BooleanField(), "status_code": serializers.IntegerField(allow_null=True),
        "checked_at": serializers.DateTimeField(), "error": serializers.CharField()}))
    @action(detail=True, methods=["post"])
    def check(self, request, name=None):
        result = engine.system_check(self.get_object())
        return Response({"up": result.up, "status_code": result.status_code, "checked_at": result.checked_at,
                         "error": result.error})


JOB_FILTERS = [
    OpenApiParameter("application", OpenApiTypes.STR), OpenApiParameter("job_type", OpenApiTypes.STR),
    OpenApiParameter("q", OpenApiTypes.STR, description="Text in the name or description."),
]


@extend_schema_view(destroy=IN_USE)
class JobViewSet(BatchViewSet, viewsets.ModelViewSet):
    serializer_class = s.JobSerializer
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9_.-]+"
    action_permissions = {
        "schedules": {"GET": "scheduling.view_schedule", "POST": "scheduling.add_schedule"},
        "executions": {"GET": "engine.view_execution", "POST": "catalog.trigger_jobdefinition"},
    }

    def get_queryset(self):
        jobs = (JobDefinition.objects.select_related("application", "process__flow", "custom_type")
                .annotate(next_fire_at=next_fire_of_job()).order_by("name"))
        params = self.request.query_params
        if application := text(params, "application"):
            jobs = jobs.filter(application__name=application)
        if job_type := text(params, "job_type"):
            jobs = jobs.of_type(job_type)
        if q := text(params, "q"):
            jobs = jobs.filter(Q(name__icontains=q) | Q(description__icontains=q))
        return jobs

    def get_serializer_class(self):
        return s.JobDetailSerializer if self.action == "retrieve" else s.JobSerializer

    @extend_schema(parameters=JOB_FILTERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(methods=["GET"], responses=s.ScheduleSerializer(many=True))
    @extend_schema(methods=["POST"], request=s.ScheduleSerializer, responses={201: s.ScheduleSerializer})
    @action(detail=True, methods=["get", "post"], serializer_class=s.ScheduleSerializer)
    def schedules(self, request, name=None):
        job = self.get_object()
        if request.method == "GET":
            return self._page(job.schedules.select_related("job").order_by("id"), s.ScheduleSerializer)
        body = s.ScheduleSerializer(data={**request.data, "job": job.name} if isinstance(request.data, dict) else request.data)
        body.is_valid(raise_exception=True)
        with transaction.atomic():
            schedule = scheduling.reschedule(Schedule(**body.validated_data))
            self.audit("create", schedule, body)
        return Response(s.ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["GET"], responses=s.ExecutionSerializer(many=True))
    @extend_schema(methods=["POST"], request=s.TriggerSerializer,
                   responses={201: s.ExecutionSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["get", "post"], serializer_class=s.ExecutionSerializer)
    def executions(self, request, name=None):
        job = self.get_object()
        if request.method == "GET":
            return self._page(job.executions.select_related("job", "application", "agent"), s.ExecutionSerializer)
        body = s.TriggerSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        execution = engine.trigger(job, parameters=body.validated_data["parameters"], trigger=Trigger.API,
                                   triggered_by=self.username())
        return Response(s.ExecutionSerializer(execution).data, status=status.HTTP_201_CREATED)

    def _page(self, queryset, serializer):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer(page, many=True).data)


class ScheduleViewSet(BatchViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.UpdateModelMixin,
                      mixins.DestroyModelMixin):
    queryset = Schedule.objects.select_related("job").order_by("id")
    serializer_class = s.ScheduleSerializer
    action_permissions = {"pause": "scheduling.pause_schedule", "resume": "scheduling.pause_schedule"}

    def perform_update(self, serializer):
        schedule = serializer.instance
        for field, value in serializer.validated_data.items():
            setattr(schedule, field, value)
        with transaction.atomic():
            scheduling.reschedule(schedule)
            self.audit("edit", schedule, serializer)

    @extend_schema(request=None, responses=s.ScheduleSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        return Response(s.ScheduleSerializer(scheduling.pause(self.get_object(), by=self.username())).data)

    @extend_schema(request=None, responses=s.ScheduleSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        return Response(s.ScheduleSerializer(scheduling.resume(self.get_object(), by=self.username())).data)


EXECUTION_FILTERS = [
    OpenApiParameter("status", OpenApiTypes.STR, enum=Status.values),
    OpenApiParameter("job", OpenApiTypes.STR), OpenApiParameter("application", OpenApiTypes.STR),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Created at or after."),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Created before."),
]


class ExecutionViewSet(BatchViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    serializer_class = s.ExecutionSerializer
    action_permissions = {"kill": "engine.kill_execution", "restart": "engine.restart_execution",
                          "hold": "engine.hold_execution", "release": "engine.release_execution",
                          "skip": "engine.skip_execution"}

    def get_queryset(self):
        executions = Execution.objects.select_related("job", "application", "agent")
        if self.action == "list":
            executions = executions.defer("log")  # not in the representation; up to 512 KB a row
        params = self.request.query_params
        if one_of(params.get("status"), Status.values, "status"):
            executions = executions.filter(status=params["status"])
        if job := text(params, "job"):
            executions = executions.filter(job__name=job)
        if application := text(params, "application"):
            executions = executions.filter(application__name=application)
        if since := moment(params.get("since"), "since"):
            executions = executions.filter(created_at__gte=since)
        if until := moment(params.get("until"), "until"):
            executions = executions.filter(created_at__lt=until)
        return executions

    @extend_schema(parameters=EXECUTION_FILTERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: s.ExecutionSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def kill(self, request, pk=None):
        return Response(s.ExecutionSerializer(engine.kill(self.get_object(), by=self.username())).data)

    @extend_schema(request=None, responses={201: s.ExecutionSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def restart(self, request, pk=None):
        execution = engine.restart(self.get_object(), by=self.username())
        return Response(s.ExecutionSerializer(execution).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.ExecutionSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def hold(self, request, pk=None):
        return Response(s.ExecutionSerializer(engine.hold(self.get_object(), by=self.username())).data)

    @extend_schema(request=None, responses={200: s.ExecutionSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        return Response(s.ExecutionSerializer(engine.release(self.get_object(), by=self.username())).data)

    @extend_schema(request=None, responses={200: s.ExecutionSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def skip(self, request, pk=None):
        return Response(s.ExecutionSerializer(engine.skip(self.get_object(), by=self.username())).data)

    @extend_schema(
        parameters=[OpenApiParameter("offset", {"type": "integer", "minimum": 0},
                                     description="Byte offset to read from (past the end reads nothing).")],
        responses=inline_serializer("ExecutionLog", {
            "offset": serializers.IntegerField(), "next_offset": serializers.IntegerField(),
            "data": serializers.CharField(), "status": serializers.CharField(),
            "complete": serializers.BooleanField(help_text="The execution has ended: nothing more will come.")}),
    )
    @action(detail=True, methods=["get"])
    def log(self, request, pk=None):
        """The log from byte `offset` of the job's output on, for tailing: call again with `next_offset`.
        Offsets count the whole output, so they keep growing after the middle of a long log is elided."""
        execution = self.get_object()
        raw = request.query_params.get("offset", "0")
        # ASCII digits only: str.isdigit() admits "²", which int() refuses.
        if not OFFSET.fullmatch(raw):
            raise ValidationError({"offset": f"{raw[:40]!r} is not a byte offset (a whole number, 0 or more)."})
        # Past the end is the end; the digit cap spares int() a number of thousands of digits.
        requested = 2**63 if len(raw.lstrip("0")) > 18 else int(raw)
        data, next_offset = execution.log_since(requested)
        return Response({"offset": min(requested, next_offset), "next_offset": next_offset, "data": data,
                         "status": execution.status, "complete": not execution.is_active})


FLOW_RUN_FILTERS = [
    OpenApiParameter("flow", OpenApiTypes.STR, description="The flow's name (application/flow also works)."),
    OpenApiParameter("status", OpenApiTypes.STR, enum=RunStatus.values),
    OpenApiParameter("business_date", OpenApiTypes.DATE),
]


class FlowViewSet(BatchViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    """Flows by `<application>/<flow>`: their processes, runs and schedules."""

    serializer_class = s.FlowSerializer
    queryset = Flow.objects.select_related("application").order_by("application__name", "name")
    lookup_url_kwarg = "key"
    lookup_value_regex = r"[A-Za-z0-9_-]+/[^/]+"
    action_permissions = {
        "runs": {"GET": "flows.view_flowrun", "POST": "flows.add_flowrun"},
        "schedules": {"GET": "scheduling.view_schedule", "POST": "scheduling.add_schedule"},
    }

    def get_object(self) -> Flow:
        application, _, name = self.kwargs["key"].partition("/")
        flow = self.queryset.filter(application__name=application, name=name).first()
        if flow is None:
            raise NotFound(f"No flow {name!r} in application {application!r}.")
        self.check_object_permissions(self.request, flow)
        return flow

    def get_serializer_class(self):
        return s.FlowDetailSerializer if self.action == "retrieve" else s.FlowSerializer

    @extend_schema(methods=["GET"], responses=s.FlowRunSerializer(many=True))
    @extend_schema(methods=["POST"], request=s.StartRunSerializer,
                   responses={201: s.FlowRunDetailSerializer, 400: ErrorSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["get", "post"], serializer_class=s.FlowRunSerializer)
    def runs(self, request, key=None):
        flow = self.get_object()
        if request.method == "GET":
            return self._page(flow.runs.select_related("flow__application"), s.FlowRunSerializer)
        body = s.StartRunSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        run = flows.start_run(flow, business_date=body.validated_data.get("business_date"),
                              parameters=body.validated_data["parameters"], trigger=Trigger.API,
                              triggered_by=self.username())
        return Response(s.FlowRunDetailSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(methods=["GET"], responses=s.ScheduleSerializer(many=True))
    @extend_schema(methods=["POST"], request=s.ScheduleSerializer, responses={201: s.ScheduleSerializer})
    @action(detail=True, methods=["get", "post"], serializer_class=s.ScheduleSerializer)
    def schedules(self, request, key=None):
        flow = self.get_object()
        if request.method == "GET":
            return self._page(flow.schedules.select_related("flow__application").order_by("id"), s.ScheduleSerializer)
        data = {**request.data, "job": None} if isinstance(request.data, dict) else request.data
        body = s.ScheduleSerializer(data=data, context={"flow": flow})
        body.is_valid(raise_exception=True)
        schedule = scheduling.reschedule(Schedule(**body.validated_data, flow=flow))
        return Response(s.ScheduleSerializer(schedule).data, status=status.HTTP_201_CREATED)

    def _page(self, queryset, serializer):
        page = self.paginate_queryset(queryset)
        return self.get_paginated_response(serializer(page, many=True).data)


class FlowRunViewSet(BatchViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    serializer_class = s.FlowRunSerializer
    pagination_class = CountedPages
    action_permissions = {"hold": "flows.hold_flowrun", "release": "flows.hold_flowrun", "kill": "flows.kill_flowrun"}

    def get_queryset(self):
        runs = FlowRun.objects.select_related("flow__application")
        params = self.request.query_params
        if flow := text(params, "flow"):
            application, _, name = flow.rpartition("/")
            runs = runs.filter(flow__name=name, **({"flow__application__name": application} if application else {}))
        if one_of(params.get("status"), RunStatus.values, "status"):
            runs = runs.filter(status=params["status"])
        if day := params.get("business_date"):
            runs = runs.filter(business_date=a_date(day, "business_date"))
        return runs

    def get_serializer_class(self):
        return s.FlowRunDetailSerializer if self.action == "retrieve" else s.FlowRunSerializer

    @extend_schema(parameters=FLOW_RUN_FILTERS)
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=None, responses={200: s.FlowRunDetailSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def hold(self, request, pk=None):
        return Response(s.FlowRunDetailSerializer(flows.hold(self.get_object(), by=self.username())).data)

    @extend_schema(request=None, responses={200: s.FlowRunDetailSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def release(self, request, pk=None):
        return Response(s.FlowRunDetailSerializer(flows.release(self.get_object(), by=self.username())).data)

    @extend_schema(request=None, responses={200: s.FlowRunDetailSerializer, 409: ErrorSerializer})
    @action(detail=True, methods=["post"])
    def kill(self, request, pk=None):
        return Response(s.FlowRunDetailSerializer(flows.kill(self.get_object(), by=self.username())).data)


class AgentViewSet(BatchViewSet, mixins.ListModelMixin, mixins.RetrieveModelMixin):
    serializer_class = s.AgentSerializer
    lookup_field = "instance_id"
    action_permissions = {"block": "agents.block_agent", "unblock": "agents.block_agent"}
    lookup_value_regex = r"[0-9a-fA-F-]{36}"

    def get_queryset(self):
        return Agent.objects.annotate(
            running_count=Count("executions", filter=Q(executions__status=Status.RUNNING))
        ).order_by("-last_heartbeat", "id")

    @extend_schema(request=None, responses=s.AgentSerializer)
    @action(detail=True, methods=["post"])
    def block(self, request, instance_id=None):
        return self._set_blocked(True)

    @extend_schema(request=None, responses=s.AgentSerializer)
    @action(detail=True, methods=["post"])
    def unblock(self, request, instance_id=None):
        return self._set_blocked(False)

    def _set_blocked(self, blocked: bool) -> Response:
        agent = self.get_object()
        if not agents.set_blocked(agent, blocked, by=self.username()):
            raise ValidationError({"status": f"Agent {agent.name} is {agent.status}: only live agents can be "
                                             f"{'blocked' if blocked else 'unblocked'}."})
        return Response(s.AgentSerializer(self.get_queryset().get(pk=agent.pk)).data)


class CronPreviewView(APIView):
    """The next fire times of any cron expression in any zone after any instant (SPEC §5.2), by the
    same function as a schedule's own next fire times. Viewers may call it: it saves nothing."""

    permission_classes = [BatchPermission]
    permission_required = "scheduling.view_schedule"
    schema = ControlApiSchema()

    @extend_schema(request=s.CronPreviewSerializer, responses={200: s.CronPreviewAnswer, 400: ErrorSerializer})
    def post(self, request):
        body = s.CronPreviewSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        cron, zone, after, count = (body.validated_data[key] for key in ("cron", "timezone", "after", "count"))
        try:
            times = timing.preview(cron, zone, after, count)
        except DjangoValidationError as exc:
            raise BatchError(ErrorCode.INVALID_CRON, " ".join(exc.messages)) from None
        except (OverflowError, ValueError) as exc:  # slots past year 9999
            raise BatchError(ErrorCode.INVALID_CRON, f"No fire time can be computed after {after}: {exc}") from None
        local = zoneinfo.ZoneInfo(zone)
        return Response({"cron": cron, "timezone": zone,
                         "next_fire_times": [moment.astimezone(UTC).isoformat() for moment in times],
                         "local_times": [moment.astimezone(local).isoformat() for moment in times]})


class HealthView(APIView):
    permission_classes = [BatchPermission]
    permission_required = "agents.view_agent"
    schema = ControlApiSchema()

    @extend_schema(responses=inline_serializer("Health", {
        "status": serializers.ChoiceField(["ok", "degraded", "down"]), "database": serializers.DictField(),
        "broker": serializers.DictField(), "agents": serializers.DictField(),
        "job_types": serializers.ListField(child=serializers.DictField())}))
    def get(self, request):
        return Response(health_report())

