"""The small faults: a log that cannot be fetched, a queue that cannot be reached after a commit,
retries of what was disabled since, and a service stopped all at once as systemd does it."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest
from django.utils import timezone

from apps.engine import leases, lifecycle, services, tasks
from apps.engine.models import Execution, Status, Trigger
from tests.conftest import token_client


@pytest.mark.once
@pytest.mark.django_db
@pytest.mark.parametrize("job_type, command", [("EXEC", "echo hi"), ("PYTHON", "sleep_seconds")])
def test_fetching_the_log_of_an_exec_or_python_execution_answers_a_clear_error(admin_client_logged, make_job,
                                                                                handed_out, job_type, command):
    execution = services.trigger(make_job("local", job_type=job_type, command=command))
    response = admin_client_logged.post("/admin/engine/execution/", {"action": "fetch_log",
                                                                    "_selected_action": [execution.pk]}, follow=True)
    assert response.status_code == 200
    messages = [str(message) for message in response.context["messages"]]
    assert messages == [f"Refused: #{execution.pk}: Execution {execution.pk} is a {job_type} job: its log is stored "
                        f"as it runs, there is no external log to fetch."]


@pytest.mark.once
@pytest.mark.django_db(transaction=True)
def test_a_queue_that_cannot_be_reached_after_the_commit_never_fails_the_trigger(administrator, make_job,
                                                                                 monkeypatch):
    import redis

    def unreachable(*args, **kwargs):
        raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(lifecycle, "async_task", unreachable)
    job = make_job("committed")
    response = token_client(administrator).post(f"/api/v1/backgroundtasks/trigger/{job.name}")
    assert response.status_code == 200, response.content
    execution = Execution.objects.get(job=job)
    assert execution.status == Status.LOADED and execution.next_check_at > timezone.now()
    # The lease heals it: once it runs out, the dispatcher hands the execution out again.
    handed: list[int] = []
    monkeypatch.setattr(lifecycle, "hand_out", handed.extend)
    Execution.objects.filter(pk=execution.pk).update(next_check_at=timezone.now())
    assert leases.hand_out_due() == 1 and handed == [execution.pk]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("what", ["job", "application"])
def test_a_retry_of_a_job_disabled_since_the_failure_is_skipped_with_the_reason(make_job, handed_out, what):
    job = make_job("flaky", command="exit 1", max_retries=2, retry_backoff_seconds=0)
    first = services.trigger(job)
    assert tasks.start_execution(first.pk) == "ran"
    retry = Execution.objects.get(retry_of=first)
    target = job if what == "job" else job.application
    target.enabled = False
    target.save(update_fields=["enabled"])
    assert tasks.start_execution(retry.pk) == "not claimed"
    retry.refresh_from_db()
    assert retry.status == Status.SKIPPED
    assert retry.error == f"not retried: {what} {target.name} is disabled"
    assert not Execution.objects.filter(retry_of=retry).exists()


@pytest.mark.django_db(transaction=True)
def test_a_failure_of_a_disabled_job_schedules_no_retry(make_job, handed_out):
    job = make_job("flaky_then_disabled", command="sleep 0.3; exit 1", max_retries=2)
    first = services.trigger(job)
    claimed = lifecycle.claim(first.pk, None)
    job.enabled = False
    job.save(update_fields=["enabled"])
    from apps.engine import kinds

    kinds.of(job).start(claimed)
    first.refresh_from_db()
    assert first.error == "exit code 1 (not retried: the job or its application is disabled)"
    assert not Execution.objects.filter(retry_of=first).exists()


# --- stopping every process of the service at once ---------------------------------------


def tree(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def describe(process: psutil.Process) -> str:
    try:
        return f"{process.pid} {process.status()} {' '.join(process.cmdline()) or process.name()}"
    except psutil.Error as exc:
        return f"{process.pid} {type(exc).__name__}"


@pytest.mark.e2e
@pytest.mark.slow
def test_sigterm_to_every_process_of_the_service_at_once_ends_them_within_15_seconds(engine_up, make_job):
    # A job running, so that a worker is busy when the signal comes.
    running = services.trigger(make_job("busy", command="sleep 600"))
    engine_up.wait_until(lambda: Execution.objects.filter(pk=running.pk, status=Status.RUNNING).exists(), 30)
    processes = [process for command in engine_up.started for process in tree(command.pid)]
    assert len(processes) > 4  # the commands, a cluster's sentinel, pusher, monitor and workers
    for process in processes:  # systemd's KillMode=control-group: each process gets SIGTERM
        try:
            process.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            pass
    began = time.monotonic()
    gone, alive = psutil.wait_procs(processes, timeout=15)
    assert not alive, f"still there after {time.monotonic() - began:.0f} s: {[describe(p) for p in alive]}"
    for command in engine_up.started:
        command.wait(timeout=1)
