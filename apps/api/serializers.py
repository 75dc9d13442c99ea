"""Control API representations: relations written and shown by name (SPEC §5.2)."""

from __future__ import annotations

import copy

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Avg, Count, DurationField, ExpressionWrapper, F, Q
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.agents.models import Agent
from apps.catalog.models import Application, JobDefinition, JobType, Process
from apps.engine.models import Execution, Status
from apps.scheduling.models import Schedule


class ModelCleanMixin:
    """Run the model's own clean() so that the API refuses what the admin refuses."""

    def validate(self, attrs):
        attrs = super().validate(attrs)
        candidate = copy.copy(self.instance) if self.instance is not None else self.Meta.model()
        fields = {field.name for field in self.Meta.model._meta.concrete_fields}
        for name, value in attrs.items():
            if name in fields:
                setattr(candidate, name, value)
        try:
            candidate.clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
        return attrs


class ApplicationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Application
        fields = ["name", "description", "throttle_limit", "enabled"]


class JobTypeSerializer(ModelCleanMixin, serializers.ModelSerializer):
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
    job = serializers.SlugRelatedField(slug_field="name", read_only=True)
    application = serializers.SlugRelatedField(slug_field="name", read_only=True)
    agent = serializers.SlugRelatedField(slug_field="name", read_only=True)
    restart_of = serializers.PrimaryKeyRelatedField(read_only=True)
    retry_of = serializers.PrimaryKeyRelatedField(read_only=True)
    long_running = serializers.BooleanField(read_only=True)

    class Meta:
        model = Execution
        fields = ["id", "agent_execution_id", "job", "application", "status", "trigger", "triggered_by",
                  "parameters", "attempt", "restart_of", "retry_of", "external_execution_id", "execution_info",
                  "exit_code", "warning", "error", "waiting_reason", "created_at", "started_at", "finished_at",
                  "agent", "long_running", "log_bytes"]
        read_only_fields = fields


class TriggerSerializer(serializers.Serializer):
    parameters = serializers.CharField(required=False, allow_blank=True, default="",
                                       help_text="key=value||key1=value1, overriding the job's defaults key by key.")


class ScheduleSerializer(ModelCleanMixin, serializers.ModelSerializer):
    job = serializers.SlugRelatedField(slug_field="name", queryset=JobDefinition.objects.all())
    next_fire_times = serializers.SerializerMethodField()

    class Meta:
        model = Schedule
        fields = ["id", "job", "kind", "cron", "interval_seconds", "start_at", "end_at", "repeats", "timezone",
                  "misfire", "active", "extra", "next_fire_at", "last_fired_at", "fire_count", "inactive_reason",
                  "next_fire_times"]
        read_only_fields = ["next_fire_at", "last_fired_at", "fire_count", "inactive_reason"]

    @extend_schema_field(serializers.ListField(child=serializers.DateTimeField()))
    def get_next_fire_times(self, schedule: Schedule) -> list[str]:
        return [moment.isoformat() for moment in schedule.upcoming(5)]


class JobSerializer(ModelCleanMixin, serializers.ModelSerializer):
    application = serializers.SlugRelatedField(slug_field="name", queryset=Application.objects.all())
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
        flow, process = attrs.pop("flow", None), attrs.pop("process", None)
        if flow or process:
            application = attrs.get("application") or (self.instance and self.instance.application)
            found = Process.objects.filter(flow__application=application, flow__name=flow or "", name=process or "").first()
            if found is None:
                raise serializers.ValidationError({"process": f"No process {process!r} in flow {flow!r} of {application}."})
            attrs["process"] = found
        elif flow is not None or process is not None:
            attrs["process"] = None
        return super().validate(attrs)


class JobDetailSerializer(JobSerializer):
    stats = serializers.SerializerMethodField()
    latest_execution = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = JobSerializer.Meta.fields + ["stats", "latest_execution"]

    @extend_schema_field(serializers.DictField())
    def get_stats(self, job: JobDefinition) -> dict:
        runtime = ExpressionWrapper(F("finished_at") - F("started_at"), output_field=DurationField())
        figures = Execution.objects.filter(job=job).aggregate(
            total=Count("id"),
            success=Count("id", filter=Q(status=Status.COMPLETED)),
            failure=Count("id", filter=Q(status=Status.ERROR)),
            average=Avg(runtime, filter=Q(status=Status.COMPLETED)),
        )
        average = figures.pop("average")
        return {**figures, "average_seconds": round(average.total_seconds(), 3) if average else None}

    @extend_schema_field(ExecutionSerializer(allow_null=True))
    def get_latest_execution(self, job: JobDefinition):
        latest = job.executions.select_related("job", "application", "agent").first()
        return ExecutionSerializer(latest).data if latest else None


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

