"""The life of an execution row: create, hand out, claim, finish (with its retry and the wake-up of
what waited for it). Every status change is a conditional UPDATE through `ExecutionQuerySet.move`,
so two processes racing for one row cannot both win.

The kinds (apps/engine/kinds) run what a claim hands them and end it with `finish`; the services
(trigger, kill, restart) and the dispatcher's steps build on both. Nothing here knows a kind.
"""

from __future__ import annotations

import logging
import os
import socket
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.tasks import async_task

from apps import faults
from apps.agents.models import Agent, AgentStatus
from apps.catalog.models import Application, Concurrency, JobDefinition
from apps.engine.models import ACTIVE, PENDING, Execution, Status, Trigger
from apps.engine.signals import execution_ended, execution_failed
from apps.errors import BatchError, ErrorCode

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 24 * 3600
# A waiter held back by a blocked agent is handed out again soon: another agent may take it.
BLOCKED_AGENT_RECHECK_SECONDS = 5
# The slowest safety recheck of a long wait (see Hold.recheck_at).
MAX_WAIT_RECHECK_SECONDS = 3600


def setting(name: str):
    return settings.BATCHDESK[name]


def create(job: JobDefinition, **fields) -> Execution:
    """Insert an execution of `job`; a forbid job's unique index refuses a second active one."""
    exclusive = fields.pop("exclusive", job.concurrency == Concurrency.FORBID)
    try:
        # Only a forbid job's unique index can refuse the row; no savepoint is needed otherwise.
        with transaction.atomic() if exclusive else nullcontext():
            return Execution.objects.create(
                job=job,
                application_id=job.application_id,
                exclusive=exclusive,
                lock_group=job.lock_group,
                **fields,
            )
    except IntegrityError:
        raise BatchError(ErrorCode.JOB_ALREADY_RUNNING) from None


_broker: tuple[int, object] | None = None


def queue_broker():
    """One broker per process: django-q2 otherwise builds one (a new Redis connection) per task.

    Keyed by pid, since workers are forked and must not share their parent's connection."""
    global _broker
    if _broker is None or _broker[0] != os.getpid():
        _broker = (os.getpid(), get_broker())
    return _broker[1]


def hand_out(execution_ids: list[int]) -> None:
    """Queue one short start task per execution; a lost task only lets the lease expire.

    It never raises: it runs after a commit (a trigger, a finish), and a queue that cannot be
    reached must not turn what was committed into an error. Every row handed out carries a lease,
    and the dispatcher hands it out again when that runs out."""
    try:
        broker = queue_broker()
        for execution_id in execution_ids:
            async_task("apps.engine.tasks.start_execution", execution_id, task_name=f"start-{execution_id}",
                       broker=broker)
    except Exception:
        log.exception("the queue did not take the start tasks of executions %s; their leases bring them back",
                      execution_ids[:20])


def claim(execution_id: int, agent_id: int | None) -> Execution | None:
    """Move a pending execution to RUNNING on this agent, or to WAITING with the reason it must wait.

    Returns the execution when this caller won it and should run it, else None.
    """
    now = timezone.now()
    with transaction.atomic():
        execution = (
            Execution.objects.select_related("job__custom_type", "application")
            .filter(pk=execution_id, status__in=PENDING)
            .first()
        )
        if execution is None:
            return None
        if execution.kill_requested_by:  # killed in the same instant: the killer ends it
            return None
        disabled = _disabled_since(execution)
        if disabled:  # a retry of a job (or application) disabled since the failure
            finish(execution, Status.SKIPPED, error=f"not retried: {disabled}", retry=False)
            return None
        agent = Agent.objects.filter(pk=agent_id).first() if agent_id else None
        hold = _hold_back(execution, agent, now)
        if hold is None:
            # Read now, not at the claim's start: the slot it takes was freed by then (a finish that
            # committed while this claim waited for the application's lock, or SQLite's).
            running = {"started_at": timezone.now(), "agent": agent, "host": socket.gethostname(), "waiting_reason": "",
                       "next_check_at": now + timedelta(seconds=setting("RUN_LEASE_SECONDS"))}
            try:
                # Only a lock group's unique index can refuse this; no savepoint is needed without one.
                with transaction.atomic() if execution.lock_group else nullcontext():
                    won = Execution.objects.filter(pk=execution_id, status__in=PENDING, kill_requested_by="").move(
                        Status.RUNNING, **running)
            except IntegrityError:
                hold = Hold(f"lock group {execution.lock_group} is busy")
            else:
                if not won:
                    return None
                for field, value in {"status": Status.RUNNING, **running}.items():
                    setattr(execution, field, value)
                return execution
        Execution.objects.filter(pk=execution_id).move(Status.WAITING, waiting_reason=hold.reason[:300],
                                                       next_check_at=hold.recheck_at(execution, now))
        if not hold.throttle:
            # It was counted as on its way to a throttle slot; now it waits for something else, so
            # the slot passes to the next in line.
            _wake(execution.application_id, exclude=execution.pk)
        return None


@dataclass
class Hold:
    """Why an execution may not start now, and when the dispatcher looks at it again (the safety
    recheck: what it waits for wakes it when it ends, see _wake)."""

    reason: str
    throttle: bool = False  # waits for a throttle slot
    until: datetime | None = None  # a retry's backoff: due exactly then
    soon: bool = False  # a blocked agent: another agent may take it at once

    def recheck_at(self, execution: Execution, now: datetime) -> datetime:
        if self.until is not None:
            return self.until
        if self.soon:
            return now + timedelta(seconds=BLOCKED_AGENT_RECHECK_SECONDS)
        # Slowly, and more slowly the longer it waits: after half the time it has waited so far
        # (at least WAIT_RECHECK_SECONDS, at most an hour), so a long wait costs few rechecks.
        waited = (now - execution.created_at).total_seconds()
        return now + timedelta(seconds=min(max(setting("WAIT_RECHECK_SECONDS"), waited / 2), MAX_WAIT_RECHECK_SECONDS))


def _hold_back(execution: Execution, agent: Agent | None, now) -> Hold | None:
    """Why this execution may not start now; None when it may."""
    if execution.awaits_flow:
        return Hold(execution.waiting_reason or "waiting for its flow")
    if execution.not_before and execution.not_before > now:
        return Hold(f"retry not before {execution.not_before:%Y-%m-%d %H:%M:%S %Z}", until=execution.not_before)
    if agent is not None and agent.status == AgentStatus.BLOCKED:
        return Hold(f"agent {agent.name} is blocked", soon=True)
    job = execution.job
    if job.concurrency == Concurrency.REPLACE and (
        Execution.objects.active().filter(job=job, created_at__lt=execution.created_at).exclude(pk=execution.pk).exists()
    ):
        return Hold("waiting for the replaced execution to end")
    if execution.lock_group and Execution.objects.filter(lock_group=execution.lock_group, status=Status.RUNNING).exists():
        return Hold(f"lock group {execution.lock_group} is busy")
    limit = execution.application.throttle_limit
    if limit:
        # Serialise claims within one throttled application (a no-op on SQLite, which
        # serialises every write transaction anyway).
        Application.objects.select_for_update().filter(pk=execution.application_id).first()
        if Execution.objects.filter(application_id=execution.application_id, status=Status.RUNNING).count() >= limit:
            return Hold(f"application {execution.application.name} is at its throttle limit of {limit}", throttle=True)
    return None


def finish(
    execution: Execution,
    status: str,
    *,
    error: str = "",
    exit_code: int | None = None,
    warning: bool = False,
    log_text: str | None = None,
    log_bytes: int | None = None,
    retry: bool = True,
) -> bool:
    """End an execution; schedule its retry or announce its final failure. False if it had already ended."""
    # A NUL character (from a job's output or an external answer) is refused by PostgreSQL text.
    error = error.replace("\x00", "\ufffd")
    fields = {"finished_at": timezone.now(), "error": error, "exit_code": exit_code, "warning": warning, "next_check_at": None}
    if log_text is not None:
        fields.update(log=log_text.replace("\x00", "\ufffd"),
                      log_bytes=log_bytes if log_bytes is not None else len(log_text.encode()))
    with transaction.atomic():
        if not Execution.objects.filter(pk=execution.pk, status__in=ACTIVE).move(status, **fields):
            return False
        # What follows reads only what never changes after creation, and what was just written.
        for field, value in {"status": status, **fields}.items():
            setattr(execution, field, value)
        final_failure = status == Status.ERROR
        retried = final_failure and retry and execution.attempt <= execution.job.max_retries
        if retried:
            refused = _schedule_retry(execution)
            if refused:
                # The failure stands; a retry that cannot be made never undoes the end of the run.
                retried = False
                execution.error = f"{error} (not retried: {refused})"[:2000]
                Execution.objects.filter(pk=execution.pk).update(error=execution.error)
            else:
                final_failure = False
        if final_failure:
            transaction.on_commit(lambda: execution_failed.send(sender=Execution, execution=execution))
        if status == Status.COMPLETED and execution.started_at:
            _count_completed(execution)
        execution_ended.send(sender=Execution, execution=execution, retried=retried)
        _wake_waiting(execution)
    log.info("execution %s of %s ended %s %s", execution.pk, execution.job.name, status, error)
    return True


def _count_completed(execution: Execution) -> None:
    """Fold this run into its job's running average (the one average runtime)."""
    seconds = (execution.finished_at - execution.started_at).total_seconds()
    runs = F("completed_runs")
    JobDefinition.objects.filter(pk=execution.job_id).update(
        average_runtime_seconds=(Coalesce(F("average_runtime_seconds"), 0.0) * runs + seconds) / (runs + 1.0),
        completed_runs=runs + 1,
    )


def _disabled_since(execution: Execution) -> str:
    """For a retry: why its job may no longer run (disabled since the failure), else ""."""
    if execution.trigger != Trigger.RETRY:
        return ""
    if not execution.job.enabled:
        return f"job {execution.job.name} is disabled"
    if not execution.application.enabled:
        return f"application {execution.application.name} is disabled"
    return ""


def _schedule_retry(failed: Execution) -> str:
    """Create the retry of a failed execution; returns why there is none, or "" when there is."""
    enabled = JobDefinition.objects.filter(pk=failed.job_id).values_list("enabled", "application__enabled").first()
    if enabled != (True, True):
        return "the job or its application is disabled"
    delay = min(failed.job.retry_backoff_seconds * 2 ** (failed.attempt - 1), MAX_BACKOFF_SECONDS)
    not_before = timezone.now() + timedelta(seconds=delay)
    try:
        retry = _create_retry(failed, delay, not_before)
    except BatchError as exc:  # the forbid index: another execution of the job is active
        log.warning("execution %s of %s is not retried: %s", failed.pk, failed.job.name, exc.message)
        return f"{exc.code}: {exc.message}"
    if not delay:  # no backoff: at once, like a trigger (else the dispatcher hands it out when due)
        transaction.on_commit(lambda: hand_out([retry.pk]))
    return ""


def _create_retry(failed: Execution, delay: int, not_before) -> Execution:
    return create(
        failed.job,
        status=Status.WAITING,
        parameters=failed.parameters,
        trigger=Trigger.RETRY,
        triggered_by=failed.triggered_by,
        attempt=failed.attempt + 1,
        retry_of=failed,
        restart_of=failed.restart_of,
        flow_run_id=failed.flow_run_id,
        # A run's executions never are (see apps/flows); any other follows its job as it is now.
        exclusive=failed.job.concurrency == Concurrency.FORBID and not failed.flow_run_id,
        not_before=not_before,
        next_check_at=not_before,
        waiting_reason=f"retry {failed.attempt} of {failed.job.max_retries} after {delay}s",
    )


def _wake_waiting(ended: Execution) -> None:
    """What ended frees its lock group, its application's throttle slot, and (a replaced run) its
    job: wake the waiters that were waiting for exactly that."""
    replaced = ended.job.concurrency == Concurrency.REPLACE
    _wake(ended.application_id, lock_group=ended.lock_group, job_id=ended.job_id if replaced else None)


def _wake(application_id: int, *, lock_group: str = "", job_id: int | None = None, exclude: int | None = None) -> None:
    """Hand out, oldest first, the sleeping waiters that a freed place lets run: the next of the lock
    group, the next of a replaced job, and as many of the application's as it has free throttle slots.

    Woken rows get a dispatch lease, so a lost hand-out comes back by it, and they count as on their
    way to a slot, so two events never wake more waiters than there are places. Rows known to wait
    for something else (a busy lock group, a run they replace, a retry's backoff, their flow) are
    not woken: waiting costs nothing until what it waits for ends.
    """
    now = timezone.now()
    on_its_way = now + timedelta(seconds=setting("DISPATCH_LEASE_SECONDS"))
    asleep = (
        Execution.objects.filter(status=Status.WAITING, awaits_flow=False, next_check_at__gt=on_its_way)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .exclude(Exists(Execution.objects.filter(status=Status.RUNNING, lock_group=OuterRef("lock_group"))
                        .exclude(lock_group="")))
        .exclude(Q(job__concurrency=Concurrency.REPLACE)
                 & Exists(Execution.objects.active().filter(job=OuterRef("job"), created_at__lt=OuterRef("created_at"))))
        .order_by("created_at", "pk")
    )
    if exclude is not None:
        asleep = asleep.exclude(pk=exclude)
    woken: list[int] = []

    def wake(candidates, count: int) -> None:
        if count <= 0:
            return
        # skip_locked: a concurrent wake-up (another finish) takes the next ones (PostgreSQL).
        rows = list(candidates.exclude(pk__in=woken).select_for_update(skip_locked=True, of=("self",))
                    .values_list("pk", flat=True)[:count])
        if rows:
            Execution.objects.filter(pk__in=rows).update(next_check_at=on_its_way)
            woken.extend(rows)

    if lock_group:
        wake(asleep.filter(lock_group=lock_group), 1)
    if job_id is not None:
        wake(asleep.filter(job_id=job_id), 1)
    limit = Application.objects.filter(pk=application_id).values_list("throttle_limit", flat=True).first()
    if limit:
        # One statement, so that a claim committing meanwhile is counted once (as running or on its way).
        taken = Execution.objects.filter(application_id=application_id).aggregate(
            running=Count("pk", filter=Q(status=Status.RUNNING)),
            on_its_way=Count("pk", filter=Q(status__in=PENDING, awaits_flow=False, next_check_at__lte=on_its_way)),
        )
        wake(asleep.filter(application_id=application_id), limit - taken["running"] - taken["on_its_way"])
    if woken:
        transaction.on_commit(lambda: hand_out(woken))


def set_aside(execution: Execution, exc: Exception, what: str = "could not be processed") -> None:
    """End an execution that a step could not process in ERROR, with the reason. It is not retried:
    the same fault would meet its retry. When even `finish` fails on it, the bare status change."""
    reason = f"{what}: {faults.describe(exc)}"[:2000]
    try:
        with transaction.atomic():
            if finish(execution, Status.ERROR, error=reason, retry=False):
                return
    except faults.TRANSIENT_DB_ERRORS:
        raise
    except Exception:
        log.exception("execution %s could not be ended normally; ending it without its follow-ups", execution.pk)
    Execution.objects.filter(pk=execution.pk, status__in=ACTIVE).move(
        Status.ERROR, error=reason, finished_at=timezone.now(), next_check_at=None)


def request_kill(execution: Execution, by: str) -> Execution:
    """Ask the runner supervising a RUNNING execution to stop it (it checks twice a second)."""
    Execution.objects.filter(pk=execution.pk, status=Status.RUNNING, kill_requested_by="").update(kill_requested_by=by)
    execution.refresh_from_db()
    return execution
