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


# --- a hung or slow external system -------------------------------------------------------


@pytest.fixture
def plain_http(settings, monkeypatch) -> None:
    """The silent server speaks plain http on loopback: allowed here, as in the demo."""
    settings.OAUTH_ALLOW_INSECURE_TRANSPORT = True
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")


@pytest.mark.once
def test_a_hanging_token_endpoint_holds_back_no_other_system_and_is_not_asked_again_at_once(api, plain_http):
    import threading
    import time

    from apps.connectors.oauth import Credentials, TokenError, tokens
    from tests.faults import silent_server

    with silent_server() as hung:
        api.add_passthru(hung)
        stuck = Credentials(token_url=f"{hung}/token", client_id="a", client_secret="x", scope="")
        healthy = Credentials(token_url=TOKEN_URL, client_id="b", client_secret="y", scope="")
        failed: list[Exception] = []

        def fetch_from_the_hung_system() -> None:
            try:
                tokens.get(stuck, timeout=2)
            except TokenError as exc:
                failed.append(exc)

        thread = threading.Thread(target=fetch_from_the_hung_system)
        thread.start()
        time.sleep(0.3)  # its fetch is in flight
        began = time.monotonic()
        assert tokens.get(healthy, timeout=2) == "tok"
        assert time.monotonic() - began < 1, "another system's token waited for the hung one"
        thread.join(5)
        assert failed and "ReadTimeout" in str(failed[0])

        began = time.monotonic()
        with pytest.raises(TokenError, match="not tried again for"):
            tokens.get(stuck, timeout=2)
        assert time.monotonic() - began < 0.5  # backed off: no second 2 s wait


@pytest.fixture
def hung_type(db, api, plain_http):
    """A type whose system accepts connections and never answers (its token comes from `api`)."""
    from tests.faults import silent_server

    with silent_server() as hung:
        api.add_passthru(hung)
        job_type = JobType(name="HUNGTYPE", url=hung, start_path="/start", status_path="/status", kill_path="/kill",
                           poll_interval_seconds=5, request_timeout_seconds=1, token_url=TOKEN_URL, client_id="c")
        job_type.set_client_secret("z")
        job_type.save()
        yield job_type


def running_external(job, external_id: str) -> Execution:
    """A RUNNING custom-type execution whose Start was answered long ago."""
    return Execution.objects.create(job=job, application=job.application, status=Status.RUNNING,
                                    started_at=timezone.now(), external_execution_id=external_id,
                                    next_check_at=timezone.now())


@pytest.mark.once
def test_a_hung_system_is_backed_off_and_the_other_systems_in_the_batch_are_polled_promptly(
        api, make_job, job_type, hung_type, settings):
    import time

    from apps.engine import polling

    settings.BATCHDESK = {**settings.BATCHDESK, "POLL_THREADS": 2}
    hung = [running_external(make_job(f"hung_{i}", job_type="HUNGTYPE", command=""), f"H-{i}") for i in range(12)]
    fine = [running_external(make_job(f"fine_{i}", job_type="MOCKTYPE", command=""), f"F-{i}") for i in range(2)]
    api.get(f"{BASE}/status", json={"status": "RUNNING"})
    began = time.monotonic()
    polling.poll_batch([e.pk for e in hung + fine])
    # 12 calls of 1 s on 2 threads took 6 s; once the system is seen hanging, its calls fail at once.
    assert time.monotonic() - began < 3.5
    assert set(Execution.objects.filter(pk__in=[e.pk for e in hung]).values_list("poll_failures", flat=True)) == {1}
    assert set(Execution.objects.filter(pk__in=[e.pk for e in fine]).values_list("poll_failures", flat=True)) == {0}
    assert len(calls_to(api, "/status")) == 2


@pytest.mark.once
@pytest.mark.slow
def test_a_poll_batch_that_outlives_its_lease_is_not_handed_out_again(api, make_job, hung_type, settings, monkeypatch):
    import threading
    import time

    from apps.engine import polling

    settings.BATCHDESK = {**settings.BATCHDESK, "POLL_LEASE_SECONDS": 1.5}
    JobType.objects.filter(pk=hung_type.pk).update(request_timeout_seconds=4)
    execution = running_external(make_job("slow_poll", job_type="HUNGTYPE", command=""), "S-1")
    queued: list = []
    monkeypatch.setattr(polling, "async_task", lambda *args, **kwargs: queued.append(args[1]))
    assert polling.claim_due_polls() == 1
    batch = threading.Thread(target=polling.poll_batch, args=(queued[0],))
    batch.start()
    time.sleep(2.5)  # past the lease, the Status call still in flight
    assert polling.claim_due_polls() == 0
    batch.join(10)
    assert Execution.objects.get(pk=execution.pk).poll_failures == 1


@pytest.mark.once
@pytest.mark.slow
def test_a_start_slower_than_the_run_lease_is_not_taken_for_a_lost_worker(api, make_job, job_type, handed_out, settings):
    import threading
    import time

    from apps.engine import leases

    settings.BATCHDESK = {**settings.BATCHDESK, "RUN_LEASE_SECONDS": 1.5}

    def slow_start(request):
        time.sleep(3)
        return 200, {}, json.dumps({"executionId": "SL-1", "status": "RUNNING"})

    api.add_callback(responses.POST, f"{BASE}/start", callback=slow_start)
    execution = services.trigger(make_job("slow_start", job_type="MOCKTYPE", command="", max_retries=1))
    worker = threading.Thread(target=tasks.start_execution, args=(execution.pk,))
    worker.start()
    time.sleep(2.2)  # past the lease, Start still in flight
    assert leases.recover_lost() == 0
    worker.join(10)
    execution.refresh_from_db()
    assert (execution.status, execution.external_execution_id) == (Status.RUNNING, "SL-1")
    assert Execution.objects.filter(job=execution.job).count() == 1


@pytest.mark.once
@pytest.mark.parametrize("kill_path", ["/kill", ""], ids=["with-kill", "without-kill"])
def test_a_start_answered_after_its_row_moved_on_is_killed_or_named_as_an_orphan(api, make_job, job_type, handed_out,
                                                                                 kill_path):
    from apps.engine import lifecycle

    JobType.objects.filter(pk=job_type.pk).update(kill_path=kill_path)
    api.post(f"{BASE}/kill", json={"status": "ERROR"})
    execution = services.trigger(make_job("late_start", job_type="MOCKTYPE", command=""))

    def start_answered_after_the_row_ended(request):
        lifecycle.finish(Execution.objects.get(pk=execution.pk), Status.ERROR, error="agent lost", retry=False)
        return 200, {}, json.dumps({"executionId": "L-1", "status": "RUNNING"})

    api.add_callback(responses.POST, f"{BASE}/start", callback=start_answered_after_the_row_ended)
    tasks.start_execution(execution.pk)
    execution.refresh_from_db()
    assert (execution.status, execution.error, execution.external_execution_id) == (Status.ERROR, "agent lost", "L-1")
    kills = [json.loads(call.request.body)["executionId"] for call in calls_to(api, "/kill")]
    if kill_path:
        assert kills == ["L-1"]
        assert "orphan external execution L-1 killed through Kill" in execution.log
    else:
        assert kills == []
        assert "orphan external execution L-1 could not be killed (job type MOCKTYPE defines no Kill)" in execution.log


# --- the small ones -----------------------------------------------------------------------


@pytest.mark.once
def test_a_timeout_without_a_kill_endpoint_is_not_retried_while_the_external_job_may_run(api, make_job, job_type,
                                                                                       handed_out):
    JobType.objects.filter(pk=job_type.pk).update(kill_path="")
    job = make_job("slow_external", job_type="MOCKTYPE", command="", timeout_seconds=60, max_retries=2)
    execution = started(job, "T-1", api)
    Execution.objects.filter(pk=execution.pk).update(started_at=timezone.now() - timedelta(seconds=61))

    from apps.engine import polling

    polling.poll_batch([execution.pk])
    execution.refresh_from_db()
    assert (execution.status, execution.error) == (Status.ERROR, "timeout")
    assert not Execution.objects.filter(retry_of=execution).exists()
    assert ("timeout: external execution T-1 could not be stopped (job type MOCKTYPE defines no Kill); "
            "not retried while it may still run") in execution.log


@pytest.mark.once
def test_a_retry_of_a_restart_restarts_the_failed_execution_it_follows(api, make_job, job_type, handed_out):
    from apps.engine import polling

    job = make_job("restarted", job_type="MOCKTYPE", command="", max_retries=1, retry_backoff_seconds=0)
    api.get(f"{BASE}/status", json={"status": "ERROR", "executionInfo": "failed"})
    first = started(job, "F-1", api)
    polling.poll_batch([first.pk])  # F-1 fails; its retry too (the retry sends Start: it restarts nothing)
    retry = Execution.objects.get(retry_of=first)
    api.replace(responses.POST, f"{BASE}/start", json={"executionId": "F-2", "status": "RUNNING"})
    assert tasks.start_execution(retry.pk) == "ran"
    polling.poll_batch([retry.pk])
    retry.refresh_from_db()
    assert retry.status == Status.ERROR

    api.post(f"{BASE}/restart", json={"executionId": "R-1", "status": "RUNNING"})
    restart = services.restart(retry, by="ops")
    assert tasks.start_execution(restart.pk) == "ran"
    polling.poll_batch([restart.pk])  # the restart's external job R-1 fails too
    retry_of_restart = Execution.objects.get(retry_of=restart)
    api.replace(responses.POST, f"{BASE}/restart", json={"executionId": "R-2", "status": "RUNNING"})
    assert tasks.start_execution(retry_of_restart.pk) == "ran"
    restarted_ids = [json.loads(call.request.body)["executionId"] for call in calls_to(api, "/restart")]
    assert restarted_ids == ["F-2", "R-1"]  # each restarts the failed execution it follows


@pytest.mark.once
def test_a_claimed_execution_its_kind_cannot_start_ends_in_error_at_once(api, make_job, job_type, handed_out):
    JobType.objects.filter(pk=job_type.pk).update(client_secret_encrypted="gAAAAABnot-a-fernet-token")
    execution = services.trigger(make_job("unstartable", job_type="MOCKTYPE", command="", max_retries=2))
    with pytest.raises(ValueError):
        tasks.start_execution(execution.pk)
    execution.refresh_from_db()
    assert execution.status == Status.ERROR
    assert execution.error.startswith("could not be started: ValueError: The stored client secret cannot be decrypted")
    assert not Execution.objects.filter(retry_of=execution).exists()
