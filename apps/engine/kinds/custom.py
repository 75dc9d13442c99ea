"""Custom (Generic ReST) job types, SPEC §3: Start/Restart, Status, Kill and Log over the POM contract.

A worker only makes calls: `start` sends Start and returns; apps/engine/polling.py hands due
polls out in batches and calls `poll` for each. Between calls an execution is a row with a
`next_check_at` lease, so nothing waits in a worker and a lost batch only lets the lease run out.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.catalog.models import JobKind, JobType
from apps.connectors.client import (
    CallFailed,
    CheckResult,
    Endpoint,
    describe,
    request,
    system_check,
)
from apps.engine import lifecycle
from apps.engine.kinds.base import Kind
from apps.engine.leases import LeaseKeeper
from apps.engine.logbuffer import BoundedLog
from apps.engine.models import Execution, Status, Trigger
from apps.errors import BatchError, ErrorCode

log = logging.getLogger(__name__)

EXTERNAL_STATUSES = {"RUNNING", "COMPLETED", "ERROR"}
MAX_POLL_BACKOFF_SECONDS = 300
# How far back restart_target follows retries and restarts for a started external job.
MAX_RESTART_CHAIN = 50


class CustomKind(Kind):
    name = JobKind.CUSTOM

    # --- start --------------------------------------------------------------------------

    def start(self, execution: Execution) -> None:
        """Send Start (or Restart for a restart of a started external job) and record the answer.

        A kill that lands between the claim and Start sends no Start at all; one that lands while
        Start is in flight, or a row that moved on meanwhile, meets the answer: the external job it
        started is killed at once (`_started_for_a_row_that_moved_on`)."""
        endpoint = endpoint_of(execution)
        row = Execution.objects.filter(pk=execution.pk).values_list("status", "kill_requested_by").first()
        if row is None or row[0] != Status.RUNNING:
            return
        if row[1]:
            end(execution, Status.ERROR, error=f"killed by {row[1]}", retry=False)
            return
        body = start_body(execution)
        call = "start"
        failed = restart_target(execution)
        if failed is not None and endpoint.defines("restart"):
            call = "restart"
            body["executionId"] = failed.external_execution_id
        try:
            # A Start slower than the run lease must not make its worker look lost meanwhile.
            with LeaseKeeper([execution.pk], settings.BATCHDESK["RUN_LEASE_SECONDS"]):
                answer = request(endpoint, call, "POST", body=body)
        except CallFailed as exc:
            end(execution, Status.ERROR, error=exc.reason, log_text=_failure_log(exc))
            return
        external_id = describe(answer.get("executionId") or "").strip()
        if not external_id:
            end(execution, Status.ERROR, error=f"{call}: the answer has no executionId", log_text=describe(answer))
            return
        recorded = Execution.objects.filter(pk=execution.pk, status=Status.RUNNING).update(
            external_execution_id=external_id[:200],
            execution_info=describe(answer.get("executionInfo")),
            next_check_at=timezone.now() + timedelta(seconds=endpoint.poll_interval),
        )
        execution.external_execution_id = external_id[:200]
        if not recorded:
            _started_for_a_row_that_moved_on(execution, endpoint)
            return
        killed_by = Execution.objects.filter(pk=execution.pk).values_list("kill_requested_by", flat=True).first()
        if killed_by and endpoint.defines("kill"):  # killed while Start was in flight
            deliver_kill(execution, endpoint, killed_by)
            return
        if not ended(execution, endpoint, answer):
            note_unknown_status(execution, answer)  # its first poll is booked above

    # --- poll ---------------------------------------------------------------------------

    def poll(self, execution: Execution, endpoint: Endpoint) -> dict | None:
        """One Status call. Returns the answer of a still-running job, to be booked for its next
        poll; anything else (ended, failed call, timeout) is dealt with here and gives None."""
        if _timed_out(execution):
            # Retried only once the external job is stopped: never two of it at once.
            unstopped = _stop_external(execution, endpoint)
            end(execution, Status.ERROR, error="timeout", fetch_from=endpoint, retry=not unstopped, note=unstopped)
            return None
        if execution.kill_requested_by and endpoint.defines("kill"):  # a kill recorded, not yet delivered
            deliver_kill(execution, endpoint, execution.kill_requested_by)
            return None
        try:
            answer = request(endpoint, "status", "GET", query=identity(execution))
        except CallFailed as exc:
            _poll_failed(execution, endpoint, exc)
            return None
        return None if ended(execution, endpoint, answer) else answer

    # --- kill, log, check ---------------------------------------------------------------

    def kill(self, execution: Execution, by: str) -> Execution:
        """Call Kill, then end the execution in ERROR; refused when the type defines no Kill."""
        endpoint = endpoint_of(execution)
        if not endpoint.defines("kill"):
            raise BatchError(ErrorCode.NOT_KILLABLE, f"Kill is not defined for job type {endpoint.name}")
        if not execution.external_execution_id:
            # Start has not been answered yet: the request stands, and Start's answer is killed at once.
            return lifecycle.request_kill(execution, by)
        try:
            request(endpoint, "kill", "POST", body=identity(execution))
        except CallFailed as exc:
            raise BatchError(ErrorCode.KILL_FAILED, f"Kill failed, the execution is unchanged: {exc.reason}") from None
        end(execution, Status.ERROR, error=f"killed by {by}", fetch_from=endpoint, retry=False)
        execution.refresh_from_db()
        return execution

    def request_kill(self, execution: Execution, by: str) -> None:
        """Record the kill; Kill is sent once the transaction commits (and, should that fail, at the
        execution's next poll). Refused, like a kill, when the type defines no Kill."""
        if not endpoint_of(execution).defines("kill"):
            raise BatchError(ErrorCode.NOT_KILLABLE, f"Kill is not defined for job type {execution.job.job_type}")
        lifecycle.request_kill(execution, by)
        transaction.on_commit(lambda: _deliver_after_commit(execution.pk, by))

    def fetch_log(self, execution: Execution) -> Execution:
        """Fetch the external log now and store it with the execution (the on-demand Log call)."""
        text = external_log(execution, endpoint_of(execution))
        if text is None:
            raise BatchError(ErrorCode.NO_LOG, f"Log is not defined for job type {execution.job.job_type}, "
                                               f"or nothing started.")
        Execution.objects.filter(pk=execution.pk).update(log=text, log_bytes=len(text.encode()))
        execution.refresh_from_db()
        return execution

    @staticmethod
    def check(job_type: JobType) -> CheckResult:
        """Call the type's system check now and remember the answer for the health page."""
        result = system_check(job_type.endpoint())
        JobType.objects.filter(pk=job_type.pk).update(
            last_check_at=result.checked_at, last_check_up=result.up, last_check_error=result.error
        )
        return result


def restart_target(execution: Execution) -> Execution | None:
    """The failed execution a restart restarts: the one it follows (for a retry of a restart, the
    restart that failed), or the nearest before it whose external job had started; None for a run
    that restarts nothing, or when no external job ever started (then Start is sent)."""
    if execution.restart_of_id is None:
        return None
    candidate = execution.retry_of if execution.trigger == Trigger.RETRY else execution.restart_of
    for _ in range(MAX_RESTART_CHAIN):
        if candidate is None or candidate.external_execution_id:
            return candidate
        candidate = candidate.retry_of if candidate.trigger == Trigger.RETRY else candidate.restart_of
    return None


def deliver_kill(execution: Execution, endpoint: Endpoint, by: str) -> bool:
    """Deliver a kill that was recorded (`kill_requested_by`) rather than made at once: call Kill and
    end the execution in ERROR, not retried. A Kill that fails is noted in the log and tried again
    at the next poll, booked here."""
    try:
        request(endpoint, "kill", "POST", body=identity(execution))
    except CallFailed as exc:
        append_log(execution, f"kill requested by {by} failed, tried again at the next poll: {exc.reason}\n")
        Execution.objects.filter(pk=execution.pk, status=Status.RUNNING).update(
            next_check_at=timezone.now() + timedelta(seconds=endpoint.poll_interval))
        return False
    end(execution, Status.ERROR, error=f"killed by {by}", fetch_from=endpoint, retry=False)
    return True


def _deliver_after_commit(execution_id: int, by: str) -> None:
    """Send a recorded kill now; a failure is only logged (the next poll tries again): it must never
    turn the committed operation that asked for it into an error."""
    execution = (Execution.objects.select_related("job__custom_type", "job__process__flow", "application")
                 .filter(pk=execution_id, status=Status.RUNNING).exclude(external_execution_id="").first())
    if execution is None:  # ended meanwhile, or Start not answered yet (its answer is killed at once)
        return
    try:
        deliver_kill(execution, endpoint_of(execution), by)
    except Exception:
        log.exception("execution %s: the kill requested by %s is left to its next poll", execution_id, by)


def _started_for_a_row_that_moved_on(execution: Execution, endpoint: Endpoint) -> None:
    """Start was answered after its execution had ended (its worker taken for lost, a kill, a
    timeout): the external job it started must not run unseen. It is killed at once through Kill;
    without a Kill endpoint (or when Kill fails) the log names it as an orphan with its id."""
    external_id = execution.external_execution_id
    Execution.objects.filter(pk=execution.pk, external_execution_id="").update(external_execution_id=external_id)
    if endpoint.defines("kill"):
        try:
            request(endpoint, "kill", "POST", body=identity(execution))
        except CallFailed as exc:
            note = f"could not be killed ({exc.reason}): it may still run in {endpoint.name}"
        else:
            note = "killed through Kill"
    else:
        note = f"could not be killed (job type {endpoint.name} defines no Kill): it may still run there"
    log.warning("execution %s: Start answered after it had ended; external execution %s %s",
                execution.pk, external_id, note)
    append_log(execution, f"[batchdesk] Start was answered after this execution had ended: orphan external "
                          f"execution {external_id} {note}\n")


class Unpollable(Exception):
    """The execution's job is no longer of a custom type: nothing says where to follow it."""


def endpoint_of(execution: Execution) -> Endpoint:
    """How to reach the execution's external system; raises Unpollable when its job's type was
    edited since it started, ValueError when the type's secret no longer decrypts."""
    job = execution.job
    if job.custom_type is None:
        raise Unpollable(f"job {job.name} is now of type {job.job_type}: its external execution "
                         f"{execution.external_execution_id or '(none yet)'} can no longer be followed")
    return job.custom_type.endpoint(execution.application)


def identity(execution: Execution) -> dict[str, str]:
    """processName, jobName, executionId: how Status, Kill and Log name an external execution."""
    _, _, process = execution.job.flow_context()
    return {"processName": process, "jobName": execution.job.name, "executionId": execution.external_execution_id}


def start_body(execution: Execution) -> dict[str, str]:
    cycle, flow, process = execution.job.flow_context()
    return {
        "cycleName": cycle,
        "flowName": flow,
        "processName": process,
        "jobName": execution.job.name,
        "parameters": execution.parameters,
        "agentExecutionId": str(execution.agent_execution_id),
    }


def ended(execution: Execution, endpoint: Endpoint, answer: dict) -> bool:
    """End the execution when the answer says its external job ended."""
    status = str(answer.get("status") or "").upper()
    if status not in (Status.COMPLETED, Status.ERROR):
        return False
    info = describe(answer.get("executionInfo"))
    error = "" if status == Status.COMPLETED else (info or "the external job ended in ERROR")
    end(execution, status, error=error, fetch_from=endpoint, info=info)
    return True


def note_unknown_status(execution: Execution, answer: dict) -> None:
    if str(answer.get("status") or "").upper() not in EXTERNAL_STATUSES:
        note = f"unknown status {answer.get('status')!r} from Status, taken as RUNNING\n"
        log.warning("execution %s: %s", execution.pk, note.strip())
        append_log(execution, note)


def _poll_failed(execution: Execution, endpoint: Endpoint, exc: CallFailed) -> None:
    failures = execution.poll_failures + 1
    limit = settings.BATCHDESK["POLL_FAILURE_LIMIT"]
    if failures >= limit:
        end(execution, Status.ERROR, error=f"status polling failed {failures} times in a row: {exc.reason}",
            log_text=_failure_log(exc))
        return
    delay = min(endpoint.poll_interval * 2 ** failures, MAX_POLL_BACKOFF_SECONDS)
    Execution.objects.filter(pk=execution.pk, status=Status.RUNNING).update(
        poll_failures=failures, next_check_at=timezone.now() + timedelta(seconds=delay)
    )
    append_log(execution, f"status poll failed ({failures} of {limit}), next in {delay}s: {exc.reason}\n")


def _timed_out(execution: Execution) -> bool:
    timeout = execution.job.timeout_seconds
    return bool(timeout and execution.started_at and timezone.now() - execution.started_at > timedelta(seconds=timeout))


def _stop_external(execution: Execution, endpoint: Endpoint) -> str:
    """Kill a timed-out external job; returns "" when it is stopped, else a note saying why not."""
    if not endpoint.defines("kill"):
        why = f"job type {endpoint.name} defines no Kill"
    else:
        try:
            request(endpoint, "kill", "POST", body=identity(execution))
            return ""
        except CallFailed as exc:
            why = f"kill failed: {exc.reason}"
    return (f"[batchdesk] timeout: external execution {execution.external_execution_id} could not be stopped "
            f"({why}); not retried while it may still run\n")


def _failure_log(exc: CallFailed) -> str:
    return f"{exc.reason}\n{exc.body}".strip() + "\n"


def external_log(execution: Execution, endpoint: Endpoint) -> str | None:
    """The external system's log of this execution, or None when the type has no Log call."""
    if not endpoint.defines("log") or not execution.external_execution_id:
        return None
    try:
        text = request(endpoint, "log", "GET", query=identity(execution), expect_json=False)
    except CallFailed as exc:
        return f"[batchdesk] log unavailable: {exc.reason}\n"
    bounded = BoundedLog(settings.BATCHDESK["LOG_MAX_BYTES"])
    bounded.write(text)
    return bounded.text()


def end(execution: Execution, status: str, *, error: str = "", log_text: str | None = None,
        fetch_from: Endpoint | None = None, info: str = "", retry: bool = True, note: str = "") -> None:
    """Finish with the external log (when `fetch_from` has one), else the log kept so far; `note`
    is added at its end."""
    if fetch_from is not None:
        fetched = external_log(execution, fetch_from)
        if fetched is not None:
            log_text = fetched
    if log_text is None:
        log_text = Execution.objects.filter(pk=execution.pk).values_list("log", flat=True).first() or ""
    if note:
        log_text += ("\n" if log_text and not log_text.endswith("\n") else "") + note
    if info:
        Execution.objects.filter(pk=execution.pk).update(execution_info=info)
    lifecycle.finish(execution, status, error=error, log_text=log_text, retry=retry)


def append_log(execution: Execution, text: str) -> None:
    current = Execution.objects.filter(pk=execution.pk).values_list("log", flat=True).first() or ""
    bounded = BoundedLog(settings.BATCHDESK["LOG_MAX_BYTES"])
    bounded.write(current + text)
    Execution.objects.filter(pk=execution.pk).update(log=bounded.text())

