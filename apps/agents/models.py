"""Agents: every qcluster and dispatcher process, with its heartbeat."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class AgentStatus(models.TextChoices):
    READY = "ready"
    BLOCKED = "blocked"
    OFFLINE = "offline"


class AgentKind(models.TextChoices):
    CLUSTER = "cluster"
    DISPATCHER = "dispatcher"


class AgentQuerySet(models.QuerySet):
    def alive(self, kind: str | None = None) -> AgentQuerySet:
        """The one definition of a live agent: not offline, and beaten within BATCHDESK_AGENT_LOST_SECONDS."""
        cutoff = timezone.now() - timedelta(seconds=settings.BATCHDESK["AGENT_LOST_SECONDS"])
        alive = self.exclude(status=AgentStatus.OFFLINE).filter(last_heartbeat__gte=cutoff)
        return alive.filter(kind=kind) if kind else alive


class Agent(models.Model):
    instance_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=12, choices=AgentKind.choices)
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    os_name = models.CharField(max_length=64, blank=True)
    os_version = models.CharField(max_length=200, blank=True)
    cpu_arch = models.CharField(max_length=32, blank=True)
    cpu_cores = models.PositiveIntegerField(default=0)
    stats = models.JSONField(default=dict, blank=True, help_text="Memory, swap and CPU load at the last heartbeat.")
    status = models.CharField(max_length=8, choices=AgentStatus.choices, default=AgentStatus.READY)
    # The operator's block, kept while the agent is offline so that it is blocked when it comes back.
    blocked = models.BooleanField(default=False)
    started_at = models.DateTimeField(auto_now_add=True)
    last_heartbeat = models.DateTimeField()

    objects = AgentQuerySet.as_manager()

    class Meta:
        ordering = ["-last_heartbeat"]
        permissions = [("block_agent", "Can block and unblock agents")]
        indexes = [models.Index(fields=["status", "last_heartbeat"], name="agent_liveness")]

    def __str__(self) -> str:
        return self.name
