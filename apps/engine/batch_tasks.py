"""Housekeeping PYTHON tasks that ship with Batchdesk (schedule them like any job)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone
from django_q.models import Task

from apps.agents.models import Agent, AgentStatus
from apps.catalog.registry import batch_task
from apps.engine.models import TERMINAL, Execution


def _days(values: dict[str, str], default: int) -> int:
    days = int(values.get("days", default))
    if days < 1:
        raise ValueError(f"days must be at least 1, not {days}")
    return days


@batch_task("purge_executions", group="housekeeping",
            description="Delete finished executions older than `days` (default 30).")
def purge_executions(values: dict[str, str]) -> int:
    cutoff = timezone.now() - timedelta(days=_days(values, 30))
    deleted, _ = Execution.objects.filter(status__in=TERMINAL, finished_at__lt=cutoff).delete()
    print(f"deleted {deleted} executions finished before {cutoff:%Y-%m-%d %H:%M}")
    return deleted


@batch_task("purge_queue_tasks", group="housekeeping",
            description="Delete django-q2 task results older than `days` (default 7).")
def purge_queue_tasks(values: dict[str, str]) -> int:
    cutoff = timezone.now() - timedelta(days=_days(values, 7))
    deleted, _ = Task.objects.filter(stopped__lt=cutoff).delete()
    print(f"deleted {deleted} queue task results older than {cutoff:%Y-%m-%d %H:%M}")
    return deleted


@batch_task("purge_offline_agents", group="housekeeping",
            description="Forget agents offline for more than `days` (default 7).")
def purge_offline_agents(values: dict[str, str]) -> int:
    cutoff = timezone.now() - timedelta(days=_days(values, 7))
    deleted, _ = Agent.objects.filter(status=AgentStatus.OFFLINE, last_heartbeat__lt=cutoff).delete()
    print(f"forgot {deleted} agents offline since before {cutoff:%Y-%m-%d %H:%M}")
    return deleted


@batch_task("sleep_seconds", group="demo", description="Sleep `seconds` (default 5), printing progress.")
def sleep_seconds(values: dict[str, str]) -> None:
    import time

    seconds = float(values.get("seconds", 5))
    for second in range(int(seconds)):
        print(f"second {second + 1} of {seconds:g}", flush=True)
        time.sleep(1)
