"""Flow runs (SPEC §2a): one flow run for one business date, its executions created at its start."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class RunStatus(models.TextChoices):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"


class FlowRun(models.Model):
    flow = models.ForeignKey("catalog.Flow", on_delete=models.PROTECT, related_name="runs")
    cycle = models.CharField(max_length=64, blank=True, help_text="The flow's cycle when the run started.")
    business_date = models.DateField()
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.RUNNING)
    held = models.BooleanField(default=False, help_text="No new starts while held; running ones finish.")
    trigger = models.CharField(max_length=10, default="manual")
    triggered_by = models.CharField(max_length=150, blank=True)
    parameters = models.TextField(blank=True, help_text="Override its jobs' defaults key by key.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True, help_text="Set when the run is over: it is closed.")

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [("hold_flowrun", "Can hold and release flow runs"), ("kill_flowrun", "Can kill flow runs")]
        indexes = [models.Index(fields=["business_date", "flow"], name="flowrun_date_flow"),
                   models.Index(fields=["status", "-created_at"], name="flowrun_status_recent")]
        constraints = [
            # One open run per flow and business date (FLOW_ALREADY_RUNNING).
            models.UniqueConstraint(fields=["flow", "business_date"], condition=Q(finished_at__isnull=True),
                                    name="flowrun_one_open_per_flow_and_date"),
        ]

    def __str__(self) -> str:
        return f"{self.flow} {self.business_date:%Y-%m-%d} #{self.pk}"

    @property
    def is_open(self) -> bool:
        return self.finished_at is None
