"""What runs: applications, their flows and processes, job definitions and custom job types."""

from __future__ import annotations


from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce

from apps.catalog import validators
from apps.catalog.registry import registry


class Application(models.Model):
    name = models.CharField(max_length=64, unique=True, validators=[validators.application_name])
    description = models.TextField(blank=True)
    throttle_limit = models.PositiveIntegerField(
        default=0, help_text="Most executions of this application's jobs RUNNING at once; 0 = unlimited."
    )
    enabled = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Flow(models.Model):
    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="flows")
    name = models.CharField(max_length=100)
    cycle = models.CharField(max_length=64, blank=True, help_text="Free label: Nightly, Hourly_1, Adhoc, …")
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["application__name", "name"]
        constraints = [models.UniqueConstraint(fields=["application", "name"], name="flow_unique_per_application")]

    def __str__(self) -> str:
        return f"{self.application.name}/{self.name}"


class Process(models.Model):
    flow = models.ForeignKey(Flow, on_delete=models.CASCADE, related_name="processes")
    name = models.CharField(max_length=100)
    predecessors = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="successors",
        help_text="Processes of the same flow that must finish before this one starts.",
    )
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["flow__application__name", "flow__name", "name"]
        verbose_name_plural = "processes"
        constraints = [models.UniqueConstraint(fields=["flow", "name"], name="process_unique_per_flow")]

    def __str__(self) -> str:
        return f"{self.flow}/{self.name}"


class JobKind(models.TextChoices):
    """What a job is: one of the built-in kinds, or a custom (Generic ReST) job type."""

    EXEC = "EXEC", "EXEC (a shell command)"
    PYTHON = "PYTHON", "PYTHON (a registered callable)"
    DUMMY = "DUMMY", "DUMMY (completes at once)"
    CUSTOM = "CUSTOM", "custom job type (Generic ReST)"

    @classmethod
    def builtin(cls, name: str) -> JobKind | None:
        """The built-in kind a job type name means, in any case; None for a custom type's name."""
        upper = str(name).strip().upper()
        return cls(upper) if upper in BUILTIN_KINDS else None


BUILTIN_KINDS = (JobKind.EXEC, JobKind.PYTHON, JobKind.DUMMY)


def not_a_builtin_kind(name: str) -> None:
    if JobKind.builtin(name) is not None:
        raise ValidationError(f"{name} is a built-in job type: custom types need another name.", code="builtin")


class JobType(models.Model):
    """A custom (Generic ReST) job type: an external system reached over the POM contract (SPEC §3)."""

    name = models.CharField(max_length=64, unique=True, validators=[validators.application_name, not_a_builtin_kind])
    description = models.TextField(blank=True)
    url = models.CharField("base URL", max_length=500, blank=True, validators=[validators.http_url])
    start_path = models.CharField(max_length=300)
    status_path = models.CharField(max_length=300)
    restart_path = models.CharField(max_length=300, blank=True)
    kill_path = models.CharField(max_length=300, blank=True)
    log_path = models.CharField(max_length=300, blank=True)
    check_path = models.CharField(max_length=300, blank=True, help_text="System check (POM 'Validation').")
    scope = models.CharField(max_length=300, blank=True)
    poll_interval_seconds = models.PositiveIntegerField(default=5, validators=[MinValueValidator(1)])
    request_timeout_seconds = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1)])
    token_url = models.CharField(max_length=500, blank=True, validators=[validators.http_url])
    client_id = models.CharField(max_length=200, blank=True)
    # Write-only: holds the secret encrypted, never the plain text.
    client_secret_encrypted = models.TextField(blank=True, editable=False)
    # The latest system check, for the health page.
    last_check_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_check_up = models.BooleanField(null=True, editable=False)
    last_check_error = models.TextField(blank=True, editable=False)

    PATH_FIELDS = {"start": "start_path", "status": "status_path", "restart": "restart_path",
                   "kill": "kill_path", "log": "log_path", "check": "check_path"}

    class Meta:
        ordering = ["name"]
        permissions = [("check_jobtype", "Can run the system check of job types")]

    def __str__(self) -> str:
        return self.name

    def set_client_secret(self, plain: str) -> None:
        from apps.connectors import crypto

        self.client_secret_encrypted = crypto.encrypt(plain)

    @property
    def has_client_secret(self) -> bool:
        return bool(self.client_secret_encrypted)

    def endpoint(self, application: Application | None = None):
        """How to reach this type from `application`: its environment override of URL and scope, if any."""
        from apps.connectors import crypto
        from apps.connectors.client import Endpoint
        from apps.connectors.oauth import Credentials

        override = None
        if application is not None:
            override = JobTypeEnvironment.objects.filter(application=application, job_type=self).first()
        scope = override.scope if override and override.scope else self.scope
        return Endpoint(
            name=self.name,
            url=override.url if override and override.url else self.url,
            scope=scope,
            paths={call: getattr(self, field) for call, field in self.PATH_FIELDS.items()},
            timeout=float(self.request_timeout_seconds),
            poll_interval=float(self.poll_interval_seconds),
            credentials=Credentials(
                token_url=self.token_url or settings.OAUTH_TOKEN_URL,
                client_id=self.client_id or settings.OAUTH_CLIENT_ID,
                client_secret=crypto.decrypt(self.client_secret_encrypted) if self.client_secret_encrypted
                else settings.OAUTH_CLIENT_SECRET,
                scope=scope,
            ),
        )


class JobTypeEnvironment(models.Model):
    """POM "Configure New Schedule": an application's own URL and scope for a custom job type."""

    application = models.ForeignKey(Application, on_delete=models.CASCADE, related_name="job_type_environments")
    job_type = models.ForeignKey(JobType, on_delete=models.CASCADE, related_name="environments")
    url = models.CharField("base URL", max_length=500, blank=True, validators=[validators.http_url])
    scope = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["application", "job_type"], name="one_environment_per_app_and_type")
        ]

    def __str__(self) -> str:
        return f"{self.application} → {self.job_type}"


class Concurrency(models.TextChoices):
    FORBID = "forbid", "forbid"
    ALLOW = "allow", "allow"
    REPLACE = "replace", "replace"


class JobDefinitionQuerySet(models.QuerySet):
    def enabled(self) -> JobDefinitionQuerySet:
        return self.filter(enabled=True, application__enabled=True)

    def of_type(self, name: str) -> JobDefinitionQuerySet:
        """Jobs of a built-in kind (any case) or of the custom type of that name."""
        kind = JobKind.builtin(name)
        return self.filter(kind=kind) if kind else self.filter(kind=JobKind.CUSTOM, custom_type__name=name)

    def with_type_name(self) -> JobDefinitionQuerySet:
        """Annotate `type_name`: the job type as operators name it, for values() lists."""
        return self.annotate(type_name=Coalesce("custom_type__name", "kind"))


class JobDefinition(models.Model):
    name = models.CharField(max_length=100, unique=True, validators=[validators.job_name])
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="jobs")
    process = models.ForeignKey(Process, on_delete=models.SET_NULL, null=True, blank=True, related_name="jobs")
    sequence = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=8, choices=JobKind.choices, default=JobKind.EXEC)
    # A real reference: a type that jobs use cannot be deleted, and a rename carries its jobs along.
    custom_type = models.ForeignKey(JobType, on_delete=models.PROTECT, null=True, blank=True, related_name="jobs",
                                    help_text="The custom job type, when kind is CUSTOM.")
    command = models.TextField(
        blank=True, help_text="EXEC: a shell command. PYTHON: the name of a registered task."
    )
    parameters = models.TextField(blank=True, validators=[validators.parameters], help_text="key=value||key1=value1")
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    max_retries = models.PositiveIntegerField(default=0)
    retry_backoff_seconds = models.PositiveIntegerField(default=30)
    timeout_seconds = models.PositiveIntegerField(default=0, help_text="0 = no timeout.")
    concurrency = models.CharField(max_length=10, choices=Concurrency.choices, default=Concurrency.FORBID)
    lock_group = models.CharField(max_length=100, blank=True)
    skip_on_error = models.BooleanField(default=False)
    threshold_runtime_seconds = models.PositiveIntegerField(default=0, help_text="0 = use the average runtime.")
    warning_exit_codes = models.CharField(
        max_length=200, blank=True, help_text="Comma-separated exit codes that count as COMPLETED with a warning."
    )
    extra = models.TextField(blank=True, help_text="Opaque text or JSON handed to the job.")
    # The running average of completed runs, kept as each one completes (apps.engine.lifecycle.finish):
    # "long running" and the job's stats read it without a query over its history.
    completed_runs = models.PositiveIntegerField(default=0, editable=False)
    average_runtime_seconds = models.FloatField(null=True, blank=True, editable=False)

    objects = JobDefinitionQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["application", "name"])]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind=JobKind.CUSTOM, custom_type__isnull=False) | (~Q(kind=JobKind.CUSTOM)
                                                                               & Q(custom_type__isnull=True)),
                name="job_custom_type_iff_custom_kind",
            ),
        ]
        permissions = [("trigger_jobdefinition", "Can trigger jobs"),
                       ("load_workbook", "Can load batch schedule workbooks")]

    def __init__(self, *args, **kwargs) -> None:
        self._unknown_type = ""
        super().__init__(*args, **kwargs)

    def __str__(self) -> str:
        return self.name

    @property
    def job_type(self) -> str:
        """The job type as operators write it: EXEC, PYTHON, DUMMY or a custom type's name."""
        if self.kind != JobKind.CUSTOM:
            return self.kind
        return self.custom_type.name if self.custom_type is not None else self._unknown_type

    @job_type.setter
    def job_type(self, value: str | JobType) -> None:
        """Set the type by name (a built-in kind in any case, or a custom type) or by JobType.

        An unknown name is kept for clean() and save() to refuse, so that every writer (admin,
        API, spreadsheet, code) meets the same rule at the same point."""
        self._unknown_type = ""
        if isinstance(value, JobType):
            self.kind, self.custom_type = JobKind.CUSTOM, value
            return
        kind = JobKind.builtin(value or JobKind.EXEC)
        if kind is not None:
            self.kind, self.custom_type = kind, None
            return
        self.kind, self.custom_type = JobKind.CUSTOM, JobType.objects.filter(name=value).first()
        if self.custom_type is None:
            self._unknown_type = str(value)

    @property
    def is_custom(self) -> bool:
        return self.kind == JobKind.CUSTOM

    def save(self, *args, **kwargs) -> None:
        if self.kind == JobKind.CUSTOM and self.custom_type is None:
            raise ValidationError({"job_type": self._unknown_type_message()})
        super().save(*args, **kwargs)

    def _unknown_type_message(self) -> str:
        return (f"Unknown job type {self._unknown_type!r}: use EXEC, PYTHON, DUMMY or the name of a custom job "
                f"type.")

    def warning_codes(self) -> set[int]:
        return {int(code) for code in self.warning_exit_codes.replace(" ", "").split(",") if code}

    def clean(self) -> None:
        """The rules across fields. It makes no query of its own: the process check follows
        `process.flow`, which a bulk caller (the spreadsheet loader) links in memory."""
        errors: dict[str, str] = {}
        if self.kind == JobKind.EXEC and not self.command.strip():
            errors["command"] = "An EXEC job needs a command."
        if self.kind == JobKind.PYTHON and self.command not in registry:
            errors["command"] = f"{self.command!r} is not a registered PYTHON task; known: {', '.join(sorted(registry))}."
        if self.kind == JobKind.CUSTOM and self.custom_type is None:  # no query: the id is None too
            errors["job_type"] = self._unknown_type_message()
        try:
            self.warning_codes()
        except ValueError:
            errors["warning_exit_codes"] = f"Not a comma-separated list of integers: {self.warning_exit_codes!r}."
        if self.process_id and self.application_id and self.process.flow.application_id != self.application_id:
            errors["process"] = "The process belongs to another application."
        if errors:
            raise ValidationError(errors)

    def flow_context(self) -> tuple[str, str, str]:
        """(cycle, flow, process) names as the POM contract sends them; Adhoc outside a process."""
        if self.process is None:
            return "Adhoc", "Adhoc", self.name
        flow = self.process.flow
        return flow.cycle or "Adhoc", flow.name, self.process.name
