"""The role matrix (SPEC §5): for every endpoint and method, anonymous → 401, a user without a
batch role → 403, a viewer → what an administrator gets for reads and 403 for changes, an
administrator → the operation's success status."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
import responses
from django.contrib.auth.models import User
from django.utils import timezone
from rest_framework.test import APIClient

from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.catalog.models import Application, Concurrency, Flow, JobType, Process
from apps.engine.models import Execution, Status
from apps.flows import services as flows
from apps.scheduling.models import Schedule
from tests.conftest import token_client

EXTERNAL = "https://ext.example.com/pom"
JOB_TYPE = {"name": "NEWTYPE", "url": EXTERNAL, "start_path": "/start", "status_path": "/status"}

# (method, path, body, status for an administrator); {schedule}, {failed}, {running}, {ready},
# {blocked} stand for the ids of the `world` fixture.
ENDPOINTS = [
    ("get", "/api/v1/backgroundtasks", None, 200),
    ("post", "/api/v1/backgroundtasks/trigger/nightly", None, 200),
    ("get", "/api/v1/health", None, 200),
    ("get", "/api/v1/apps", None, 200),
    ("post", "/api/v1/apps", {"name": "RPM"}, 201),
    ("get", "/api/v1/apps/RMS", None, 200),
    ("put", "/api/v1/apps/RMS", {"name": "RMS", "description": "Merchandising"}, 200),
    ("patch", "/api/v1/apps/RMS", {"throttle_limit": 4}, 200),
    ("delete", "/api/v1/apps/SPARE", None, 204),
    ("get", "/api/v1/apps/RMS/stats", None, 200),
    ("post", "/api/v1/apps/RMS/configure", {"job_types": {"MOCKTYPE": {"url": "https://rms.example.com"}}}, 200),
    ("get", "/api/v1/job-types", None, 200),
    ("post", "/api/v1/job-types", JOB_TYPE, 201),
    ("get", "/api/v1/job-types/MOCKTYPE", None, 200),
    ("put", "/api/v1/job-types/MOCKTYPE", {**JOB_TYPE, "name": "MOCKTYPE"}, 200),
    ("patch", "/api/v1/job-types/MOCKTYPE", {"poll_interval_seconds": 9}, 200),
    ("delete", "/api/v1/job-types/MOCKTYPE", None, 204),
    ("post", "/api/v1/job-types/MOCKTYPE/check", None, 200),
    ("get", "/api/v1/jobs", None, 200),
    ("post", "/api/v1/jobs", {"name": "weekly", "application": "RMS", "command": "true"}, 201),
    ("get", "/api/v1/jobs/nightly", None, 200),
    ("put", "/api/v1/jobs/nightly", {"name": "nightly", "application": "RMS", "command": "true"}, 200),
    ("patch", "/api/v1/jobs/nightly", {"description": "the big one"}, 200),
    ("delete", "/api/v1/jobs/spare", None, 204),
    ("get", "/api/v1/jobs/nightly/schedules", None, 200),
    ("post", "/api/v1/jobs/nightly/schedules", {"kind": "cron", "cron": "0 3 * * *"}, 201),
    ("get", "/api/v1/jobs/nightly/executions", None, 200),
    ("post", "/api/v1/jobs/nightly/executions", {}, 201),
    ("get", "/api/v1/schedules", None, 200),
    ("get", "/api/v1/schedules/{schedule}", None, 200),
    ("put", "/api/v1/schedules/{schedule}", {"job": "nightly", "kind": "interval", "interval_seconds": 60}, 200),
    ("patch", "/api/v1/schedules/{schedule}", {"cron": "30 2 * * *"}, 200),
    ("delete", "/api/v1/schedules/{schedule}", None, 204),
    ("post", "/api/v1/schedules/{schedule}/pause", None, 200),
    ("post", "/api/v1/schedules/{schedule}/resume", None, 200),
    ("get", "/api/v1/executions", None, 200),
    ("get", "/api/v1/executions/{failed}", None, 200),
    ("post", "/api/v1/executions/{running}/kill", None, 200),
    ("post", "/api/v1/executions/{failed}/restart", None, 201),
    ("get", "/api/v1/executions/{failed}/log", None, 200),
    ("get", "/api/v1/agents", None, 200),
    ("get", "/api/v1/agents/{ready}", None, 200),
    ("post", "/api/v1/agents/{ready}/block", None, 200),
    ("post", "/api/v1/agents/{blocked}/unblock", None, 200),
    ("post", "/api/v1/cron/preview", {"cron": "0 0 2 * * ?"}, 200),
    ("post", "/api/v1/executions/{pending}/hold", None, 200),
    ("post", "/api/v1/executions/{held}/release", None, 200),
    ("post", "/api/v1/executions/{skippable}/skip", None, 200),
    ("get", "/api/v1/flows", None, 200),
    ("get", "/api/v1/flows/{flow}", None, 200),
    ("get", "/api/v1/flows/{flow}/runs", None, 200),
    ("post", "/api/v1/flows/{flow}/runs", {"business_date": "2026-12-24"}, 201),
    ("get", "/api/v1/flows/{flow}/schedules", None, 200),
    ("post", "/api/v1/flows/{flow}/schedules", {"kind": "cron", "cron": "0 0 1 * * ?"}, 201),
    ("get", "/api/v1/flow-runs", None, 200),
    ("get", "/api/v1/flow-runs/{run}", None, 200),
    ("post", "/api/v1/flow-runs/{run}/hold", None, 200),
    ("post", "/api/v1/flow-runs/{held_run}/release", None, 200),
    ("post", "/api/v1/flow-runs/{run}/kill", None, 200),
]
# POSTs that only read: viewers may call them.
READING_POSTS = {"/api/v1/cron/preview"}
ENVELOPED = "/api/v1/backgroundtasks"


@pytest.fixture
def world(make_job) -> dict[str, object]:
    """What the endpoints name, plus a spare application and job that can be deleted."""
    JobType.objects.create(name="MOCKTYPE", url=EXTERNAL, start_path="/start", status_path="/status",
                           check_path="/health")
    Application.objects.create(name="SPARE")
    job = make_job("nightly", concurrency=Concurrency.ALLOW)
    make_job("spare")
    now = timezone.now()
    agent = {status: Agent.objects.create(name=f"{status}@host", kind=AgentKind.CLUSTER, host="host", pid=1,
                                          status=status, last_heartbeat=now)
             for status in (AgentStatus.READY, AgentStatus.BLOCKED)}
    flow = Flow.objects.create(application=job.application, name="Nightly", cycle="Nightly")
    make_job("load", process=Process.objects.create(flow=flow, name="Load"))
    run = flows.start_run(flow, business_date=date(2026, 12, 1))
    held_run = flows.hold(flows.start_run(flow, business_date=date(2026, 12, 2)), by="ops")
    pending = [Execution.objects.create(job=job, application=job.application, status=status)
               for status in (Status.WAITING, Status.HELD, Status.LOADED)]
    return {
        "flow": "RMS/Nightly", "run": run.pk, "held_run": held_run.pk,
        "pending": pending[0].pk, "held": pending[1].pk, "skippable": pending[2].pk,
        "schedule": Schedule.objects.create(job=job, kind="cron", cron="0 2 * * *").pk,
        "failed": Execution.objects.create(job=job, application=job.application, status=Status.ERROR,
                                           finished_at=now, log="boom\n").pk,
        "running": Execution.objects.create(job=job, application=job.application, status=Status.RUNNING,
                                            started_at=now - timedelta(seconds=3)).pk,
        "ready": agent[AgentStatus.READY].instance_id,
        "blocked": agent[AgentStatus.BLOCKED].instance_id,
    }


@pytest.fixture
def external_system():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{EXTERNAL}/health", status=204)
        yield mock


def call(client: APIClient, method: str, path: str, body):
    return getattr(client, method)(path, body, format="json") if body is not None else getattr(client, method)(path)


def error_code(response) -> str:
    body = response.json()
    return body["params"]["err"] if "params" in body else body["error"]


@pytest.mark.parametrize(("method", "path", "body", "status"), ENDPOINTS,
                         ids=[f"{method.upper()} {path}" for method, path, _, _ in ENDPOINTS])
def test_it_applies_the_role_matrix(world, external_system, administrator, viewer, method, path, body, status):
    path = path.format(**world)
    nobody = User.objects.create_user("nia", is_staff=True)

    anonymous = call(APIClient(), method, path, body)
    assert (anonymous.status_code, error_code(anonymous)) == (401, "UNAUTHORIZED")
    refused = call(token_client(nobody), method, path, body)
    assert (refused.status_code, error_code(refused)) == (403, "FORBIDDEN")
    as_viewer = call(token_client(viewer), method, path, body)
    if method == "get" or path in READING_POSTS:
        assert as_viewer.status_code == status, as_viewer.content
    else:
        assert (as_viewer.status_code, error_code(as_viewer)) == (403, "FORBIDDEN")
    # Last: an administrator's call may change what the others were refused.
    as_administrator = call(token_client(administrator), method, path, body)
    assert as_administrator.status_code == status, as_administrator.content
    if path.startswith(ENVELOPED) and status < 300:
        assert as_administrator.json()["params"]["status"] == "success"


def test_it_lists_every_api_operation_in_the_matrix():
    """A new endpoint gets a row above: the schema's operations and the matrix's rows agree."""
    from drf_spectacular.generators import SchemaGenerator

    names = {"RMS", "SPARE", "nightly", "spare", "MOCKTYPE", "Nightly"}

    def shape(path: str) -> tuple[str, ...]:
        return tuple("*" if part.startswith("{") or part in names else part
                     for part in path.replace("{flow}", "{application}/{name}").replace("{key}", "{a}/{b}").split("/"))

    schema = SchemaGenerator().get_schema(request=None, public=True)
    documented = {(method, shape(path)) for path, methods in schema["paths"].items() for method in methods}
    assert documented == {(method, shape(path)) for method, path, _, _ in ENDPOINTS}
