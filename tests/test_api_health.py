"""/api/v1/health (SPEC §5.2): database, broker, agents and each custom job type's last check."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.catalog.models import JobType
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


def beating(kind: str) -> Agent:
    return Agent.objects.create(name=kind, kind=kind, host="h", pid=1, last_heartbeat=timezone.now())


def test_it_reports_ok_with_a_live_cluster_and_dispatcher(viewer):
    beating(AgentKind.CLUSTER)
    beating(AgentKind.DISPATCHER)
    JobType.objects.create(name="MOCKTYPE", start_path="/s", status_path="/t", last_check_up=True,
                           last_check_at=timezone.now())
    body = token_client(viewer).get("/api/v1/health").json()
    assert list(body) == ["status", "database", "broker", "agents", "job_types"]
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True and body["broker"]["ok"] is True
    assert (body["agents"]["clusters_alive"], body["agents"]["dispatchers_alive"], body["agents"]["ready"]) == (1, 1, 2)
    assert [(t["name"], t["up"]) for t in body["job_types"]] == [("MOCKTYPE", True)]
    assert body["job_types"][0]["checked_at"]


def test_it_reports_degraded_without_a_live_dispatcher(viewer):
    beating(AgentKind.CLUSTER)
    stale = beating(AgentKind.DISPATCHER)
    Agent.objects.filter(pk=stale.pk).update(last_heartbeat=timezone.now() - timedelta(hours=1))
    assert token_client(viewer).get("/api/v1/health").json()["status"] == "degraded"


def test_it_reports_degraded_when_a_job_type_s_check_failed(viewer):
    beating(AgentKind.CLUSTER)
    beating(AgentKind.DISPATCHER)
    JobType.objects.create(name="MOCKTYPE", start_path="/s", status_path="/t", last_check_up=False)
    assert token_client(viewer).get("/api/v1/health").json()["status"] == "degraded"


def test_it_counts_agents_by_status(viewer):
    Agent.objects.create(name="b", kind=AgentKind.CLUSTER, host="h", pid=1, status=AgentStatus.BLOCKED,
                         last_heartbeat=timezone.now())
    agents = token_client(viewer).get("/api/v1/health").json()["agents"]
    assert (agents["ready"], agents["blocked"], agents["offline"]) == (0, 1, 0)
