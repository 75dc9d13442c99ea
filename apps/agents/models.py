"""Agents: every qcluster and dispatcher process, with its heartbeat."""

from __future__ import annotations

import uuid

from django.db import models


class AgentStatus(models.TextChoices):
    READY = "ready"
    BLOCKED = "blocked"
    OFFLINE = "offline"


class AgentKind(models.TextChoices):
    CLUSTER = "cluster"
    DISPATCHER = "dispatcher"


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

    class Meta:
        ordering = ["-last_heartbeat"]
        permissions = [("block_agent", "Can block and unblock agents")]
        indexes = [models.Index(fields=["status", "last_heartbeat"], name="agent_liveness")]

    def __str__(self) -> str:
        return self.name
