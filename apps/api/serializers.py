"""Control API representations: relations written and shown by name (SPEC §5.2)."""

from __future__ import annotations

import copy
import zoneinfo

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import models
from django.db.models import Count, Q
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.agents.models import Agent
from apps.catalog import validators
from apps.catalog.models import (
    Application,
    Flow,
    JobDefinition,
    JobKind,
    JobType,
    Process,
)
from apps.engine.models import Execution, Status
from apps.flows.graph import flow_graph
from apps.flows.models import FlowRun
from apps.scheduling import timing
from apps.scheduling.models import Schedule


class ModelCleanMixin:
    """Run the model's own clean() so that the API refuses what the admin refuses."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
        candidate = copy.copy(self.instance) if self.instance is not None else self.Meta.model()
        fields = {field.name for field in self.Meta.model._meta.concrete_fields}
        fields |= self.Meta.model._meta._property_names  # a job's job_type, over kind and custom_type
        for name, value in attrs.items():
            if name in fields:
                setattr(candidate, name, value)
        try:
            self.clean_candidate(candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
        return attrs

    def clean_candidate(self, candidate) -> None:
        """Raise Django's ValidationError if the object, as it would be saved, is invalid."""
        candidate.clean()


class PortableIntegers:
    """Positive integers up to PostgreSQL's integer column on every backend. SQLite's would take
    up to 2**63, which the time arithmetic cannot (timedelta(seconds=2**62) overflows) and which
    would make SQLite accept what PostgreSQL refuses."""

    LARGEST = 2**31 - 1

    def build_standard_field(self, field_name, model_field):
        field_class, kwargs = super().build_standard_field(field_name, model_field)
        if isinstance(model_field, models.PositiveIntegerField):
            kwargs["max_value"] = min(kwargs.get("max_value", self.LARGEST), self.LARGEST)
        return field_class, kwargs


class ByName(serializers.SlugRelatedField):
    """A relation written by its `name`. A NUL cannot be in a name, and PostgreSQL refuses it even
    in a query: such a value is "no such object", not a database error."""

    def __init__(self, **kwargs) -> None:
        super().__init__(slug_field="name", **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data)
        return super().to_internal_value(data)


class ApplicationSerializer(PortableIntegers, serializers.ModelSerializer):
    class Meta:
        model = Application
        fields = ["name", "description", "throttle_limit", "enabled"]


class JobTypeSerializer(ModelCleanMixin, PortableIntegers, serializers.ModelSerializer):
    client_secret = serializers.CharField(write_only=True, required=False, allow_blank=True, trim_whitespace=False,
                                          help_text="Write-only; stored encrypted. An empty string clears it.")
    has_client_secret = serializers.BooleanField(read_only=True)

    class Meta:
        model = JobType
        fields = ["name", "description", "url", "start_path", "status_path", "restart_path", "kill_path",
                  "log_path", "check_path", "scope", "poll_interval_seconds", "request_timeout_seconds",
                  "token_url", "client_id", "client_secret", "has_client_secret",
                  "last_check_at", "last_check_up", "last_check_error"]
        read_only_fields = ["last_check_at", "last_check_up", "last_check_error"]

    def save(self, **kwargs):
        secret = self.validated_data.pop("client_secret", None)
        job_type = super().save(**kwargs)
        if secret is not None:
            job_type.set_client_secret(secret)
            job_type.save(update_fields=["client_secret_encrypted"])
        return job_type


class ExecutionSerializer(serializers.ModelSerializer):
    flow_run = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    job = serializers.SlugRelatedField(slug_field="name", read_only=True)
    application = serializers.SlugRelatedField(slug_field="name", read_only=True)
    agent = serializers.SlugRelatedField(slug_field="name", read_only=True, allow_null=True)
    restart_of = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    retry_of = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    long_running = serializers.BooleanField(read_only=True)

    class Meta:
        model = Execution
        fields = ["id", "agent_execution_id", "job", "application", "status", "trigger", "triggered_by",
                  "parameters", "attempt", "restart_of", "retry_of", "external_execution_id", "execution_info",
                  "exit_code", "warning", "error", "waiting_reason", "created_at", "started_at", "finished_at",
                  "agent", "long_running", "log_bytes", "flow_run", "skipped_in_flow"]
        read_only_fields = fields


class TriggerSerializer(serializers.Serializer):
    parameters = serializers.CharField(required=False, allow_blank=True, default="",
                                       help_text="key=value||key1=value1, overriding the job's defaults key by key.")


class ScheduleSerializer(ModelCleanMixin, PortableIntegers, serializers.ModelSerializer):
    job = ByName(queryset=JobDefinition.objects.all(), required=False, allow_null=True,
                 help_text="The job it triggers; null for a flow's schedule.")
    flow = serializers.SerializerMethodField(help_text="The flow it starts runs of, as application/flow; null for a job's.")
    timezone = serializers.CharField(max_length=64, required=False, validators=[validators.timezone_name],
                                     help_text="IANA name; the installation's zone when left out.")
    next_fire_times = serializers.SerializerMethodField()

    class Meta:
        model = Schedule
        fields = ["id", "job", "flow", "kind", "cron", "interval_seconds", "start_at", "end_at", "repeats", "timezone",
                  "misfire", "active", "extra", "next_fire_at", "last_fired_at", "fire_count", "inactive_reason",
                  "next_fire_times"]
        read_only_fields = ["next_fire_at", "last_fired_at", "fire_count", "inactive_reason"]

    def clean_candidate(self, schedule: Schedule) -> None:
        if self.context.get("flow") is not None:  # created under /flows/<app>/<flow>/schedules
            schedule.flow = self.context["flow"]
        super().clean_candidate(schedule)
        try:
            timing.upcoming(schedule.timing(), timezone.now(), 5)
        except (OverflowError, ValueError) as exc:
            # The slot arithmetic ran past datetime.max (a start_at late in 9999, an interval of
            # centuries): "date value out of range", "year 10000 is out of range".
            raise DjangoValidationError({"start_at": f"This schedule's next fire times cannot be computed ({exc}): "
                                                     "check start_at, end_at and interval_seconds."}) from None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_flow(self, schedule: Schedule) -> str | None:
        return str(schedule.flow) if schedule.flow_id else None

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_next_fire_times(self, schedule: Schedule) -> list[str]:
        return [moment.isoformat() for moment in schedule.upcoming(5)]


class JobTypeName(serializers.CharField):
    """A job's type by name: a built-in kind in any case (stored upper-case) or a custom type's name."""

    def to_internal_value(self, data) -> str:
        name = super().to_internal_value(data)
        kind = JobKind.builtin(name)
        if kind is not None:
            return kind.value
        if "\x00" in name or not JobType.objects.filter(name=name).exists():
            raise serializers.ValidationError(f"Unknown job type {name[:64]!r}: use EXEC, PYTHON, DUMMY or the name "
                                              f"of a custom job type.")
        return name


class JobSerializer(ModelCleanMixin, PortableIntegers, serializers.ModelSerializer):
    application = ByName(queryset=Application.objects.all())
    job_type = JobTypeName(max_length=64, required=False,
                           help_text="EXEC, PYTHON, DUMMY (any case) or the name of a custom job type.")
    flow = serializers.CharField(required=False, allow_blank=True, allow_null=True, write_only=True,
                                 help_text="With `process`: the job's flow in its application.")
    process = serializers.CharField(required=False, allow_blank=True, allow_null=True, write_only=True,
                                    help_text="With `flow`: the job's process in that flow.")
    cycle_flow_process = serializers.SerializerMethodField(help_text="cycle, flow, process as sent to external systems")
    next_fire_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = JobDefinition
        fields = ["name", "application", "flow", "process", "cycle_flow_process", "sequence", "job_type", "command",
                  "parameters", "description", "enabled", "max_retries", "retry_backoff_seconds", "timeout_seconds",
                  "concurrency", "lock_group", "skip_on_error", "threshold_runtime_seconds", "warning_exit_codes",
                  "extra", "next_fire_at"]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_cycle_flow_process(self, job: JobDefinition) -> list[str]:
        return list(job.flow_context())

    def validate(self, attrs):
        given = "flow" in attrs or "process" in attrs
        flow, process = attrs.pop("flow", None), attrs.pop("process", None)
        if flow or process:
            application = attrs.get("application") or (self.instance and self.instance.application)
            found = Process.objects.filter(flow__application=application, flow__name=flow or "", name=process or "").first()
            if found is None:
                raise serializers.ValidationError({"process": f"No process {process!r} in flow {flow!r} of {application}."})
            attrs["process"] = found
        elif given:  # both empty or null: out of its process
            attrs["process"] = None
        return super().validate(attrs)


class JobDetailSerializer(JobSerializer):
    stats = serializers.SerializerMethodField()
    latest_execution = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = JobSerializer.Meta.fields + ["stats", "latest_execution"]

    @extend_schema_field(serializers.DictField())
    def get_stats(self, job: JobDefinition) -> dict:
        figures = Execution.objects.filter(job=job).aggregate(
            total=Count("id"),
            success=Count("id", filter=Q(status=Status.COMPLETED)),
            failure=Count("id", filter=Q(status=Status.ERROR)),
        )
        average = job.average_runtime_seconds
        return {**figures, "average_seconds": round(average, 3) if average is not None else None}

    @extend_schema_field(ExecutionSerializer(allow_null=True))
    def get_latest_execution(self, job: JobDefinition):
        latest = job.executions.select_related("job", "application", "agent").first()
        return ExecutionSerializer(latest).data if latest else None


class CronPreviewSerializer(serializers.Serializer):
    """POST /api/v1/cron/preview: the next fire times of any expression, without saving a schedule."""

    cron = serializers.CharField(max_length=200, help_text="5, 6 or 7 fields, or an @ alias (SPEC §4).")
    timezone = serializers.CharField(max_length=64, required=False, validators=[validators.timezone_name],
                                     help_text="IANA name; the installation's zone when left out.")
    after = serializers.DateTimeField(required=False, default_timezone=None,
                                      help_text="ISO 8601; without an offset it is read in `timezone`. Default: now.")
    count = serializers.IntegerField(min_value=1, max_value=100, default=5)

    def validate(self, attrs: dict) -> dict:
        zone = attrs.setdefault("timezone", django_settings.TIME_ZONE)
        after = attrs.get("after") or timezone.now()
        if timezone.is_naive(after):
            after = timezone.make_aware(after, zoneinfo.ZoneInfo(zone))
        attrs["after"] = after
        return attrs


class CronPreviewAnswer(serializers.Serializer):
    cron = serializers.CharField()
    timezone = serializers.CharField()
    next_fire_times = serializers.ListField(child=serializers.DateTimeField(), help_text="UTC")
    local_times = serializers.ListField(child=serializers.DateTimeField(), help_text="In `timezone`.")


class AgentSerializer(serializers.ModelSerializer):
    running = serializers.IntegerField(read_only=True, source="running_count")

    class Meta:
        model = Agent
        fields = ["instance_id", "name", "kind", "host", "pid", "os_name", "os_version", "cpu_arch", "cpu_cores",
                  "stats", "status", "started_at", "last_heartbeat", "running"]
        read_only_fields = fields


class ConfigureSerializer(serializers.Serializer):
    job_types = serializers.DictField(child=serializers.DictField(child=serializers.CharField(allow_blank=True)),
                                      help_text='{"<TYPE>": {"url": "...", "scope": "..."}}')

    def validate_job_types(self, job_types: dict) -> dict:
        # The keys name job types; DictField checks only the values.
        unknown = [name for name in job_types if not validators.application_name.regex.search(name)]
        if unknown:
            raise serializers.ValidationError(f"Not a job type name: {', '.join(repr(n[:64]) for n in unknown)}.")
        return job_types



class FlowSerializer(serializers.ModelSerializer):
    application = serializers.SlugRelatedField(slug_field="name", read_only=True)

    class Meta:
        model = Flow
        fields = ["application", "name", "cycle", "description"]


class FlowDetailSerializer(FlowSerializer):
    processes = serializers.SerializerMethodField()

    class Meta(FlowSerializer.Meta):
        fields = FlowSerializer.Meta.fields + ["processes"]

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_processes(self, flow: Flow) -> list[dict]:
        return [{"name": p.name, "predecessors": sorted(p.predecessors),
                 "jobs": [{"job": j.job, "sequence": j.sequence} for j in p.jobs]}
                for p in flow_graph(flow).processes]


class FlowRunSerializer(serializers.ModelSerializer):
    flow = serializers.CharField(source="flow.name", read_only=True)
    application = serializers.CharField(source="flow.application.name", read_only=True)

    class Meta:
        model = FlowRun
        fields = ["id", "application", "flow", "cycle", "business_date", "status", "held", "trigger", "triggered_by",
                  "parameters", "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class FlowRunDetailSerializer(FlowRunSerializer):
    processes = serializers.SerializerMethodField()

    class Meta(FlowRunSerializer.Meta):
        fields = FlowRunSerializer.Meta.fields + ["processes"]

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_processes(self, run: FlowRun) -> list[dict]:
        """SPEC §5.2: each process with its status, predecessors and jobs (each job's latest execution)."""
        return [{"name": p.name, "status": p.status, "predecessors": sorted(p.predecessors),
                 "jobs": [{"job": j.job, "sequence": j.sequence, "status": j.status,
                           "execution": j.execution.pk if j.execution else None} for j in p.jobs]}
                for p in flow_graph(run.flow, run).processes]


class StartRunSerializer(serializers.Serializer):
    business_date = serializers.DateField(required=False, help_text="YYYY-MM-DD; today in TIME_ZONE when left out.")
    parameters = serializers.CharField(required=False, allow_blank=True, default="",
                                       help_text="key=value||key1=value1, overriding the jobs' defaults key by key.")
