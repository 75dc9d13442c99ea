"""The runners and the engine's steps, driven by calling the worker's task directly.

Runs that use threads (a kill from another thread, PYTHON tasks) need their own database
connections, hence `transaction=True` there; the queue is replaced by a list of handed-out ids.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone

from apps.agents import services as agents
from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.catalog.models import Application, Concurrency, JobType
from apps.catalog.registry import RegisteredTask, registry
from apps.engine import leases, lifecycle, services, tasks
from apps.engine.models import Execution, Status, Trigger
from apps.engine.signals import execution_failed
from apps.errors import BatchError
from tests.conftest import group_alive, wait_for

transactional = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def prompt_runners(settings) -> None:
    """Runners look for kill requests and timeouts every 0.1 s instead of 0.5 s."""
    settings.BATCHDESK = {**settings.BATCHDESK, "RUNNER_CHECK_SECONDS": 0.1}


@pytest.fixture
def background():
    """Run `tasks.start_execution(pk)` in a thread, as a worker would; joined at teardown."""
    threads: list[threading.Thread] = []

    def start(pk: int) -> dict:
        outcome: dict = {}

        def target() -> None:
            try:
                outcome["result"] = tasks.start_execution(pk)
            finally:
                connection.close()

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        threads.append(thread)
        outcome["thread"] = thread
        return outcome

    yield start
    for thread in threads:
        thread.join(30)


@pytest.fixture
def failures():
    """Executions announced by `execution_failed`."""
    received: list[Execution] = []

    def receiver(sender, execution, **kwargs) -> None:
        received.append(execution)

    execution_failed.connect(receiver)
    yield received
    execution_failed.disconnect(receiver)


@pytest.fixture
def python_task(monkeypatch):
    """Register a PYTHON task for one test."""

    def register(name: str, func) -> str:
        monkeypatch.setitem(registry, name, RegisteredTask(name, func, "tests", ""))
        return name

    return register


def run(execution: Execution) -> Execution:
    assert tasks.start_execution(execution.pk) == "ran"
    execution.refresh_from_db()
    return execution


def running_with(execution: Execution, text: str) -> Execution:
    """Wait until the execution runs and its log (flushed while it runs) shows `text`."""
    return wait_for(
        lambda: Execution.objects.filter(pk=execution.pk, status=Status.RUNNING, log__contains=text).first(),
        timeout=10, message=f"execution {execution.pk} to run and log {text!r}",
    )


def ended(execution: Execution, timeout: float) -> Execution:
    return wait_for(
        lambda: Execution.objects.filter(pk=execution.pk, status__in=[Status.COMPLETED, Status.ERROR]).first(),
        timeout=timeout, message=f"execution {execution.pk} to end",
    )


# --- EXEC -------------------------------------------------------------------------------


@transactional
def test_it_completes_an_exec_job_with_its_output_in_the_log(make_job, handed_out):
    job = make_job(command='echo "hello $BATCH_PARAM_WHO"; echo "on stderr" >&2', parameters="who=world")
    done = run(services.trigger(job))
    assert done.status == Status.COMPLETED
    assert (done.exit_code, done.error, done.warning) == (0, "", False)
    assert "hello world\n" in done.log and "on stderr\n" in done.log
    assert done.log_bytes == len(done.log.encode())
    assert done.started_at <= done.finished_at
    assert done.next_check_at is None


@transactional
def test_it_claims_an_execution_once_when_its_task_is_delivered_twice(make_job, handed_out):
    execution = run(services.trigger(make_job()))
    assert tasks.start_execution(execution.pk) == "not claimed"
    assert Execution.objects.get(pk=execution.pk).finished_at == execution.finished_at


@transactional
def test_it_ends_a_failing_command_in_error_with_its_exit_code(make_job, handed_out, failures):
    done = run(services.trigger(make_job(command="echo before the failure; exit 3")))
    assert done.status == Status.ERROR
    assert (done.error, done.exit_code) == ("exit code 3", 3)
    assert "before the failure" in done.log
    assert [e.pk for e in failures] == [done.pk]


@transactional
def test_it_completes_with_a_warning_on_a_warning_exit_code(make_job, handed_out, failures):
    done = run(services.trigger(make_job(command="exit 4", warning_exit_codes="3, 4")))
    assert done.status == Status.COMPLETED
    assert (done.exit_code, done.warning, done.error) == (4, True, "")
    assert failures == []


@transactional
@pytest.mark.parametrize("template", ["$(touch {marker})", "`touch {marker}`", "x; touch {marker}",
                                      "x && touch {marker} #", "'; touch {marker}; echo '", "x\ntouch {marker}"])
def test_it_never_executes_a_parameter_value(make_job, handed_out, tmp_path, template):
    marker = tmp_path / f"injected-{os.getpid()}"
    value = template.format(marker=marker)
    job = make_job(command='printf "%s|%s" "$BATCH_PARAM_X" "$BATCH_PARAMS"')
    done = run(services.trigger(job, parameters={"x": value} if "\n" in value else f"x={value}"))
    assert done.status == Status.COMPLETED
    assert not marker.exists()
    assert done.log == f"{value}|x={value}"


@transactional
def test_it_never_lets_a_parameter_remove_a_file(make_job, handed_out, tmp_path):
    canary = tmp_path / "canary"
    canary.write_text("still here")
    job = make_job(command='echo "value: $BATCH_PARAM_PATH"; echo unquoted $BATCH_PARAM_PATH')
    done = run(services.trigger(job, parameters=f"path=; rm -f {canary}"))
    assert done.status == Status.COMPLETED
    assert canary.read_text() == "still here"
    assert f"value: ; rm -f {canary}" in done.log


@transactional
def test_it_withholds_the_installation_s_secrets_from_the_job(make_job, handed_out, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "canary-secret-key")
    monkeypatch.setenv("OAUTH_CLIENT_SECRET", "canary-client-secret")
    done = run(services.trigger(make_job("envdump", command="env", extra='{"k": 1}')))
    assert "canary-secret-key" not in done.log and "canary-client-secret" not in done.log
    assert "BATCH_JOB_NAME=envdump\n" in done.log
    assert f"BATCH_EXECUTION_ID={done.pk}\n" in done.log
    assert f"BATCH_AGENT_EXECUTION_ID={done.agent_execution_id}\n" in done.log
    assert 'BATCH_EXTRA={"k": 1}\n' in done.log


@transactional
def test_it_ends_a_run_past_its_timeout_in_error(make_job, handed_out, failures):
    started = time.monotonic()
    done = run(services.trigger(make_job(command="sleep 30", timeout_seconds=1)))
    assert time.monotonic() - started < 10
    assert (done.status, done.error) == (Status.ERROR, "timeout")
    assert "stopped: timeout" in done.log
    assert not group_alive(done.pid)
    assert [e.pk for e in failures] == [done.pk]


@transactional
def test_it_kills_a_running_exec_job_from_another_thread_within_5_seconds(make_job, handed_out, background):
    execution = services.trigger(make_job(command="echo started; sleep 30; echo never"))
    worker = background(execution.pk)
    running = running_with(execution, "started")  # the log is visible while the job runs
    assert group_alive(running.pid)

    killed_at = time.monotonic()
    services.kill(running, by="operator")
    done = ended(execution, timeout=5)
    assert time.monotonic() - killed_at < 5
    assert (done.status, done.error) == (Status.ERROR, "killed by operator")
    assert "never" not in done.log and "stopped: killed by operator" in done.log
    assert not group_alive(running.pid)
    worker["thread"].join(5)
    assert worker["result"] == "ran"


@transactional
def test_it_kills_a_job_that_ignores_sigterm(make_job, handed_out, background):
    execution = services.trigger(make_job(command="trap '' TERM; echo started; sleep 30 & wait; sleep 30"))
    background(execution.pk)
    running = running_with(execution, "started")
    services.kill(running, by="operator")
    assert ended(execution, timeout=5).error == "killed by operator"
    assert not group_alive(running.pid)


@transactional
def test_it_does_not_retry_a_killed_execution(make_job, handed_out, background, failures):
    execution = services.trigger(make_job(command="echo started; sleep 30", max_retries=2))
    background(execution.pk)
    services.kill(running_with(execution, "started"), by="operator")
    ended(execution, timeout=5)
    assert Execution.objects.filter(job=execution.job).count() == 1
    wait_for(lambda: failures, timeout=2, message="the failure signal")
    assert [e.pk for e in failures] == [execution.pk]


@transactional
def test_it_keeps_the_head_and_tail_of_a_long_log(make_job, handed_out, settings):
    settings.BATCHDESK = {**settings.BATCHDESK, "LOG_MAX_BYTES": 200}
    done = run(services.trigger(make_job(command="echo FIRST-LINE; seq 1 5000; echo LAST-LINE")))
    produced = len("FIRST-LINE\n") + sum(len(f"{i}\n") for i in range(1, 5001)) + len("LAST-LINE\n")
    assert done.status == Status.COMPLETED
    assert done.log.startswith("FIRST-LINE\n1\n2\n")
    assert done.log.endswith("4999\n5000\nLAST-LINE\n")
    assert f"[... {produced - 200} bytes elided ...]" in done.log
    assert len(done.log.encode()) < 260
    assert done.log_bytes == produced


# --- PYTHON and DUMMY -------------------------------------------------------------------


@transactional
def test_it_runs_a_registered_python_task_with_a_dict(make_job, handed_out, python_task):
    received = []

    def task(values):
        received.append(values)
        print(f"processing {values['region']}")
        return 42

    job = make_job(job_type="PYTHON", command=python_task("tests.collect", task), parameters="region=EU||day=Mon")
    done = run(services.trigger(job, parameters="day=Tue"))
    assert done.status == Status.COMPLETED
    assert received == [{"region": "EU", "day": "Tue"}]
    assert "processing EU\n" in done.log and "result: 42\n" in done.log


@transactional
def test_it_ends_a_python_task_that_raises_in_error_with_its_message(make_job, handed_out, python_task):
    def task(values):
        print("about to fail")
        raise ValueError(f"no data for {values['day']}")

    job = make_job(job_type="PYTHON", command=python_task("tests.fail", task), parameters="day=Mon")
    done = run(services.trigger(job))
    assert (done.status, done.error) == (Status.ERROR, "ValueError: no data for Mon")
    assert "about to fail" in done.log and "Traceback" in done.log


@transactional
def test_it_interrupts_a_sleeping_python_task_on_kill(make_job, handed_out, background):
    job = make_job(job_type="PYTHON", command="sleep_seconds", parameters="seconds=30")
    execution = services.trigger(job)
    worker = background(execution.pk)
    running = running_with(execution, "second 1 of 30")
    services.kill(running, by="ada")
    done = ended(execution, timeout=5)
    assert (done.status, done.error) == (Status.ERROR, "killed by ada")
    worker["thread"].join(5)
    wait_for(lambda: not any(thread.name == f"batch-{execution.pk}" for thread in threading.enumerate()),
             timeout=2, message="the task's thread to end")


@transactional
def test_it_completes_a_dummy_job_at_once(make_job, handed_out):
    done = run(services.trigger(make_job(job_type="DUMMY", command="")))
    assert done.status == Status.COMPLETED
    assert done.log == "DUMMY job: nothing to run.\n"


# --- retries ----------------------------------------------------------------------------


@transactional
def test_it_retries_with_exponential_backoff_and_announces_only_the_last_failure(make_job, handed_out, failures):
    job = make_job(command="echo attempt $BATCH_EXECUTION_ID; exit 2", max_retries=2, retry_backoff_seconds=10,
                   parameters="day=Mon")
    first = run(services.trigger(job, triggered_by="ada"))
    assert (first.status, first.error) == (Status.ERROR, "exit code 2")
    assert failures == []

    second = Execution.objects.get(retry_of=first)
    assert (second.status, second.trigger, second.attempt) == (Status.WAITING, Trigger.RETRY, 2)
    assert (second.parameters, second.triggered_by) == ("day=Mon", "ada")
    assert timedelta(seconds=10) <= second.not_before - first.finished_at < timedelta(seconds=11)
    # Handed out early (a lost lease, a woken waiter): it waits for its backoff.
    assert tasks.start_execution(second.pk) == "not claimed"
    second.refresh_from_db()
    assert second.status == Status.WAITING and second.waiting_reason.startswith("retry not before")

    with time_machine.travel(second.not_before + timedelta(seconds=1), tick=True):
        assert leases.hand_out_due() == 1 and handed_out[-1] == second.pk
        second = run(second)
    assert second.status == Status.ERROR
    assert failures == []

    third = Execution.objects.get(retry_of=second)
    assert (third.trigger, third.attempt) == (Trigger.RETRY, 3)
    assert timedelta(seconds=20) <= third.not_before - second.finished_at < timedelta(seconds=21)
    with time_machine.travel(third.not_before + timedelta(seconds=1), tick=True):
        third = run(third)
    assert third.status == Status.ERROR

    assert list(Execution.objects.filter(job=job).order_by("attempt").values_list("attempt", flat=True)) == [1, 2, 3]
    assert not Execution.objects.filter(retry_of=third).exists()
    assert [(e.pk, e.attempt) for e in failures] == [(third.pk, 3)]


@transactional
def test_it_stops_retrying_once_an_attempt_completes(make_job, handed_out, failures, tmp_path):
    flag = tmp_path / "second-time"
    job = make_job(command=f'test -e {flag} || {{ touch {flag}; exit 1; }}', max_retries=3, retry_backoff_seconds=1)
    first = run(services.trigger(job))
    retry = Execution.objects.get(retry_of=first)
    Execution.objects.filter(pk=retry.pk).update(not_before=timezone.now())
    assert run(retry).status == Status.COMPLETED
    assert Execution.objects.filter(job=job).count() == 2
    assert failures == []


# --- what holds an execution back ---------------------------------------------------------


def test_it_holds_back_a_second_execution_of_a_busy_lock_group(make_job, handed_out, django_capture_on_commit_callbacks):
    first = services.trigger(make_job("ledger_a", lock_group="ledger"))
    second = services.trigger(make_job("ledger_b", command="echo closing b", lock_group="ledger"))
    assert lifecycle.claim(first.pk, None).status == Status.RUNNING

    assert tasks.start_execution(second.pk) == "not claimed"
    second.refresh_from_db()
    assert (second.status, second.waiting_reason) == (Status.WAITING, "lock group ledger is busy")

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.finish(first, Status.COMPLETED)
    assert second.pk in handed_out  # woken when the lock frees
    done = run(second)
    assert (done.status, done.waiting_reason) == (Status.COMPLETED, "")
    assert "closing b" in done.log


def test_it_holds_back_executions_beyond_the_application_s_throttle_limit(make_job, handed_out, app,
                                                                          django_capture_on_commit_callbacks):
    app.throttle_limit = 1
    app.save(update_fields=["throttle_limit"])
    first = services.trigger(make_job("one"))
    second = services.trigger(make_job("two"))
    assert lifecycle.claim(first.pk, None) is not None
    assert lifecycle.claim(second.pk, None) is None
    second.refresh_from_db()
    assert second.status == Status.WAITING
    assert second.waiting_reason == "application RMS is at its throttle limit of 1"

    with django_capture_on_commit_callbacks(execute=True):
        lifecycle.finish(first, Status.COMPLETED)
    assert second.pk in handed_out
    assert lifecycle.claim(second.pk, None).status == Status.RUNNING


def test_it_does_not_throttle_other_applications(make_job, handed_out, app):
    app.throttle_limit = 1
    app.save(update_fields=["throttle_limit"])
    assert lifecycle.claim(services.trigger(make_job("one")).pk, None) is not None
    other = Application.objects.create(name="FINANCE", throttle_limit=1)
    assert lifecycle.claim(services.trigger(make_job("three", application=other)).pk, None) is not None


def test_it_holds_back_an_execution_on_a_blocked_agent(make_job, handed_out, monkeypatch):
    agent = Agent.objects.create(name="cluster@h:1", kind=AgentKind.CLUSTER, host="h", pid=1,
                                 status=AgentStatus.BLOCKED, last_heartbeat=timezone.now())
    monkeypatch.setenv(agents.AGENT_ENV, str(agent.pk))
    execution = services.trigger(make_job())
    assert tasks.start_execution(execution.pk) == "not claimed"
    execution.refresh_from_db()
    assert (execution.status, execution.waiting_reason) == (Status.WAITING, "agent cluster@h:1 is blocked")

    assert agents.set_blocked(agent, False)
    done = run(execution)
    assert (done.status, done.agent) == (Status.COMPLETED, agent)


# --- recovery, restart, hand-out --------------------------------------------------------


def running_execution(job, **fields) -> Execution:
    defaults = {"status": Status.RUNNING, "started_at": timezone.now() - timedelta(minutes=5),
                "next_check_at": timezone.now() + timedelta(minutes=1)}
    return Execution.objects.create(job=job, application=job.application, **{**defaults, **fields})


def make_agent(status: str, **fields) -> Agent:
    fields = {"name": f"cluster-{status}", "last_heartbeat": timezone.now(), **fields}
    return Agent.objects.create(kind=AgentKind.CLUSTER, host="elsewhere", pid=1, status=status, **fields)


def test_it_ends_a_run_whose_agent_is_offline_as_agent_lost_and_retries_it(make_job, handed_out, failures):
    lost = running_execution(make_job(max_retries=1), agent=make_agent(AgentStatus.OFFLINE))
    assert leases.recover_lost() == 1
    lost.refresh_from_db()
    assert (lost.status, lost.error) == (Status.ERROR, "agent lost")
    assert lost.finished_at is not None
    retry = Execution.objects.get(retry_of=lost)
    assert (retry.status, retry.trigger, retry.attempt) == (Status.WAITING, Trigger.RETRY, 2)


def test_it_ends_a_run_whose_lease_ran_out_as_agent_lost(make_job, handed_out, django_capture_on_commit_callbacks,
                                                         failures):
    lost = running_execution(make_job(), agent=make_agent(AgentStatus.READY),
                             next_check_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert leases.recover_lost() == 1
    lost.refresh_from_db()
    assert (lost.status, lost.error) == (Status.ERROR, "agent lost")
    assert not Execution.objects.filter(retry_of=lost).exists()
    assert [e.pk for e in failures] == [lost.pk]


def test_it_leaves_live_runs_and_started_external_runs_alone(make_job, handed_out):
    live = running_execution(make_job("live"), agent=make_agent(AgentStatus.READY))
    JobType.objects.create(name="MOCKTYPE", url="http://ext", start_path="/start", status_path="/status")
    external = running_execution(make_job("ext", job_type="MOCKTYPE", command=""), external_execution_id="ext-1",
                                 agent=make_agent(AgentStatus.OFFLINE))
    assert leases.recover_lost() == 0
    assert set(Execution.objects.filter(status=Status.RUNNING).values_list("pk", flat=True)) == {live.pk, external.pk}


def test_it_kills_the_process_group_of_a_lost_run_on_this_host(make_job, handed_out):
    orphan = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        lost = running_execution(make_job(), agent=make_agent(AgentStatus.OFFLINE), pid=orphan.pid,
                                 host=socket.gethostname(), started_at=timezone.now())
        assert leases.recover_lost() == 1
        assert orphan.wait(timeout=5) == -9
        assert Execution.objects.get(pk=lost.pk).error == "agent lost"
    finally:
        if orphan.poll() is None:
            orphan.kill()
            orphan.wait()


def test_it_marks_agents_that_stopped_beating_offline(db, settings):
    stale_after = settings.BATCHDESK["AGENT_LOST_SECONDS"] + 1
    stale = make_agent(AgentStatus.READY, last_heartbeat=timezone.now() - timedelta(seconds=stale_after))
    blocked = make_agent(AgentStatus.BLOCKED, last_heartbeat=timezone.now() - timedelta(hours=1))
    fresh = make_agent(AgentStatus.READY, name="fresh")
    gone = make_agent(AgentStatus.OFFLINE, last_heartbeat=timezone.now() - timedelta(hours=1))
    assert agents.mark_lost_agents() == 2
    assert agents.mark_lost_agents() == 0
    statuses = dict(Agent.objects.values_list("pk", "status"))
    assert statuses == {stale.pk: AgentStatus.OFFLINE, blocked.pk: AgentStatus.OFFLINE,
                        fresh.pk: AgentStatus.READY, gone.pk: AgentStatus.OFFLINE}


def test_it_restarts_a_failed_execution_as_a_new_one(make_job, handed_out):
    failed = services.trigger(make_job(parameters="day=Mon"), parameters="day=Tue")
    services.kill(failed, by="ada")
    failed.refresh_from_db()
    restarted = services.restart(failed, by="bob")
    assert restarted.pk != failed.pk
    assert (restarted.status, restarted.trigger, restarted.restart_of) == (Status.LOADED, Trigger.RESTART, failed)
    assert (restarted.parameters, restarted.triggered_by, restarted.attempt) == ("day=Tue", "bob", 1)


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.ERROR, Status.SKIPPED])
def test_it_refuses_to_kill_an_execution_that_has_ended(make_job, handed_out, status):
    execution = services.trigger(make_job())
    Execution.objects.filter(pk=execution.pk).update(status=status, error="as it was")
    execution.refresh_from_db()
    with pytest.raises(BatchError) as raised:
        services.kill(execution, by="ada")
    assert raised.value.code == "NOT_ACTIVE"
    assert raised.value.message == f"Execution {execution.pk} is {status}; only active executions can be killed."
    execution.refresh_from_db()
    assert (execution.status, execution.error, execution.kill_requested_by) == (status, "as it was", "")


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.SKIPPED, Status.LOADED, Status.WAITING,
                                    Status.RUNNING, Status.HELD])
def test_it_restarts_only_executions_in_error(make_job, handed_out, status):
    execution = services.trigger(make_job())
    Execution.objects.filter(pk=execution.pk).update(status=status)
    execution.refresh_from_db()
    with pytest.raises(BatchError) as raised:
        services.restart(execution, by="bob")
    assert raised.value.code == "NOT_RESTARTABLE"
    assert "only executions in ERROR can be restarted" in raised.value.message
    assert Execution.objects.count() == 1


def test_it_re_hands_pending_executions_whose_lease_expired(make_job, handed_out, settings):
    past, future = timezone.now() - timedelta(seconds=1), timezone.now() + timedelta(minutes=1)
    job = make_job(concurrency=Concurrency.ALLOW)
    lost_loaded = services.trigger(job)
    lost_waiting = services.trigger(job)
    leased = services.trigger(job)
    running = services.trigger(job)
    Execution.objects.filter(pk=lost_loaded.pk).update(next_check_at=past)
    Execution.objects.filter(pk=lost_waiting.pk).update(status=Status.WAITING, next_check_at=past)
    Execution.objects.filter(pk=leased.pk).update(next_check_at=future)
    Execution.objects.filter(pk=running.pk).update(status=Status.RUNNING, next_check_at=past)

    assert leases.hand_out_due() == 2
    assert sorted(handed_out) == sorted([lost_loaded.pk, lost_waiting.pk])
    lease = settings.BATCHDESK["DISPATCH_LEASE_SECONDS"]
    for execution in (lost_loaded, lost_waiting):
        execution.refresh_from_db()
        assert execution.next_check_at > timezone.now() + timedelta(seconds=lease - 5)
    assert leases.hand_out_due() == 0  # their new lease holds until it runs out again


@transactional
def test_it_stores_output_with_nul_and_invalid_utf8_bytes(make_job, handed_out):
    done = run(services.trigger(make_job(command=r"printf 'before\000after \377\376 end\n'")))
    assert done.status == Status.COMPLETED
    assert done.log.startswith("before") and done.log.endswith("after \ufffd\ufffd end\n")
    assert "\x00" not in done.log  # PostgreSQL text cannot hold NUL
