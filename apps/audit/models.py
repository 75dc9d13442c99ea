"""The audit trail: who did what to which object, and when. Written by the services that every
entry point calls (apps.audit.record), so nothing an operator does escapes it."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class AuditEntry(models.Model):
    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor = models.CharField(max_length=150, help_text="Who: a user name, cli:<user>, schedule <id>, system.")
    action = models.CharField(max_length=40, db_index=True)
    target_type = models.CharField(max_length=40, help_text="What kind of object: execution, job, flow run, …")
    target_id = models.CharField(max_length=64, blank=True)
    target = models.CharField(max_length=200, help_text="The object as it was named then.")
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [models.Index(fields=["target_type", "target_id"], name="audit_target")]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor} {self.action} {self.target}"
