"""The engine's operations on executions: trigger, kill, restart. Every entry point (admin, API,
command, schedule, flow) calls these; none re-implements them. They build on the life of a row
(apps/engine/lifecycle.py) and on the kinds (apps/engine/kinds)."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.catalog import params
from apps.catalog.models import Concurrency, JobDefinition, JobKind, JobType
from apps.connectors.client import CheckResult
from apps.engine import kinds, lifecycle
from apps.engine.models import PENDING, Execution, Status, Trigger
from apps.errors import BatchError, ErrorCode

log = logging.getLogger(__name__)


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
            for running in Execution.objects.active().filter(job=job):
                kill(running, by=f"a replacing {trigger} trigger")
        execution = lifecycle.create(
            job,
            parameters=merged,
            trigger=trigger,
            triggered_by=triggered_by,
            restart_of=restart_of,
            next_check_at=timezone.now() + timedelta(seconds=lifecycle.setting("DISPATCH_LEASE_SECONDS")),
        )
        transaction.on_commit(lambda: lifecycle.hand_out([execution.pk]))
    log.info("triggered %s as execution %s (%s by %s)", job.name, execution.pk, trigger, triggered_by or "-")
    return execution


def trigger_by_name(name: str, **kwargs) -> Execution:
    return trigger(find_job(name), **kwargs)


def kill(execution: Execution, *, by: str) -> Execution:
    """Kill an execution. Pending ones end at once; a running one is stopped by its kind."""
    if execution.status in PENDING or execution.status == Status.HELD:
        Execution.objects.filter(pk=execution.pk).update(kill_requested_by=by)
        execution.kill_requested_by = by
        if lifecycle.finish(execution, Status.ERROR, error=f"killed by {by}", retry=False):
            return execution
        execution.refresh_from_db()
    if execution.status != Status.RUNNING:
        raise BatchError(ErrorCode.NOT_ACTIVE,
                         f"Execution {execution.pk} is {execution.status}; only active executions can be killed.")
    return kinds.of(execution.job).kill(execution, by)


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


def fetch_log(execution: Execution) -> Execution:
    """Fetch the external system's log of a custom-type execution now (NO_LOG for the others)."""
    return kinds.of(execution.job).fetch_log(execution)
