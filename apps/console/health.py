"""The health of the installation: database, broker, agents, custom job types (SPEC §5.2, §8)."""

from __future__ import annotations

import time

from django.conf import settings
from django.db import connection
from django.db.models import Count

from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.catalog.models import JobType


def _timed(probe) -> dict:
    started = time.perf_counter()
    try:
        probe()
    except Exception as exc:  # a health page reports failures, it does not raise them
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    return {"ok": True, "latency_ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _broker() -> None:
    from django_q.brokers import get_broker

    if get_broker().ping() is False:
        raise ConnectionError("the broker did not answer")


def health_report() -> dict:
    """`status`: down without a database; degraded without a live cluster and dispatcher, with a
    broker that does not answer, or with a custom job type whose last system check failed."""
    database = _timed(_database)
    if not database["ok"]:
        return {"status": "down", "database": database, "broker": {"ok": None}, "agents": {}, "job_types": []}
    broker = {**_timed(_broker), "kind": "redis" if settings.REDIS_URL else "orm"}
    counts = dict(Agent.objects.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    agents = {
        **{status: counts.get(status, 0) for status in AgentStatus.values},
        "clusters_alive": Agent.objects.alive(AgentKind.CLUSTER).count(),
        "dispatchers_alive": Agent.objects.alive(AgentKind.DISPATCHER).count(),
    }
    job_types = [{"name": t.name, "up": t.last_check_up, "checked_at": t.last_check_at, "error": t.last_check_error}
                 for t in JobType.objects.order_by("name")]
    degraded = (not broker["ok"] or not agents["clusters_alive"] or not agents["dispatchers_alive"]
                or any(t["up"] is False for t in job_types))
    return {"status": "degraded" if degraded else "ok", "database": database, "broker": broker,
            "agents": agents, "job_types": job_types}
