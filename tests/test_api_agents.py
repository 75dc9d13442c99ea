"""/api/v1/agents (SPEC §1, §5.2): list, get, block and unblock."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.engine.models import Execution, Status
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(administrator) -> APIClient:
    return token_client(administrator)


def agent(name: str, status: str = AgentStatus.READY, kind: str = AgentKind.CLUSTER, age: int = 0) -> Agent:
    return Agent.objects.create(name=name, kind=kind, host="batch-1", pid=100, os_name="Linux", cpu_cores=8,
                                stats={"memory": {"percent": 40}}, status=status,
                                last_heartbeat=timezone.now() - timedelta(seconds=age))


def test_it_lists_agents_latest_heartbeat_first_with_their_running_count(api, make_job):
    agent("old", AgentStatus.OFFLINE, age=600)
    busy = agent("busy")
    job = make_job("extract")
    for status in (Status.RUNNING, Status.RUNNING, Status.COMPLETED):
        Execution.objects.create(job=job, application=job.application, status=status, agent=busy)
    body = api.get("/api/v1/agents").json()
    assert [(a["name"], a["status"], a["running"]) for a in body["results"]] == [
        ("busy", "ready", 2), ("old", "offline", 0)]
    assert body["results"][0]["instance_id"] == str(busy.instance_id)


def test_it_shows_an_agent(api):
    dispatcher = agent("dispatcher@batch-1", kind=AgentKind.DISPATCHER)
    body = api.get(f"/api/v1/agents/{dispatcher.instance_id}").json()
    assert {key: body[key] for key in ("name", "kind", "host", "pid", "os_name", "cpu_cores", "stats", "status",
                                       "running")} == {
        "name": "dispatcher@batch-1", "kind": "dispatcher", "host": "batch-1", "pid": 100, "os_name": "Linux",
        "cpu_cores": 8, "stats": {"memory": {"percent": 40}}, "status": "ready", "running": 0}
    assert body["last_heartbeat"] and body["started_at"]


def test_it_blocks_and_unblocks_a_live_agent(api):
    cluster = agent("cluster")
    blocked = api.post(f"/api/v1/agents/{cluster.instance_id}/block")
    assert (blocked.status_code, blocked.json()["status"]) == (200, "blocked")
    assert api.post(f"/api/v1/agents/{cluster.instance_id}/block").json()["status"] == "blocked"  # idempotent
    unblocked = api.post(f"/api/v1/agents/{cluster.instance_id}/unblock")
    assert (unblocked.status_code, unblocked.json()["status"]) == (200, "ready")
    cluster.refresh_from_db()
    assert cluster.status == AgentStatus.READY


@pytest.mark.parametrize("action", ["block", "unblock"])
def test_it_refuses_to_block_or_unblock_an_offline_agent(api, action):
    gone = agent("gone", AgentStatus.OFFLINE)
    response = api.post(f"/api/v1/agents/{gone.instance_id}/{action}")
    assert (response.status_code, response.json()["error"]) == (400, "INVALID_INPUT")
    assert "gone is offline" in response.json()["detail"]
    gone.refresh_from_db()
    assert gone.status == AgentStatus.OFFLINE


@pytest.mark.parametrize("instance_id", ["00000000-0000-0000-0000-000000000000", "0" * 36, "-" * 36, "not-a-uuid"])
def test_it_answers_404_for_an_unknown_agent(api, instance_id):
    assert api.get(f"/api/v1/agents/{instance_id}").status_code == 404
    assert api.post(f"/api/v1/agents/{instance_id}/block").status_code == 404
