"""External systems that fail, hang or answer late, and rows that can no longer be polled:
`responses` stands in for the system where the fault is an answer, a real socket that never
answers where it is a hang. Every test here is about HTTP and rows, not the backend (`once`),
except where PostgreSQL refuses what SQLite stores."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import responses
from django.db import connection
from django.utils import timezone

from apps.catalog.models import Concurrency, JobType
from apps.engine import services, tasks
from apps.engine.models import Execution, Status
from apps.scheduling import services as scheduling
from apps.scheduling.models import Kind, Schedule

BASE = "https://ext.example.com/pom"
TOKEN_URL = "https://auth.example.com/oauth/token"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def job_type(db) -> JobType:
    job_type = JobType(name="MOCKTYPE", url=BASE, start_path="/start", status_path="/status", restart_path="/restart",
                       kill_path="/kill", log_path="/log", poll_interval_seconds=5, token_url=TOKEN_URL,
                       client_id="batchdesk")
    job_type.set_client_secret("s3cret")
    job_type.save()
    return job_type


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"access_token": "tok", "expires_in": 3600})
        mock.get(f"{BASE}/log", body="external log\n")
        yield mock


def calls_to(mock, path: str) -> list:
    return [call for call in mock.calls if call.request.url.split("?")[0].endswith(path)]


def started(job, external_id: str, api) -> Execution:
    """Triggered, and started by a worker: RUNNING with its external id."""
    api.post(f"{BASE}/start", json={"executionId": external_id, "status": "RUNNING"})
    execution = services.trigger(job)
    assert tasks.start_execution(execution.pk) == "ran"
    execution.refresh_from_db()
    assert (execution.status, execution.external_execution_id) == (Status.RUNNING, external_id)
    return execution


# --- no network call inside a database transaction ---------------------------------------


@pytest.fixture
def kills_outside_transactions(api) -> list[bool]:
    """Kill answers, recording for each call whether a database transaction was open meanwhile."""
    inside: list[bool] = []

    def kill(request):
        inside.append(connection.in_atomic_block)
        return 200, {}, json.dumps({"status": "ERROR"})

    api.add_callback(responses.POST, f"{BASE}/kill", callback=kill)
    return inside


@pytest.mark.once
def test_a_replacing_trigger_calls_kill_after_its_transaction_commits(api, make_job, job_type, handed_out,
                                                                      kills_outside_transactions):
    job = make_job("replaced", job_type="MOCKTYPE", command="", concurrency=Concurrency.REPLACE)
    old = started(job, "R-1", api)
    new = services.trigger(job, triggered_by="ops")
    assert kills_outside_transactions == [False]
    old.refresh_from_db()
    assert (old.status, old.error) == (Status.ERROR, "killed by a replacing manual trigger")
    assert Execution.objects.get(pk=new.pk).status == Status.LOADED


@pytest.mark.once
def test_a_schedule_firing_a_replace_job_calls_kill_after_its_transaction_commits(api, make_job, job_type, handed_out,
                                                                                  kills_outside_transactions):
    job = make_job("replaced_by_schedule", job_type="MOCKTYPE", command="", concurrency=Concurrency.REPLACE)
    old = started(job, "R-2", api)
    schedule = Schedule.objects.create(job=job, kind=Kind.INTERVAL, interval_seconds=3600)
    Schedule.objects.filter(pk=schedule.pk).update(next_fire_at=timezone.now() - timedelta(seconds=1))
    assert scheduling.fire_due() == 1
    assert kills_outside_transactions == [False]
    assert Execution.objects.get(pk=old.pk).status == Status.ERROR


# --- executions that can no longer be polled --------------------------------------------


def due_now(*executions: Execution) -> None:
    Execution.objects.filter(pk__in=[e.pk for e in executions]).update(next_check_at=timezone.now())


@pytest.mark.once
def test_executions_that_can_no_longer_be_polled_end_in_error_and_the_rest_of_the_batch_is_polled(
        api, make_job, job_type, handed_out):
    edited = started(make_job("edited", job_type="MOCKTYPE", command=""), "P-1", api)
    other_type = JobType(name="OTHERTYPE", url=BASE, start_path="/start", status_path="/status",
                         token_url=TOKEN_URL, client_id="batchdesk")
    other_type.set_client_secret("other")
    other_type.save()
    undecryptable = started(make_job("secretless", job_type="OTHERTYPE", command=""), "P-2", api)
    fine = started(make_job("fine", job_type="MOCKTYPE", command=""), "P-3", api)
    # Since they started: one job was edited to EXEC; the other type's secret was written under a
    # SECRET_KEY that is gone.
    edited.job.job_type, edited.job.command = "EXEC", "echo now a shell job"
    edited.job.save()
    JobType.objects.filter(pk=other_type.pk).update(client_secret_encrypted="gAAAAABnot-a-fernet-token")
    api.get(f"{BASE}/status", json={"status": "RUNNING", "executionInfo": "40%"})

    from apps.engine import polling

    assert polling.poll_batch([edited.pk, undecryptable.pk, fine.pk]) == 3
    edited.refresh_from_db()
    undecryptable.refresh_from_db()
    fine.refresh_from_db()
    assert edited.status == Status.ERROR
    assert edited.error == ("could not be polled: Unpollable: job edited is now of type EXEC: its external "
                            "execution P-1 can no longer be followed")
    assert undecryptable.status == Status.ERROR
    assert "client secret cannot be decrypted" in undecryptable.error
    assert (fine.status, fine.execution_info) == (Status.RUNNING, "40%")
    assert fine.next_check_at > timezone.now() + timedelta(seconds=3)
    assert not Execution.objects.filter(retry_of__in=[edited, undecryptable]).exists()


def test_a_nul_byte_in_an_answer_holds_back_neither_its_execution_nor_its_batch(api, make_job, job_type, handed_out):
    # PostgreSQL refuses NUL in text; SQLite stores it. Both must end up with the same rows.
    executions = [started(make_job(f"nul_{i}", job_type="MOCKTYPE", command=""), f"N-{i}", api) for i in range(3)]
    api.get(f"{BASE}/status", json={"status": "RUNNING", "executionInfo": "half\u0000way"})
    api.get(f"{BASE}/status", json={"status": "RUNNING", "executionInfo": "fine"})
    api.get(f"{BASE}/status", json={"status": "COMPLETED", "executionInfo": "done\u0000"})

    from apps.engine import polling

    polling.poll_batch([e.pk for e in executions])
    rows = Execution.objects.filter(pk__in=[e.pk for e in executions])
    assert sorted(rows.values_list("status", flat=True)) == [Status.COMPLETED, Status.RUNNING, Status.RUNNING]
    assert not any("\x00" in (row.execution_info + row.error + row.log) for row in rows)
    assert all(row.next_check_at > timezone.now() + timedelta(seconds=3) for row in rows if row.status == Status.RUNNING)
