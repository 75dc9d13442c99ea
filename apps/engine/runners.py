"""Runners for the built-in job types. Each runs in a django-q2 worker and returns an Outcome;
`supervise` streams the log to the database and honours kill requests and timeouts."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import threading
import time
import traceback
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Callable

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from django.db import close_old_connections, connection

from apps.catalog import params
from apps.catalog.models import JobDefinition
from apps.engine import services
from apps.engine.logbuffer import BoundedLog, LogStream
from apps.engine.models import Execution, Status
from apps.engine.registry import registry

# Never handed to a job's environment: a job that prints its environment must not leak them.
WITHHELD_ENV = {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "OAUTH_CLIENT_SECRET", "BATCHDESK_AGENT_ID"}


@dataclass
class Outcome:
    status: str
    error: str = ""
    exit_code: int | None = None
    warning: bool = False
    retry: bool = True


def run(execution: Execution) -> None:
    """Run a claimed (RUNNING) execution to its end and record the outcome."""
    job = execution.job
    if job.is_custom:
        from apps.engine import rest

        rest.start(execution)  # calls Start and returns: polling is the dispatcher's
        return
    log = BoundedLog(settings.BATCHDESK["LOG_MAX_BYTES"])
    runner = RUNNERS.get(job.job_type)
    try:
        if runner is None:
            raise RuntimeError(f"No runner for job type {job.job_type}.")
        outcome = runner(execution, job, log)
    except Exception as exc:  # the job's failure, never the worker's
        log.write(traceback.format_exc())
        outcome = Outcome(Status.ERROR, error=f"{type(exc).__name__}: {exc}")
    services.finish(
        execution,
        outcome.status,
        error=outcome.error,
        exit_code=outcome.exit_code,
        warning=outcome.warning,
        log_text=log.text(),
        log_bytes=log.total,
        retry=outcome.retry,
    )


def supervise(execution: Execution, job: JobDefinition, log: BoundedLog, finished: threading.Event,
              stop: Callable[[], None]) -> str:
    """Wait for `finished`, flushing the log; stop the run on a kill request, a timeout, or when
    the execution was ended elsewhere. Returns why it was stopped, or "" if it ended by itself."""
    check = settings.BATCHDESK["RUNNER_CHECK_SECONDS"]
    lease = settings.BATCHDESK["RUN_LEASE_SECONDS"]
    deadline = time.monotonic() + job.timeout_seconds if job.timeout_seconds else None
    flushed, renewed = 0, time.monotonic()
    while not finished.wait(check):
        changes = {}
        if log.total != flushed:
            flushed = log.total
            changes.update(log=log.text(), log_bytes=flushed)
        if time.monotonic() - renewed > lease / 6:
            renewed = time.monotonic()
            changes["next_check_at"] = timezone.now() + timedelta(seconds=lease)
        if changes:
            Execution.objects.filter(pk=execution.pk, status=Status.RUNNING).update(**changes)
        row = Execution.objects.filter(pk=execution.pk).values_list("status", "kill_requested_by").first()
        reason = ""
        if row is None or row[0] != Status.RUNNING:
            reason = "ended elsewhere"
        elif row[1]:
            reason = f"killed by {row[1]}"
        elif deadline is not None and time.monotonic() > deadline:
            reason = "timeout"
        if reason:
            stop()
            return reason
    return ""


def _stopped(reason: str, log: BoundedLog, exit_code: int | None = None) -> Outcome:
    log.write(f"\n[batchdesk] stopped: {reason}\n")
    # An operator's kill is final; a timeout is a failure like any other and is retried.
    return Outcome(Status.ERROR, error=reason, exit_code=exit_code, retry=not reason.startswith("killed"))


# --- EXEC -------------------------------------------------------------------------------


def run_exec(execution: Execution, job: JobDefinition, log: BoundedLog) -> Outcome:
    env = {key: value for key, value in os.environ.items() if key not in WITHHELD_ENV}
    env.update(params.environment(execution.parameters))
    env.update(
        BATCH_JOB_NAME=job.name,
        BATCH_EXECUTION_ID=str(execution.pk),
        BATCH_AGENT_EXECUTION_ID=str(execution.agent_execution_id),
        BATCH_EXTRA=job.extra,
    )
    # The command is the operator's; parameters reach it only through the environment.
    proc = subprocess.Popen(
        ["/bin/sh", "-c", job.command],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    Execution.objects.filter(pk=execution.pk).update(pid=proc.pid)
    finished = threading.Event()
    reader = threading.Thread(target=_pump, args=(proc.stdout, log), daemon=True)
    reader.start()
    threading.Thread(target=lambda: (proc.wait(), finished.set()), daemon=True).start()
    reason = supervise(execution, job, log, finished, stop=lambda: kill_group(proc.pid, finished))
    proc.wait()
    reader.join(timeout=2)
    if reason:
        return _stopped(reason, log, proc.returncode)
    code = proc.returncode
    if code == 0:
        return Outcome(Status.COMPLETED, exit_code=0)
    if code in job.warning_codes():
        return Outcome(Status.COMPLETED, exit_code=code, warning=True)
    return Outcome(Status.ERROR, error=f"exit code {code}", exit_code=code)


def _pump(stream, log: BoundedLog) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):
        log.write(chunk)


def kill_group(pgid: int, finished: threading.Event) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after the grace period."""
    for sig, wait in ((signal.SIGTERM, settings.BATCHDESK["KILL_GRACE_SECONDS"]), (signal.SIGKILL, 0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        finished.wait(wait)


# --- PYTHON -----------------------------------------------------------------------------


class TaskKilled(BaseException):
    """Raised inside a PYTHON task's thread to stop it (best effort: not in C code)."""


def run_python(execution: Execution, job: JobDefinition, log: BoundedLog) -> Outcome:
    task = registry[job.command]
    values = params.parse(execution.parameters)
    result: dict[str, object] = {}
    finished = threading.Event()

    def target() -> None:
        try:
            stream = LogStream(log)
            with redirect_stdout(stream), redirect_stderr(stream):
                result["value"] = task.func(values)
        except TaskKilled:
            pass
        except BaseException as exc:
            log.write(traceback.format_exc())
            result["error"] = f"{type(exc).__name__}: {exc}"
        finally:
            connection.close()
            finished.set()

    thread = threading.Thread(target=target, name=f"batch-{execution.pk}", daemon=True)
    thread.start()
    reason = supervise(execution, job, log, finished, stop=lambda: _interrupt(thread, finished))
    close_old_connections()
    if reason:
        return _stopped(reason, log)
    if "error" in result:
        return Outcome(Status.ERROR, error=str(result["error"]))
    if result.get("value") is not None:
        log.write(f"result: {result['value']!r}\n")
    return Outcome(Status.COMPLETED)


def _interrupt(thread: threading.Thread, finished: threading.Event) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(TaskKilled))
    finished.wait(settings.BATCHDESK["KILL_GRACE_SECONDS"])


# --- DUMMY ------------------------------------------------------------------------------


def run_dummy(execution: Execution, job: JobDefinition, log: BoundedLog) -> Outcome:
    log.write("DUMMY job: nothing to run.\n")
    return Outcome(Status.COMPLETED)


RUNNERS: dict[str, Callable[[Execution, JobDefinition, BoundedLog], Outcome]] = {
    "EXEC": run_exec,
    "PYTHON": run_python,
    "DUMMY": run_dummy,
}
