"""Schedules of jobs (and, later, flows): SPEC §4."""

from __future__ import annotations

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


def default_timezone() -> str:
    return settings.TIME_ZONE


def validate_timezone(name: str) -> None:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Unknown time zone {name!r}: use an IANA name such as Europe/London.") from None


class Kind(models.TextChoices):
    ONCE = "once"
    INTERVAL = "interval"
    CRON = "cron"


class Misfire(models.TextChoices):
    SKIP = "skip"
    RUN_ONCE = "run_once"
    RUN_ALL = "run_all"


class Schedule(models.Model):
    # Exactly one target: a job now, a whole flow with the flow work.
    job = models.ForeignKey(
        "catalog.JobDefinition", on_delete=models.CASCADE, null=True, blank=True, related_name="schedules"
    )
    flow = models.ForeignKey("catalog.Flow", on_delete=models.CASCADE, null=True, blank=True, related_name="schedules")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CRON)
    cron = models.CharField(max_length=200, blank=True)
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    repeats = models.PositiveIntegerField(default=0, help_text="0 = forever.")
    timezone = models.CharField(max_length=64, default=default_timezone, validators=[validate_timezone])
    misfire = models.CharField(max_length=10, choices=Misfire.choices, default=Misfire.SKIP)
    active = models.BooleanField(default=True)
    extra = models.TextField(blank=True)
    next_fire_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    fire_count = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        indexes = [models.Index(fields=["active", "next_fire_at"], name="schedule_due")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(job__isnull=False) & Q(flow__isnull=True)) | (Q(job__isnull=True) & Q(flow__isnull=False)),
                name="schedule_has_one_target",
            ),
        ]

    def __str__(self) -> str:
        target = self.job or self.flow
        spec = self.cron if self.kind == Kind.CRON else (f"every {self.interval_seconds}s" if self.kind == Kind.INTERVAL else "once")
        return f"{target} ({spec})"
