"""Kills that meet a fault or a race: a kill while the worker is dead, and a kill that lands in the
same instant as the claim. A kill is final: the run is stopped, ends "killed by …", and is not retried."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.catalog.models import JobType
from apps.engine import kinds, leases, lifecycle, services
from apps.engine.models import Execution, Status
from tests.conftest import group_alive, wait_for

BASE = "https://ext.example.com/pom"
TOKEN_URL = "https://auth.example.com/oauth/token"


def running_on(agent: Agent, job, **fields) -> Execution:
    return Execution.objects.create(job=job, application=job.application, status=Status.RUNNING, agent=agent,
                                    started_at=timezone.now() - timedelta(minutes=5),
                                    next_check_at=timezone.now() + timedelta(minutes=1), **fields)


@pytest.mark.django_db
@pytest.mark.parametrize("how", ["agent offline", "lease lapsed"])
def test_a_run_killed_while_its_worker_was_dead_ends_killed_and_is_not_retried(make_job, handed_out, how):
    status = AgentStatus.OFFLINE if how == "agent offline" else AgentStatus.READY
    agent = Agent.objects.create(name="cluster@h:1", kind=AgentKind.CLUSTER, host="elsewhere", pid=1, status=status,
                                 last_heartbeat=timezone.now())
    execution = running_on(agent, make_job("doomed", max_retries=3), kill_requested_by="ops")
    if how == "lease lapsed":
        Execution.objects.filter(pk=execution.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))
    assert leases.recover_lost() == 1
    execution.refresh_from_db()
    assert (execution.status, execution.error) == (Status.ERROR, "killed by ops")
    assert not Execution.objects.filter(retry_of=execution).exists()


@pytest.mark.django_db(transaction=True)
def test_a_kill_that_meets_a_fresh_claim_stops_the_run_like_any_running_one(make_job, handed_out, settings):
    settings.BATCHDESK = {**settings.BATCHDESK, "RUNNER_CHECK_SECONDS": 0.1}
    job = make_job("racing", command="echo started; sleep 30; echo never", max_retries=2)
    seen = services.trigger(job)  # the operator's page shows it LOADED ...
    claimed = lifecycle.claim(seen.pk, None)  # ... while a worker claims it
    killed = services.kill(seen, by="ops")
    # Not ended behind the worker's back: asked to stop, like any running execution.
    assert (killed.status, killed.kill_requested_by) == (Status.RUNNING, "ops")
    kinds.of(job).start(claimed)  # the worker goes on with what it claimed
    done = Execution.objects.get(pk=seen.pk)
    assert (done.status, done.error) == (Status.ERROR, "killed by ops")
    assert "stopped: killed by ops" in done.log and "never" not in done.log
    wait_for(lambda: not group_alive(done.pid), timeout=5, message="the job's processes to be gone")
    assert Execution.objects.filter(job=job).count() == 1


@pytest.fixture
def custom_job(make_job, db):
    job_type = JobType(name="MOCKTYPE", url=BASE, start_path="/start", status_path="/status", kill_path="/kill",
                       log_path="/log", token_url=TOKEN_URL, client_id="batchdesk")
    job_type.set_client_secret("s3cret")
    job_type.save()
    return make_job("external", job_type="MOCKTYPE", command="", max_retries=2)


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"access_token": "tok", "expires_in": 3600})
        mock.post(f"{BASE}/kill", json={"status": "ERROR"})
        mock.get(f"{BASE}/log", body="")
        yield mock


def calls_to(mock, path: str) -> list:
    return [call for call in mock.calls if call.request.url.split("?")[0].endswith(path)]


@pytest.mark.once
@pytest.mark.django_db(transaction=True)
def test_a_kill_between_claim_and_start_sends_no_start(api, custom_job, handed_out):
    api.post(f"{BASE}/start", json={"executionId": "X-1", "status": "RUNNING"})
    seen = services.trigger(custom_job)
    claimed = lifecycle.claim(seen.pk, None)
    assert services.kill(seen, by="ops").status == Status.RUNNING
    kinds.of(custom_job).start(claimed)
    assert calls_to(api, "/start") == []
    done = Execution.objects.get(pk=seen.pk)
    assert (done.status, done.error) == (Status.ERROR, "killed by ops")
    assert Execution.objects.filter(job=custom_job).count() == 1


@pytest.mark.once
@pytest.mark.django_db(transaction=True)
def test_a_kill_while_start_is_in_flight_kills_the_external_job_it_started(api, custom_job, handed_out):
    seen = services.trigger(custom_job)
    claimed = lifecycle.claim(seen.pk, None)

    def start_answered_after_a_kill(request):
        services.kill(seen, by="ops")  # lands while Start is on the wire
        return 200, {}, json.dumps({"executionId": "X-2", "status": "RUNNING"})

    api.add_callback(responses.POST, f"{BASE}/start", callback=start_answered_after_a_kill)
    kinds.of(custom_job).start(claimed)
    assert [json.loads(call.request.body)["executionId"] for call in calls_to(api, "/kill")] == ["X-2"]
    done = Execution.objects.get(pk=seen.pk)
    assert (done.status, done.error, done.external_execution_id) == (Status.ERROR, "killed by ops", "X-2")
    assert Execution.objects.filter(job=custom_job).count() == 1
