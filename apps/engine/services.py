"""The engine's operations on executions: trigger, kill, restart. Every entry point (admin, API,
command, schedule, flow) calls these; none re-implements them. They build on the life of a row
(apps/engine/lifecycle.py) and on the kinds (apps/engine/kinds)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps import audit
from apps.catalog import params
from apps.catalog.models import Concurrency, JobDefinition, JobKind, JobType
from apps.connectors.client import CheckResult
from apps.engine import kinds, lifecycle
from apps.engine.models import PENDING, Execution, Status, Trigger
from apps.engine.signals import execution_changed
from apps.errors import BatchError, ErrorCode

log = logging.getLogger(__name__)

# Triggers by a person (the audit trail records them); schedules and retries have their own records.
OPERATOR_TRIGGERS = {Trigger.MANUAL, Trigger.API, Trigger.CLI, Trigger.RESTART}


def find_job(name: str) -> JobDefinition:
    try:
        return JobDefinition.objects.select_related("application", "custom_type").get(name=name)
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
            for active in Execution.objects.active().filter(job=job):
                _replace(active, by=f"a replacing {trigger} trigger")
        execution = lifecycle.create(
            job,
            parameters=merged,
            trigger=trigger,
            triggered_by=triggered_by,
            restart_of=restart_of,
            # A restart in a flow run stays in that run, which continues from it.
            flow_run_id=restart_of.flow_run_id if restart_of else None,
            next_check_at=timezone.now() + timedelta(seconds=lifecycle.setting("DISPATCH_LEASE_SECONDS")),
        )
        transaction.on_commit(lambda: lifecycle.hand_out([execution.pk]))
        if execution.flow_run_id:
            execution_changed.send(sender=Execution, execution=execution)
        if trigger in OPERATOR_TRIGGERS:
            audit.record(triggered_by, "trigger" if trigger != Trigger.RESTART else "restart", job,
                         f"execution #{execution.pk}" + (f", restart of #{restart_of.pk}" if restart_of else ""))
    log.info("triggered %s as execution %s (%s by %s)", job.name, execution.pk, trigger, triggered_by or "-")
    return execution


def trigger_by_name(name: str, **kwargs) -> Execution:
    return trigger(find_job(name), **kwargs)


def kill(execution: Execution, *, by: str) -> Execution:
    """Kill an execution. Pending ones end at once; a running one is stopped by its kind."""
    killed = _kill(execution, by)
    audit.record(by, "kill", execution)
    return killed


def _kill(execution: Execution, by: str) -> Execution:
    if execution.status in (*PENDING, Status.HELD):
        # Only while it is still pending: a worker may claim it this very instant, and then it is
        # stopped like any running execution, never ended behind its runner's back.
        with transaction.atomic():
            if Execution.objects.filter(pk=execution.pk, status__in=[*PENDING, Status.HELD]).update(kill_requested_by=by):
                execution.kill_requested_by = by
                lifecycle.finish(execution, Status.ERROR, error=f"killed by {by}", retry=False)
                return execution
        execution.refresh_from_db()
    if execution.status != Status.RUNNING:
        raise BatchError(ErrorCode.NOT_ACTIVE,
                         f"Execution {execution.pk} is {execution.status}; only active executions can be killed.")
    return kinds.of(execution.job).kill(execution, by)


def _replace(execution: Execution, by: str) -> None:
    """Inside the replacing trigger's transaction only the intent is recorded: a pending execution
    ends at once (a row change); a running one is asked to stop, and its kind sends any request
    after the commit."""
    if execution.status != Status.RUNNING:
        _kill(execution, by)
    else:
        kinds.of(execution.job).request_kill(execution, by)
    audit.record(by, "kill", execution)


def restart(execution: Execution, *, by: str) -> Execution:
    """A new execution of a failed one, with its parameters (SPEC §2: only ERROR restarts)."""
    if execution.status != Status.ERROR:
        raise BatchError(ErrorCode.NOT_RESTARTABLE,
                         f"Execution {execution.pk} is {execution.status}; only executions in ERROR can be restarted.")
    return trigger(
        execution.job, parameters=execution.parameters, trigger=Trigger.RESTART, triggered_by=by, restart_of=execution
    )


def system_check(job_type: JobType) -> CheckResult:
    """Run a custom job type's system check now; the answer is kept for the health page."""
    return kinds.KINDS[JobKind.CUSTOM].check(job_type)


def hold(execution: Execution, *, by: str) -> Execution:
    """LOADED or WAITING → HELD: not started until released."""
    with transaction.atomic():
        if not Execution.objects.filter(pk=execution.pk, status__in=PENDING).move(
                Status.HELD, waiting_reason=f"held by {by}"[:300], next_check_at=None):
            raise _not_allowed(execution, "held", "LOADED or WAITING")
        audit.record(by, "hold", execution)
    execution.refresh_from_db()
    return execution


def release(execution: Execution, *, by: str) -> Execution:
    """HELD → WAITING: it starts when its turn comes (handed out now, and held back again if it must wait)."""
    with transaction.atomic():
        if not Execution.objects.filter(pk=execution.pk, status=Status.HELD).move(
                Status.WAITING, waiting_reason=f"released by {by}"[:300], next_check_at=timezone.now()):
            raise _not_allowed(execution, "released", "HELD")
        audit.record(by, "release", execution)
        transaction.on_commit(lambda: lifecycle.hand_out([execution.pk]))
    execution.refresh_from_db()
    return execution


def skip(execution: Execution, *, by: str) -> Execution:
    """LOADED, WAITING or HELD → SKIPPED: it will not run; whatever waits for it goes on.

    The failed execution of a flow run's job is skipped in its run: the run counts the job as done
    and shows it SKIPPED ("skipped by <who>"), while the execution keeps its ERROR (SPEC §2a)."""
    if execution.status == Status.ERROR and execution.flow_run_id:
        return _skip_in_flow(execution, by)
    with transaction.atomic():
        if execution.status not in (*PENDING, Status.HELD) or not lifecycle.finish(
                execution, Status.SKIPPED, error=f"skipped by {by}", retry=False):
            raise _not_allowed(execution, "skipped", "LOADED, WAITING or HELD")
        audit.record(by, "skip", execution)
    execution.refresh_from_db()
    return execution


def _skip_in_flow(execution: Execution, by: str) -> Execution:
    with transaction.atomic():
        latest = not Execution.objects.filter(flow_run_id=execution.flow_run_id, job_id=execution.job_id,
                                              pk__gt=execution.pk).exists()
        if not latest or not Execution.objects.filter(pk=execution.pk, status=Status.ERROR, skipped_in_flow="").update(
                skipped_in_flow=f"skipped by {by}"[:150]):
            raise BatchError(ErrorCode.NOT_ALLOWED, f"Execution {execution.pk} is not the failure its flow run waits "
                                                    f"on (it was restarted, retried or skipped already).")
        execution.refresh_from_db()
        audit.record(by, "skip", execution, "skipped in its flow run")
        execution_changed.send(sender=Execution, execution=execution)
    return execution


def _not_allowed(execution: Execution, done: str, states: str) -> BatchError:
    status = Execution.objects.filter(pk=execution.pk).values_list("status", flat=True).first()
    return BatchError(ErrorCode.NOT_ALLOWED,
                      f"Execution {execution.pk} is {status}: only {states} executions can be {done}.")


def fetch_log(execution: Execution) -> Execution:
    """Fetch the external system's log of a custom-type execution now (NO_LOG for the others)."""
    return kinds.of(execution.job).fetch_log(execution)
