"""Schemathesis against /api/schema/: every operation, as an administrator, answers without a
server error and as its schema says (status code, content type, body).

Each operation gets examples with path parameters that name the fixtures (so that the happy
paths and their 400/409s are reached) and a few with generated ones (mostly 404s); with valid data
(checked for conformance) and with invalid data (which must never give a 5xx). Every example runs
in a savepoint that is rolled back, so a DELETE or a rename never takes the fixtures from the next.
The run is bounded by the example counts: about 1,100 requests, some 40 s.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
import responses
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from django.utils import timezone
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.authtoken.models import Token
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.agents.models import Agent, AgentKind
from apps.catalog.models import Concurrency, Flow, JobType, Process
from apps.engine.models import Execution, Status
from apps.flows import services as flows
from apps.scheduling.models import Schedule

EXAMPLES = 12  # per operation and generation mode, on the fixtures' paths
FEW = 4  # on generated paths
BUDGET_SECONDS = 300  # a guard against a runaway; the example counts bound the run (~40 s)
CONFORMANCE = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXTERNAL = "https://ext.example.com/pom"


@pytest.fixture
def world(make_job, administrator) -> dict[str, dict]:
    """One of everything a path can name; returns the path parameters that reach each of them."""
    job_type = JobType(name="MOCKTYPE", url=EXTERNAL, start_path="/start", status_path="/status",
                       check_path="/health", token_url="https://auth.example.com/token", client_id="batchdesk")
    job_type.set_client_secret("never-shown")
    job_type.save()
    job = make_job("nightly_extract", concurrency=Concurrency.ALLOW, parameters="store=12")
    schedule = Schedule.objects.create(job=job, kind="cron", cron="0 2 * * *")
    failed = Execution.objects.create(job=job, application=job.application, status=Status.ERROR, error="exit 1",
                                      log="line 1\nline 2\n", finished_at=timezone.now())
    Execution.objects.create(job=job, application=job.application, status=Status.RUNNING,
                             started_at=timezone.now() - timedelta(seconds=5))
    agent = Agent.objects.create(name="cluster@host", kind=AgentKind.CLUSTER, host="host", pid=1,
                                 last_heartbeat=timezone.now())
    flow = Flow.objects.create(application=job.application, name="Nightly", cycle="Nightly")
    make_job("load_stock", process=Process.objects.create(flow=flow, name="Load"))
    run = flows.start_run(flow)
    return {
        "auth": {"Authorization": f"Token {Token.objects.create(user=administrator).key}"},
        "/api/v1/apps/": {"name": job.application.name},
        "/api/v1/job-types/": {"name": job_type.name},
        "/api/v1/jobs/": {"name": job.name},
        "/api/v1/backgroundtasks/": {"task_name": job.name},
        "/api/v1/schedules/": {"id": schedule.pk},
        "/api/v1/executions/": {"id": failed.pk},
        "/api/v1/agents/": {"instance_id": str(agent.instance_id)},
        "/api/v1/flows/": {"key": f"{job.application.name}/{flow.name}"},
        "/api/v1/flow-runs/": {"id": run.pk},
    }


def known_parameters(world: dict, path: str) -> dict | None:
    """The fixtures' path parameters for `path`, or None when it has none."""
    if "{" not in path:
        return None
    return next(value for prefix, value in world.items() if path.startswith(prefix))


@pytest.fixture
def external_system():
    """The job type's system check answers; anything else a test might reach is refused."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post("https://auth.example.com/token",
                  json={"access_token": "t", "token_type": "Bearer", "expires_in": 60})
        mock.get(f"{EXTERNAL}/health", status=204)
        yield mock


@pytest.fixture
def application():
    """The WSGI app, minus the end-of-request connection close: every request runs inside the
    test's transaction (as Django's test client arranges for its own requests)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


def exercise(operation, strategy, checks, examples: int, failures: dict[tuple[str, str, str], str]) -> int:
    """Run `strategy`'s examples against the app, each in a savepoint rolled back afterwards; note
    each distinct failure (operation, check, first line of its message) with one example.
    Returns how many requests were made."""
    calls = 0

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case) -> None:
        nonlocal calls
        savepoint = transaction.savepoint()
        try:
            response = case.call()
            calls += 1
            case.validate_response(response, checks=checks)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = (operation.label, failure.title, (failure.message.strip().splitlines() or [""])[0][:200])
                failures.setdefault(key, f"{case.as_curl_command()}\n  -> {response.status_code} "
                                         f"{response.text[:300]}")
        finally:
            transaction.savepoint_rollback(savepoint)

    try:
        run()
    except Unsatisfiable:
        pass  # negative mode found nothing it could make invalid
    return calls


def runs(operation, known: dict | None) -> list[tuple[dict | None, GenerationMode, int]]:
    """(path parameters, mode, examples) to try: the fixtures' paths get most examples, generated
    paths (404s, mostly) a few; invalid data only where there is something besides the fixed path
    to make invalid (otherwise hypothesis only searches in vain)."""
    inputs = len(operation.query) + len(operation.body)
    plans = [(known, GenerationMode.POSITIVE, EXAMPLES)]
    if inputs:
        plans.append((known, GenerationMode.NEGATIVE, EXAMPLES))
    if known:
        plans += [(None, GenerationMode.POSITIVE, FEW), (None, GenerationMode.NEGATIVE, FEW)]
    return plans


@pytest.mark.django_db
def test_it_conforms_to_its_schema_without_server_errors(world, external_system, application):
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
    failures: dict[tuple[str, str, str], str] = {}
    started, calls = time.monotonic(), 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    for operation in operations:
        for path_parameters, mode, examples in runs(operation, known_parameters(world, operation.path)):
            strategy = operation.as_strategy(mode, path_parameters=path_parameters, headers=world["auth"])
            # Valid data: a documented status code and body; invalid data: never a server error.
            checks = CONFORMANCE if mode == GenerationMode.POSITIVE else [not_a_server_error]
            calls += exercise(operation, strategy, checks, examples, failures)
        assert time.monotonic() - started < BUDGET_SECONDS, "schemathesis ran out of its time budget"
    assert calls >= 10 * len(operations), "too few requests: is generation being filtered away?"
    report = [f"{label} — {title}: {message}\n  {example}" for (label, title, message), example in failures.items()]
    assert not failures, f"{len(failures)} distinct failures:\n\n" + "\n\n".join(report)
