"""Custom (Generic ReST) job types on the engine: start, poll, restart, kill, log (SPEC §3).

A worker only makes calls: the start task sends Start and returns; the dispatcher hands due
polls out in batches, and a batch polls its executions concurrently. Between calls an
execution is a row with a `next_check_at` lease, so nothing waits in a worker and a lost
batch only lets the lease run out.
"""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, TextField, Value, When
from django.utils import timezone
from django_q.tasks import async_task

from apps.catalog.models import JobType
from apps.connectors.client import CallFailed, Endpoint, describe, request
from apps.engine import services
from apps.errors import BatchError, ErrorCode
from apps.engine.logbuffer import BoundedLog
from apps.engine.models import Execution, Status

log = logging.getLogger(__name__)

EXTERNAL_STATUSES = {"RUNNING", "COMPLETED", "ERROR"}
MAX_POLL_BACKOFF_SECONDS = 300
# Answers of one poll batch that came within this long of each other are booked by one UPDATE.
BOOKING_STEP_SECONDS = 0.25


def _setting(name: str):
    return settings.BATCHDESK[name]


def endpoint_of(execution: Execution) -> Endpoint:
    job_type = JobType.objects.get(name=execution.job.job_type)
    return job_type.endpoint(execution.application)


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


# --- start ------------------------------------------------------------------------------


def start(execution: Execution) -> None:
    """Send Start (or Restart for a restart of a started external job) and record the answer."""
    endpoint = endpoint_of(execution)
    body = start_body(execution)
    call = "start"
    failed = execution.restart_of
    if failed is not None and failed.external_execution_id and endpoint.defines("restart"):
        call = "restart"
        body["executionId"] = failed.external_execution_id
    try:
        answer = request(endpoint, call, "POST", body=body)
    except CallFailed as exc:
        _end(execution, Status.ERROR, error=exc.reason, log_text=_failure_log(exc))
        return
    external_id = str(answer.get("executionId") or "").strip()
    if not external_id:
        _end(execution, Status.ERROR, error=f"{call}: the answer has no executionId",
             log_text=describe(answer))
        return
    Execution.objects.filter(pk=execution.pk, status=Status.RUNNING).update(
        external_execution_id=external_id[:200],
        execution_info=describe(answer.get("executionInfo")),
        next_check_at=timezone.now() + timedelta(seconds=endpoint.poll_interval),
    )
    execution.external_execution_id = external_id
    _follow(execution, endpoint, answer)


def _failure_log(exc: CallFailed) -> str:
    return f"{exc.reason}\n{exc.body}".strip() + "\n"


# --- poll -------------------------------------------------------------------------------


def claim_due_polls(limit: int = 5000, batch_size: int | None = None) -> int:
    """The dispatcher's step: lease due polls and hand them out in batches.

    It claims what falls due before the middle of the next tick too: the dispatcher ticks about
    once a second, so rounding each due time to the nearest tick (up to half a tick early)
    halves the worst lag that rounding always up would add, and a poll early by half a second
    harms nothing: the next one is booked from when this one is answered.
    """
    now = timezone.now()
    horizon = now + timedelta(seconds=_setting("DISPATCHER_TICK_SECONDS") / 2)
    lease = timedelta(seconds=_setting("POLL_LEASE_SECONDS"))
    with transaction.atomic():
        due = list(
            Execution.objects.select_for_update(skip_locked=True)
            .filter(status=Status.RUNNING, next_check_at__lte=horizon)
            .exclude(external_execution_id="")
            .order_by("next_check_at")
            .values_list("pk", flat=True)[:limit]
        )
        if not due:
            return 0
        Execution.objects.filter(pk__in=due).update(next_check_at=now + lease)
    # Batches of at most POLL_BATCH_SIZE, of even sizes, so that the workers finish together.
    batches = math.ceil(len(due) / (batch_size or _setting("POLL_BATCH_SIZE")))
    broker = services.queue_broker()
    for index in range(batches):
        async_task("apps.engine.tasks.poll_batch", due[index * len(due) // batches:(index + 1) * len(due) // batches],
                   broker=broker)
    return len(due)


def poll_batch(execution_ids: list[int]) -> int:
    """Poll each execution once, concurrently; returns how many were polled.

    The threads only make the Status calls; this thread then books the executions still RUNNING
    for their next poll together, in a few UPDATEs (_book_next_polls). Only the rare outcomes
    (ended, failed, timed out) touch the database from a poll thread.
    """
    executions = list(
        Execution.objects.select_related("job__process__flow", "application")
        .filter(pk__in=execution_ids, status=Status.RUNNING)
        .exclude(external_execution_id="")
    )
    if not executions:
        return 0
    endpoints: dict[tuple[str, int], Endpoint] = {}
    for execution in executions:
        key = (execution.job.job_type, execution.application_id)
        if key not in endpoints:
            endpoints[key] = endpoint_of(execution)
    polled = [(execution, endpoints[(execution.job.job_type, execution.application_id)]) for execution in executions]
    answers = _poll_pool().map(lambda pair: _poll_in_thread(*pair), polled)
    _book_next_polls([(execution, endpoint, *answered)
                      for (execution, endpoint), answered in zip(polled, answers) if answered is not None])
    return len(executions)


_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def _poll_pool() -> ThreadPoolExecutor:
    """This process's poll threads, kept between batches (a django-q2 worker is a forked process:
    threads do not survive a fork, hence the pid check)."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        _pool = ThreadPoolExecutor(max_workers=_setting("POLL_THREADS"), thread_name_prefix="poll")
        _pool_pid = os.getpid()
    return _pool


def _poll_in_thread(execution: Execution, endpoint: Endpoint) -> tuple[dict, datetime] | None:
    """The answer of a still-running job and when it came, or None (see _call_status)."""
    try:
        answer = _call_status(execution, endpoint)
        return None if answer is None else (answer, timezone.now())
    except Exception:
        log.exception("polling execution %s failed", execution.pk)
        return None
    finally:
        connection.close()  # only the rare outcomes open one; the pool's threads outlive this batch


def poll(execution: Execution, endpoint: Endpoint | None = None) -> None:
    """One Status call and what follows from its answer."""
    endpoint = endpoint or endpoint_of(execution)
    answer = _call_status(execution, endpoint)
    if answer is not None:
        _book_next_polls([(execution, endpoint, answer, timezone.now())])


def _call_status(execution: Execution, endpoint: Endpoint) -> dict | None:
    """Call Status. Returns the answer of a still-running job, to be booked for its next poll;
    anything else (ended, failed call, timeout) is dealt with here and gives None."""
    if _timed_out(execution):
        _stop_external(execution, endpoint)
        _end(execution, Status.ERROR, error="timeout", fetch_from=endpoint)
        return None
    try:
        answer = request(endpoint, "status", "GET", query=identity(execution))
    except CallFailed as exc:
        _poll_failed(execution, endpoint, exc)
        return None
    return None if _ended(execution, endpoint, answer) else answer


def _follow(execution: Execution, endpoint: Endpoint, answer: dict) -> None:
    """Act on a Start/Restart/Status answer: end the execution, or book its next poll."""
    if not _ended(execution, endpoint, answer):
        _book_next_polls([(execution, endpoint, answer, timezone.now())])


def _ended(execution: Execution, endpoint: Endpoint, answer: dict) -> bool:
    """End the execution when the answer says its external job ended."""
    status = str(answer.get("status") or "").upper()
    if status not in (Status.COMPLETED, Status.ERROR):
        return False
    info = describe(answer.get("executionInfo"))
    error = "" if status == Status.COMPLETED else (info or "the external job ended in ERROR")
    _end(execution, status, error=error, fetch_from=endpoint, info=info)
    return True


def _book_next_polls(running: list[tuple[Execution, Endpoint, dict, datetime]]) -> None:
    """Record the answers of still-running jobs, each with the time it came, and book their next polls.

    Each next poll is due one poll interval after its answer, as if booked one by one, except
    that answers within one BOOKING_STEP_SECONDS step share one UPDATE, booked from the start of
    that step: a batch costs a few UPDATEs, not one per execution, and a poll comes at most a
    step early.
    """
    groups: dict[tuple[float, float], list[int]] = {}
    infos: dict[int, str] = {}
    for execution, endpoint, answer, answered_at in running:
        step = answered_at.timestamp() // BOOKING_STEP_SECONDS * BOOKING_STEP_SECONDS
        groups.setdefault((endpoint.poll_interval, step), []).append(execution.pk)
        info = describe(answer.get("executionInfo"))
        if info and info != execution.execution_info:  # most polls repeat the info they had: no write
            infos[execution.pk] = info
    for (interval, step), pks in groups.items():
        updates = {"poll_failures": 0,
                   "next_check_at": datetime.fromtimestamp(step + interval, tz=dt_timezone.utc)}
        changed = [When(pk=pk, then=Value(infos[pk])) for pk in pks if pk in infos]
        if changed:
            updates["execution_info"] = Case(*changed, default=F("execution_info"), output_field=TextField())
        Execution.objects.filter(pk__in=pks, status=Status.RUNNING).update(**updates)
    for execution, _, answer, _ in running:
        if str(answer.get("status") or "").upper() not in EXTERNAL_STATUSES:
            note = f"unknown status {answer.get('status')!r} from Status, taken as RUNNING\n"
            log.warning("execution %s: %s", execution.pk, note.strip())
            _append_log(execution, note)


def _poll_failed(execution: Execution, endpoint: Endpoint, exc: CallFailed) -> None:
    failures = execution.poll_failures + 1
    limit = _setting("POLL_FAILURE_LIMIT")
    if failures >= limit:
        _end(execution, Status.ERROR, error=f"status polling failed {failures} times in a row: {exc.reason}",
             log_text=_failure_log(exc))
        return
    delay = min(endpoint.poll_interval * 2 ** failures, MAX_POLL_BACKOFF_SECONDS)
    Execution.objects.filter(pk=execution.pk, status=Status.RUNNING).update(
        poll_failures=failures, next_check_at=timezone.now() + timedelta(seconds=delay)
    )
    _append_log(execution, f"status poll failed ({failures} of {limit}), next in {delay}s: {exc.reason}\n")


def _timed_out(execution: Execution) -> bool:
    timeout = execution.job.timeout_seconds
    return bool(timeout and execution.started_at and timezone.now() - execution.started_at > timedelta(seconds=timeout))


# --- kill and log -----------------------------------------------------------------------


def kill(execution: Execution, by: str) -> Execution:
    """Call Kill, then end the execution in ERROR; refused when the type defines no Kill."""
    endpoint = endpoint_of(execution)
    if not endpoint.defines("kill"):
        raise BatchError(ErrorCode.NOT_KILLABLE, f"Kill is not defined for job type {endpoint.name}")
    if not execution.external_execution_id:
        raise BatchError(ErrorCode.NOT_KILLABLE, f"Execution {execution.pk} has no external execution to kill yet; try again.")
    try:
        request(endpoint, "kill", "POST", body=identity(execution))
    except CallFailed as exc:
        raise BatchError(ErrorCode.KILL_FAILED, f"Kill failed, the execution is unchanged: {exc.reason}") from None
    _end(execution, Status.ERROR, error=f"killed by {by}", fetch_from=endpoint, retry=False)
    execution.refresh_from_db()
    return execution


def _stop_external(execution: Execution, endpoint: Endpoint) -> None:
    if endpoint.defines("kill") and execution.external_execution_id:
        try:
            request(endpoint, "kill", "POST", body=identity(execution))
        except CallFailed as exc:
            _append_log(execution, f"kill after timeout failed: {exc.reason}\n")


def fetch_log(execution: Execution, endpoint: Endpoint | None = None) -> str | None:
    """The external system's log of this execution, or None when the type has no Log call."""
    endpoint = endpoint or endpoint_of(execution)
    if not endpoint.defines("log") or not execution.external_execution_id:
        return None
    try:
        text = request(endpoint, "log", "GET", query=identity(execution), expect_json=False)
    except CallFailed as exc:
        return f"[batchdesk] log unavailable: {exc.reason}\n"
    bounded = BoundedLog(_setting("LOG_MAX_BYTES"))
    bounded.write(text)
    return bounded.text()


def refresh_log(execution: Execution) -> Execution:
    """Fetch the external log now and store it with the execution (the on-demand Log call)."""
    text = fetch_log(execution)
    if text is None:
        raise BatchError(ErrorCode.NO_LOG, f"Log is not defined for job type {execution.job.job_type}, or nothing started.")
    Execution.objects.filter(pk=execution.pk).update(log=text, log_bytes=len(text.encode()))
    execution.refresh_from_db()
    return execution


def _end(execution: Execution, status: str, *, error: str = "", log_text: str | None = None,
         fetch_from: Endpoint | None = None, info: str = "", retry: bool = True) -> None:
    if fetch_from is not None:
        fetched = fetch_log(execution, fetch_from)
        if fetched is not None:
            log_text = fetched
    if log_text is None:
        log_text = Execution.objects.filter(pk=execution.pk).values_list("log", flat=True).first() or ""
    if info:
        Execution.objects.filter(pk=execution.pk).update(execution_info=info)
    services.finish(execution, status, error=error, log_text=log_text, retry=retry)


def _append_log(execution: Execution, text: str) -> None:
    current = Execution.objects.filter(pk=execution.pk).values_list("log", flat=True).first() or ""
    bounded = BoundedLog(_setting("LOG_MAX_BYTES"))
    bounded.write(current + text)
    Execution.objects.filter(pk=execution.pk).update(log=bounded.text())
