"""The engine's operations: trigger, claim, finish, kill, restart, recover.

Every entry point (admin, API, command, schedule, flow) calls these; none re-implements them.
State changes are conditional UPDATEs through `ExecutionQuerySet.move`, so two processes
racing for one row cannot both win.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from contextlib import nullcontext
from datetime import timedelta

import psutil
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.tasks import async_task

from apps.agents.models import Agent, AgentStatus
from apps.catalog import params
from apps.catalog.models import Application, Concurrency, JobDefinition
from apps.errors import BatchError, ErrorCode
from apps.engine.models import ACTIVE, PENDING, Execution, Status, Trigger
from apps.engine.signals import execution_failed

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 24 * 3600


def _setting(name: str) -> float:
    return settings.BATCHDESK[name]


def find_job(name: str) -> JobDefinition:
    try:
        return JobDefinition.objects.select_related("application").get(name=name)
    except JobDefinition.DoesNotExist:
        raise BatchError(ErrorCode.TASK_NOT_FOUND, f"No job named {name!r}.") from None


def trigger(
    job: JobDefinition,
    *,
    parameters: str | dict[str, str] | None = None,
    trigger: str = Trigger.MANUAL,
    triggered_by: str = "",
    restart_of: Execution | None = None,
) -> Execution:
    """Create a LOADED execution and hand it to a worker as soon as the transaction commits."""
    if not job.enabled:
        raise BatchError(ErrorCode.JOB_DISABLED, f"Job {job.name} is disabled.")
    if not job.application.enabled:
        raise BatchError(ErrorCode.JOB_DISABLED, f"Application {job.application.name} is disabled.")
    try:
        merged = params.merge(job.parameters, parameters)
    except ValidationError as exc:
        raise BatchError(ErrorCode.INVALID_PARAMETERS, exc.messages[0]) from None
    try:
        job.clean()
    except ValidationError as exc:
        raise BatchError(ErrorCode.INVALID_JOB, f"Job {job.name} cannot run: {' '.join(exc.messages)}") from None

    with transaction.atomic():
        if job.concurrency == Concurrency.REPLACE:
            for running in Execution.objects.active().filter(job=job):
                kill(running, by=f"a replacing {trigger} trigger")
        execution = _create(
            job,
            parameters=merged,
            trigger=trigger,
            triggered_by=triggered_by,
            restart_of=restart_of,
            next_check_at=timezone.now() + timedelta(seconds=_setting("DISPATCH_LEASE_SECONDS")),
        )
        transaction.on_commit(lambda: hand_out([execution.pk]))
    log.info("triggered %s as execution %s (%s by %s)", job.name, execution.pk, trigger, triggered_by or "-")
    return execution


def trigger_by_name(name: str, **kwargs) -> Execution:
    return trigger(find_job(name), **kwargs)


def _create(job: JobDefinition, **fields) -> Execution:
    exclusive = job.concurrency == Concurrency.FORBID
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
        # The partial unique index on active forbid executions refused a second one.
        raise BatchError(ErrorCode.JOB_ALREADY_RUNNING, ErrorCode.JOB_ALREADY_RUNNING.message) from None


_broker: tuple[int, object] | None = None


def queue_broker():
    """One broker per process: django-q2 otherwise builds one (a new Redis connection) per task.

    Keyed by pid, since workers are forked and must not share their parent's connection."""
    global _broker
    if _broker is None or _broker[0] != os.getpid():
        _broker = (os.getpid(), get_broker())
    return _broker[1]


def hand_out(execution_ids: list[int]) -> None:
    """Queue one short start task per execution; a lost task only lets the lease expire."""
    broker = queue_broker()
    for execution_id in execution_ids:
        async_task("apps.engine.tasks.start_execution", execution_id, task_name=f"start-{execution_id}", broker=broker)


def claim(execution_id: int, agent_id: int | None) -> Execution | None:
    """Move a pending execution to RUNNING on this agent, or to WAITING with the reason it must wait.

    Returns the execution when this caller won it and should run it, else None.
    """
    now = timezone.now()
    with transaction.atomic():
        execution = (
            Execution.objects.select_related("job", "application")
            .filter(pk=execution_id, status__in=PENDING)
            .first()
        )
        if execution is None:
            return None
        agent = Agent.objects.filter(pk=agent_id).first() if agent_id else None
        reason = _hold_back_reason(execution, agent, now)
        if not reason:
            running = {"started_at": now, "agent": agent, "host": socket.gethostname(), "waiting_reason": "",
                       "next_check_at": now + timedelta(seconds=_setting("RUN_LEASE_SECONDS"))}
            try:
                # Only a lock group's unique index can refuse this; no savepoint is needed without one.
                with transaction.atomic() if execution.lock_group else nullcontext():
                    won = Execution.objects.filter(pk=execution_id, status__in=PENDING).move(Status.RUNNING, **running)
            except IntegrityError:
                reason = f"lock group {execution.lock_group} is busy"
            else:
                if not won:
                    return None
                for field, value in {"status": Status.RUNNING, **running}.items():
                    setattr(execution, field, value)
                return execution
        # The holder of a lock or throttle slot wakes its waiters when it ends (_wake_waiting);
        # the recheck is only the safety net, so it need not hammer the queue.
        recheck = (execution.not_before if execution.not_before and execution.not_before > now
                   else now + timedelta(seconds=_setting("WAIT_RECHECK_SECONDS")))
        Execution.objects.filter(pk=execution_id).move(Status.WAITING, waiting_reason=reason[:300], next_check_at=recheck)
        return None


def _hold_back_reason(execution: Execution, agent: Agent | None, now) -> str:
    """Why this execution may not start now; empty when it may."""
    if execution.not_before and execution.not_before > now:
        return f"retry not before {execution.not_before:%Y-%m-%d %H:%M:%S %Z}"
    if agent is not None and agent.status == AgentStatus.BLOCKED:
        return f"agent {agent.name} is blocked"
    job = execution.job
    if job.concurrency == Concurrency.REPLACE and (
        Execution.objects.active().filter(job=job, created_at__lt=execution.created_at).exclude(pk=execution.pk).exists()
    ):
        return "waiting for the replaced execution to end"
    if execution.lock_group and Execution.objects.filter(lock_group=execution.lock_group, status=Status.RUNNING).exists():
        return f"lock group {execution.lock_group} is busy"
    limit = execution.application.throttle_limit
    if limit:
        # Serialise claims within one throttled application (a no-op on SQLite, which
        # serialises every write transaction anyway).
        Application.objects.select_for_update().filter(pk=execution.application_id).first()
        if Execution.objects.filter(application_id=execution.application_id, status=Status.RUNNING).count() >= limit:
            return f"application {execution.application.name} is at its throttle limit of {limit}"
    return ""


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
    fields = {"finished_at": timezone.now(), "error": error, "exit_code": exit_code, "warning": warning, "next_check_at": None}
    if log_text is not None:
        fields.update(log=log_text, log_bytes=log_bytes if log_bytes is not None else len(log_text.encode()))
    with transaction.atomic():
        if not Execution.objects.filter(pk=execution.pk, status__in=ACTIVE).move(status, **fields):
            return False
        # What follows reads only what never changes after creation, and what was just written.
        for field, value in {"status": status, **fields}.items():
            setattr(execution, field, value)
        final_failure = status == Status.ERROR
        if final_failure and retry and execution.attempt <= execution.job.max_retries:
            _schedule_retry(execution)
            final_failure = False
        if final_failure:
            transaction.on_commit(lambda: execution_failed.send(sender=Execution, execution=execution))
        _wake_waiting(execution)
    log.info("execution %s of %s ended %s %s", execution.pk, execution.job.name, status, error)
    return True


def _schedule_retry(failed: Execution) -> Execution:
    delay = min(failed.job.retry_backoff_seconds * 2 ** (failed.attempt - 1), MAX_BACKOFF_SECONDS)
    not_before = timezone.now() + timedelta(seconds=delay)
    return _create(
        failed.job,
        status=Status.WAITING,
        parameters=failed.parameters,
        trigger=Trigger.RETRY,
        triggered_by=failed.triggered_by,
        attempt=failed.attempt + 1,
        retry_of=failed,
        restart_of=failed.restart_of,
        not_before=not_before,
        next_check_at=not_before,
        waiting_reason=f"retry {failed.attempt} of {failed.job.max_retries} after {delay}s",
    )


def _wake_waiting(ended: Execution) -> None:
    """Hand out executions that waited for the lock group or throttle slot this one held."""
    now = timezone.now()
    related = Q(application_id=ended.application_id)
    if ended.lock_group:
        related |= Q(lock_group=ended.lock_group)
    waiting = list(
        Execution.objects.filter(related, status=Status.WAITING)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .order_by("created_at")
        .values_list("pk", flat=True)[:20]
    )
    if waiting:
        transaction.on_commit(lambda: hand_out(waiting))


def kill(execution: Execution, *, by: str) -> Execution:
    """Kill an execution. Pending ones end at once; a running one is stopped by its runner within seconds."""
    if execution.status in PENDING or execution.status == Status.HELD:
        Execution.objects.filter(pk=execution.pk).update(kill_requested_by=by)
        execution.kill_requested_by = by
        if finish(execution, Status.ERROR, error=f"killed by {by}", retry=False):
            return execution
        execution.refresh_from_db()
    if execution.status != Status.RUNNING:
        raise BatchError(
            "NOT_ACTIVE", f"Execution {execution.pk} is {execution.status}; only active executions can be killed."
        )
    if execution.job.is_custom:
        from apps.engine import rest

        return rest.kill(execution, by)
    Execution.objects.filter(pk=execution.pk, status=Status.RUNNING, kill_requested_by="").update(kill_requested_by=by)
    execution.refresh_from_db()
    return execution


def restart(execution: Execution, *, by: str) -> Execution:
    """A new execution of a failed one, with its parameters (SPEC §2: only ERROR restarts)."""
    if execution.status != Status.ERROR:
        raise BatchError(
            "NOT_RESTARTABLE", f"Execution {execution.pk} is {execution.status}; only executions in ERROR can be restarted."
        )
    return trigger(
        execution.job, parameters=execution.parameters, trigger=Trigger.RESTART, triggered_by=by, restart_of=execution
    )


# --- the dispatcher's steps -------------------------------------------------------------


def hand_out_due(limit: int = 500) -> int:
    """Hand out pending executions whose lease ran out (new, waiting, or whose start task was lost)."""
    now = timezone.now()
    with transaction.atomic():
        due = list(
            Execution.objects.select_for_update(skip_locked=True)
            .filter(status__in=PENDING, next_check_at__lte=now)
            .order_by("next_check_at")
            .values_list("pk", flat=True)[:limit]
        )
        if not due:
            return 0
        Execution.objects.filter(pk__in=due).update(
            next_check_at=now + timedelta(seconds=_setting("DISPATCH_LEASE_SECONDS"))
        )
    hand_out(due)
    return len(due)


def recover_lost() -> int:
    """End runs held by a worker whose agent is offline or that stopped renewing the lease.

    They end in ERROR "agent lost" (and are retried as usual). A custom-type run whose
    external job has started (it has an `external_execution_id`) is held by no worker: it
    simply keeps being polled, whatever happened to the agent that started it.
    """
    lost = (
        Execution.objects.filter(status=Status.RUNNING, external_execution_id="")
        .filter(Q(agent__status=AgentStatus.OFFLINE) | Q(next_check_at__lt=timezone.now()))
        .select_related("job")
    )
    recovered = 0
    for execution in lost:
        _kill_orphan(execution)
        recovered += finish(execution, Status.ERROR, error="agent lost")
    return recovered


def _kill_orphan(execution: Execution) -> None:
    """Best effort: a lost worker's process group on this host must not run on unseen."""
    if not execution.pid or execution.host != socket.gethostname():
        return
    try:
        if execution.started_at and psutil.Process(execution.pid).create_time() > execution.started_at.timestamp() + 5:
            return  # the pid now belongs to an unrelated, younger process
    except psutil.Error:
        pass  # the leader is gone; Linux keeps its pid as the group id while members live
    try:
        os.killpg(execution.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
