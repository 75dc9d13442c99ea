"""Who is told what (NotificationRule), what was sent and how it went (Notification), and which
executions were already found long running (LongRunningMark: once per execution)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.catalog.validators import http_url


class Event(models.TextChoices):
    EXECUTION_FAILED = "execution_failed", "final failure (never a retry)"
    LONG_RUNNING = "long_running", "long running"
    FLOW_RUN_FINISHED = "flow_run_finished", "flow run ended"


class Channel(models.TextChoices):
    EMAIL = "email", "e-mail"
    WEBHOOK = "webhook", "webhook (JSON POST, HMAC-SHA256 signed)"


class NotificationRule(models.Model):
    """Tell `target` by `channel` about the chosen events of one application's jobs and flows, or of one job."""

    application = models.ForeignKey("catalog.Application", on_delete=models.CASCADE, null=True, blank=True,
                                    related_name="notification_rules", help_text="Every job and flow of it.")
    job = models.ForeignKey("catalog.JobDefinition", on_delete=models.CASCADE, null=True, blank=True,
                            related_name="notification_rules", help_text="Or this one job.")
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.EMAIL)
    target = models.CharField(max_length=500, help_text="An e-mail address, or the webhook's URL.")
    # Write-only: the webhook's shared secret, encrypted (apps.connectors.crypto); never shown.
    secret_encrypted = models.TextField(blank=True, editable=False)
    on_failure = models.BooleanField("final failure", default=True)
    on_long_running = models.BooleanField("long running", default=False)
    on_flow_run_end = models.BooleanField("flow run ended", default=False,
                                          help_text="Application rules only: a flow run of it ended.")
    enabled = models.BooleanField(default=True)
    description = models.CharField(max_length=200, blank=True)

    EVENT_FIELDS = {Event.EXECUTION_FAILED: "on_failure", Event.LONG_RUNNING: "on_long_running",
                    Event.FLOW_RUN_FINISHED: "on_flow_run_end"}

    class Meta:
        ordering = ["application__name", "job__name", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(application__isnull=False, job__isnull=True)
                                   | Q(application__isnull=True, job__isnull=False), name="notificationrule_one_scope"),
        ]

    def __str__(self) -> str:
        scope = f"job {self.job}" if self.job_id else f"application {self.application}"
        return f"{scope} → {self.get_channel_display().split(' ')[0]} {self.target}"

    def set_secret(self, plain: str) -> None:
        from apps.connectors import crypto

        self.secret_encrypted = crypto.encrypt(plain)

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted)

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if bool(self.application_id) == bool(self.job_id):
            errors["application"] = "Choose an application or a job (one of them)."
        try:
            (validate_email if self.channel == Channel.EMAIL else http_url)(self.target)
        except ValidationError as exc:
            errors["target"] = (f"{self.target[:100]!r} is not an e-mail address." if self.channel == Channel.EMAIL
                                else exc.messages[0])
        if not (self.on_failure or self.on_long_running or self.on_flow_run_end):
            errors["on_failure"] = "Choose at least one event."
        if errors:
            raise ValidationError(errors)


class Outcome(models.TextChoices):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class Notification(models.Model):
    """One message to one target: written when the event happens, sent after the commit by a worker."""

    rule = models.ForeignKey(NotificationRule, on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="notifications")
    event = models.CharField(max_length=20, choices=Event.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    target = models.CharField(max_length=500)
    subject = models.CharField(max_length=300)
    payload = models.JSONField(default=dict, encoder=DjangoJSONEncoder, help_text="What a webhook receives; an e-mail says the same in words.")
    object_type = models.CharField(max_length=40)
    object_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=8, choices=Outcome.choices, default=Outcome.PENDING)
    response_status = models.IntegerField(null=True, blank=True, help_text="The webhook's HTTP status.")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["object_type", "object_id"], name="notification_object")]

    def __str__(self) -> str:
        return f"{self.event} → {self.target} ({self.outcome})"


class LongRunningMark(models.Model):
    """An execution found long running: noticed (and notified) once."""

    execution = models.OneToOneField("engine.Execution", on_delete=models.CASCADE, related_name="long_running_mark")
    detected_at = models.DateTimeField(default=timezone.now)
