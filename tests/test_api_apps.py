"""/api/v1/apps (SPEC §5.2): CRUD by name, stats, and the environment configuration of §3."""

from __future__ import annotations

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.catalog.models import Application, JobType, JobTypeEnvironment
from apps.engine.models import Execution, Status
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(administrator) -> APIClient:
    return token_client(administrator)


def test_it_lists_applications_by_name(api, app):
    Application.objects.create(name="ALLOC", throttle_limit=2, enabled=False)
    body = api.get("/api/v1/apps").json()
    assert body["count"] == 2
    assert body["results"] == [
        {"name": "ALLOC", "description": "", "throttle_limit": 2, "enabled": False},
        {"name": "RMS", "description": "Retail merchandising", "throttle_limit": 0, "enabled": True},
    ]


def test_it_creates_gets_updates_and_deletes_an_application(api):
    created = api.post("/api/v1/apps", {"name": "ReSA", "description": "Sales audit", "throttle_limit": 3},
                       format="json")
    assert created.status_code == 201
    assert created.json() == {"name": "ReSA", "description": "Sales audit", "throttle_limit": 3, "enabled": True}
    assert api.get("/api/v1/apps/ReSA").json()["throttle_limit"] == 3
    assert api.patch("/api/v1/apps/ReSA", {"enabled": False}, format="json").json()["enabled"] is False
    replaced = api.put("/api/v1/apps/ReSA", {"name": "ReSA", "description": "Audit", "throttle_limit": 0,
                                             "enabled": True}, format="json")
    assert replaced.status_code == 200
    assert replaced.json() == {"name": "ReSA", "description": "Audit", "throttle_limit": 0, "enabled": True}
    assert api.delete("/api/v1/apps/ReSA").status_code == 204
    assert not Application.objects.filter(name="ReSA").exists()
    assert api.get("/api/v1/apps/ReSA").json() == {"error": "NOT_FOUND",
                                                   "detail": "No Application matches the given query."}


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "has space"}, "name"),
    ({"name": "x" * 65}, "name"),
    ({"name": "RMS"}, "name"),  # taken
    ({"name": "NEW", "throttle_limit": -1}, "throttle_limit"),
    ({"name": "NEW", "throttle_limit": "many"}, "throttle_limit"),
    ({"name": "NEW", "enabled": "perhaps"}, "enabled"),
    ({}, "name"),
])
def test_it_refuses_an_invalid_application(api, app, body, field):
    response = api.post("/api/v1/apps", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_INPUT"
    assert field in response.json()["fields"]


def test_it_takes_integers_up_to_postgresql_s_limit_on_every_backend(api):
    assert api.post("/api/v1/apps", {"name": "BIG", "throttle_limit": 2**31 - 1}, format="json").status_code == 201
    response = api.post("/api/v1/apps", {"name": "BIGGER", "throttle_limit": 2**31}, format="json")
    assert response.json()["fields"] == {"throttle_limit": ["Ensure this value is less than or equal to 2147483647."]}


def test_it_refuses_to_delete_an_application_with_jobs(api, make_job):
    make_job("extract")
    response = api.delete("/api/v1/apps/RMS")
    assert response.status_code == 409
    assert response.json()["error"] == "IN_USE"
    assert Application.objects.filter(name="RMS").exists()


def test_it_counts_agents_jobs_and_running_executions(api, make_job):
    job = make_job("extract")
    make_job("load")
    Execution.objects.create(job=job, application=job.application, status=Status.RUNNING, started_at=timezone.now())
    Execution.objects.create(job=job, application=job.application, status=Status.COMPLETED)
    for status in (AgentStatus.READY, AgentStatus.BLOCKED, AgentStatus.OFFLINE):
        Agent.objects.create(name=status, kind=AgentKind.CLUSTER, host="h", pid=1, status=status,
                             last_heartbeat=timezone.now())
    Agent.objects.create(name="dispatcher", kind=AgentKind.DISPATCHER, host="h", pid=2, last_heartbeat=timezone.now())
    assert api.get("/api/v1/apps/RMS/stats").json() == {"agents": 2, "jobs": 2, "running": 1}


class TestConfigure:
    @pytest.fixture
    def job_type(self, db) -> JobType:
        return JobType.objects.create(name="MOCKTYPE", url="https://pom.example.com", start_path="/start",
                                      status_path="/status", scope="batch")

    def test_it_sets_url_and_scope_for_one_application(self, api, app, job_type):
        response = api.post("/api/v1/apps/RMS/configure",
                            {"job_types": {"MOCKTYPE": {"url": "https://rms.example.com", "scope": "rms"}}},
                            format="json")
        assert response.status_code == 200
        assert response.json() == {"job_types": {"MOCKTYPE": {"url": "https://rms.example.com", "scope": "rms"}}}
        environment = JobTypeEnvironment.objects.get(application=app, job_type=job_type)
        assert (environment.url, environment.scope) == ("https://rms.example.com", "rms")
        job_type.refresh_from_db()
        assert (job_type.url, job_type.scope) == ("https://pom.example.com", "batch")  # untouched

    def test_it_changes_only_what_it_is_given(self, api, app, job_type):
        api.post("/api/v1/apps/RMS/configure", {"job_types": {"MOCKTYPE": {"url": "https://a.example.com",
                                                                           "scope": "a"}}}, format="json")
        response = api.post("/api/v1/apps/RMS/configure", {"job_types": {"MOCKTYPE": {"scope": "b"}}}, format="json")
        assert response.json()["job_types"]["MOCKTYPE"] == {"url": "https://a.example.com", "scope": "b"}

    @pytest.mark.parametrize("body", [
        {"job_types": {"NOPE": {"url": "https://x.example.com"}}},
        {"job_types": {"MOCKTYPE": {"url": "not a url"}}},
        {"job_types": {"MOCKTYPE": {"colour": "red"}}},
        {"job_types": {"MOCKTYPE": {}}},
        {"job_types": {}},
        {"job_types": {"MOCKTYPE": "https://x.example.com"}},
        {"job_types": {"bad\x00name": {"url": "https://x.example.com"}}},
        {"job_types": []},
        {},
        [],
    ])
    def test_it_refuses_what_it_cannot_apply_and_changes_nothing(self, api, app, job_type, body):
        response = api.post("/api/v1/apps/RMS/configure", body, format="json")
        assert response.status_code == 400
        assert response.json()["error"] == "INVALID_INPUT"
        assert not JobTypeEnvironment.objects.exists()

    def test_it_answers_404_for_an_unknown_application(self, api, job_type):
        response = api.post("/api/v1/apps/NOPE/configure", {"job_types": {"MOCKTYPE": {"scope": "x"}}}, format="json")
        assert response.status_code == 404
