"""Agent registration, heartbeats and the recovery of executions whose agent was lost."""

from __future__ import annotations

import logging
import os
import platform
import socket

import psutil
from django.db import transaction
from django.utils import timezone

from apps import audit
from apps.agents.models import Agent, AgentKind, AgentStatus

log = logging.getLogger(__name__)

# The agent of this process; qcluster's workers inherit it through the environment.
AGENT_ENV = "BATCHDESK_AGENT_ID"


def _stats() -> dict:
    memory, swap = psutil.virtual_memory(), psutil.swap_memory()
    load1, load5, load15 = os.getloadavg()
    return {
        "memory_percent": memory.percent,
        "memory_available_mb": memory.available // 2**20,
        "swap_percent": swap.percent,
        "load": [round(load1, 2), round(load5, 2), round(load15, 2)],
    }


def register(kind: AgentKind) -> Agent:
    """Record this process as an agent and make it the agent of its children."""
    host, pid = socket.gethostname(), os.getpid()
    agent = Agent.objects.create(
        name=f"{kind}@{host}:{pid}",
        kind=kind,
        host=host,
        pid=pid,
        os_name=platform.system(),
        os_version=platform.release(),
        cpu_arch=platform.machine(),
        cpu_cores=os.cpu_count() or 0,
        stats=_stats(),
        last_heartbeat=timezone.now(),
    )
    os.environ[AGENT_ENV] = str(agent.pk)
    log.info("registered agent %s", agent.name)
    return agent


def current_agent_id() -> int | None:
    value = os.environ.get(AGENT_ENV)
    return int(value) if value else None


def heartbeat(agent: Agent) -> None:
    """Beat; an agent that was taken for lost but still lives comes back as ready."""
    now = timezone.now()
    Agent.objects.filter(pk=agent.pk).update(last_heartbeat=now, stats=_stats())
    back = Agent.objects.filter(pk=agent.pk, status=AgentStatus.OFFLINE)
    back.filter(blocked=True).update(status=AgentStatus.BLOCKED)
    back.update(status=AgentStatus.READY)


def sign_off(agent: Agent) -> None:
    Agent.objects.filter(pk=agent.pk).update(status=AgentStatus.OFFLINE)


def set_blocked(agent: Agent, blocked: bool, by: str = "") -> bool:
    """Block (no new executions start on it) or unblock an agent; False if it is offline."""
    target = AgentStatus.BLOCKED if blocked else AgentStatus.READY
    live = Agent.objects.filter(pk=agent.pk).exclude(status=AgentStatus.OFFLINE)
    with transaction.atomic():
        done = bool(live.update(status=target, blocked=blocked))
        if done:
            audit.record(by, "block" if blocked else "unblock", agent)
    return done


def mark_lost_agents() -> int:
    """Agents that stopped beating go offline; returns how many did."""
    with transaction.atomic():
        lost = Agent.objects.exclude(status=AgentStatus.OFFLINE).exclude(pk__in=Agent.objects.alive())
        names = list(lost.values_list("name", flat=True))
        count = lost.update(status=AgentStatus.OFFLINE)
    for name in names:
        log.warning("agent %s missed its heartbeats: offline", name)
    return count
