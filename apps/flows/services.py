"""Flow runs (SPEC §2a): start a run, move it as its executions end, and the operator's actions on
a run. Every entry point (admin, API, schedule, command) calls these.

A run is rows: its start creates one execution per job of the flow, all visible at once, WAITING
with the reason they wait (`awaits_flow`), or SKIPPED for a disabled job. The step that moves a
run (`step`) runs inside the transaction that ends, restarts or skips one of its executions (the
engine's `execution_ended` / `execution_changed` signals): it hands out what has just become ready
and stores the run's status. No loop scans runs; the dispatcher's leases stay the safety net for a
hand-out that is lost after commit.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Case, CharField, Count, Max, Q, Value, When
from django.utils import timezone

from apps import audit
from apps.catalog import params
from apps.catalog.models import Flow, JobDefinition, Process
from apps.engine import lifecycle
from apps.engine import services as engine
from apps.engine.models import ACTIVE, PENDING, Execution, Status, Trigger
from apps.errors import BatchError, ErrorCode
from apps.flows.models import FlowRun, RunStatus
from apps.flows.signals import flow_run_finished

log = logging.getLogger(__name__)

DONE = (Status.COMPLETED, Status.SKIPPED)


def start_run(flow: Flow, *, business_date: date | None = None, parameters: str = "",
              trigger: str = Trigger.MANUAL, triggered_by: str = "") -> FlowRun:
    """Start a run of `flow` for `business_date` (default: today in TIME_ZONE).

    FLOW_ALREADY_RUNNING when the flow has an open run for that date; INVALID_PARAMETERS for a
    malformed parameter string; NOT_ALLOWED for a flow without jobs."""
    business_date = business_date or timezone.localdate()
    jobs = list(JobDefinition.objects.filter(process__flow=flow).select_related("application", "process"))
    if not jobs:
        raise BatchError(ErrorCode.NOT_ALLOWED, f"Flow {flow} has no jobs: give its processes jobs first.")
    try:
        params.parse(parameters)
        merged = {job.pk: params.merge(job.parameters, parameters) for job in jobs}
    except ValidationError as exc:
        raise BatchError(ErrorCode.INVALID_PARAMETERS, exc.messages[0]) from None
    now = timezone.now()
    try:
        with transaction.atomic():
            run = FlowRun.objects.create(flow=flow, cycle=flow.cycle, business_date=business_date, trigger=trigger,
                                         triggered_by=triggered_by, parameters=parameters, started_at=now)
            Execution.objects.bulk_create([_execution(run, job, merged[job.pk], now) for job in jobs])
            step(run)
            if trigger != Trigger.SCHEDULE:
                audit.record(triggered_by, "start run", run, f"business date {business_date:%Y-%m-%d}")
    except IntegrityError:
        raise BatchError(ErrorCode.FLOW_ALREADY_RUNNING, f"Flow {flow} already has an open run for "
                                                         f"{business_date:%Y-%m-%d}.") from None
    log.info("started run %s of flow %s for %s (%s by %s)", run.pk, flow, business_date, trigger, triggered_by or "-")
    return run


def _execution(run: FlowRun, job: JobDefinition, parameters: str, now) -> Execution:
    """A job's execution in a new run: waiting for its flow, or SKIPPED when it is disabled."""
    fields = dict(job=job, application_id=job.application_id, flow_run=run, trigger=Trigger.FLOW,
                  triggered_by=run.triggered_by, parameters=parameters, lock_group=job.lock_group, created_at=now,
                  # Not exclusive: a forbid job's run waits in claim for any other run of it to end,
                  # so that a run's start is never refused by an execution outside it.
                  exclusive=False)
    if not (job.enabled and job.application.enabled):
        return Execution(status=Status.SKIPPED, error="disabled", finished_at=now, **fields)
    return Execution(status=Status.WAITING, awaits_flow=True, waiting_reason="waiting for its flow", **fields)


# --- the step -------------------------------------------------------------------------------


@dataclass
class Member:
    """A job's latest execution in its run, as the step reads it."""

    pk: int
    job_id: int
    job: str
    process_id: int
    sequence: int
    status: str
    awaits_flow: bool
    skipped_in_flow: str
    waiting_reason: str

    @property
    def done(self) -> bool:
        return self.status in DONE or bool(self.skipped_in_flow)

    @property
    def active(self) -> bool:
        """Running, or may start as soon as a worker takes it (held work counts: an operator holds it)."""
        return self.status in (Status.RUNNING, Status.HELD) or (self.status in PENDING and not self.awaits_flow)


# The same rules for the database, which counts them over a run's latest executions.
IS_DONE = Q(status__in=DONE) | ~Q(skipped_in_flow="")
IS_FAILED = Q(status=Status.ERROR, skipped_in_flow="")
IS_ACTIVE = Q(status__in=[Status.RUNNING, Status.HELD]) | Q(status__in=PENDING, awaits_flow=False)


def latest_executions(run: FlowRun | list[int], processes: set[int] | None = None):
    """Each job's latest execution in the run, or in each of several runs given by id (a retry or a
    restart adds a newer one); of the jobs of `processes` only, when given.

    The newest id per run and job, grouped: linear in the rows read whatever PostgreSQL knows of
    them. A NOT EXISTS (newer row of the job) was planned, on a run's fresh rows with no statistics
    yet, as a nested loop over the whole run for every row: a million rows visited per step of a
    1,000-job run."""
    runs = [run.pk] if isinstance(run, FlowRun) else run
    executions = Execution.objects.filter(flow_run_id__in=runs)
    if processes is not None:
        executions = executions.filter(job__process_id__in=processes)
    newest = executions.order_by().values("flow_run_id", "job_id").annotate(newest=Max("pk")).values("newest")
    return Execution.objects.filter(pk__in=newest).order_by()


def members(run: FlowRun, processes: set[int] | None = None) -> list[Member]:
    """The latest execution of each job of the run, or of the jobs of `processes` only."""
    return [Member(*row) for row in latest_executions(run, processes).values_list(
        "pk", "job_id", "job__name", "job__process_id", "job__sequence", "status", "awaits_flow", "skipped_in_flow",
        "waiting_reason")]


def flow_graph(flow_id: int) -> tuple[dict[int, set[int]], dict[int, str]]:
    """(process id → the ids of the processes it waits for, process id → name), in one query."""
    graph: dict[int, set[int]] = {}
    names: dict[int, str] = {}
    for process, name, predecessor in Process.objects.filter(flow_id=flow_id).order_by().values_list(
            "pk", "name", "predecessors"):
        names[process] = name
        if predecessor is not None:
            graph.setdefault(process, set()).add(predecessor)
    return graph, names


def step(run: FlowRun, changed: Execution | None = None) -> None:
    """Hand out what has just become ready, refresh why the rest waits, and store the run's status.

    Runs inside the transaction that changed one of the run's executions (`changed`); the run's row
    is locked first, so two executions of one run ending at once are stepped one after the other.
    A change can move only its own process and the processes after it: those are read (with what
    they wait for), not the whole run, and the run's status is counted by the database. Without
    `changed` (a start, a release, a hold) the whole run is read."""
    run = FlowRun.objects.select_for_update().select_related("flow").get(pk=run.pk)
    if not run.is_open:
        return
    graph, names = flow_graph(run.flow_id)
    process = changed.job.process_id if changed is not None else None
    moved = None if process is None else {process} | {after for after, before in graph.items() if process in before}
    read = None if moved is None else moved | {before for after in moved for before in graph.get(after, ())}
    rows = members(run, read)
    ready, reasons = _readiness(rows, graph, names, moved)
    if not run.held:
        _hand_out(run, [row for row in rows if row.pk in ready])
    _explain(rows, reasons, run)
    _store_status(run, any(row.active for row in rows))


def _readiness(rows: list[Member], graph: dict[int, set[int]], process_names: dict[int, str],
               moved: set[int] | None = None) -> tuple[set[int], dict[int, str]]:
    """(the awaiting executions that may start now, why each other awaiting one waits), for the
    executions of the `moved` processes (default: all); `rows` hold every process they wait for."""
    by_process: dict[int, list[Member]] = {}
    for row in rows:
        by_process.setdefault(row.process_id, []).append(row)
    process_done = {process: all(row.done for row in group) for process, group in by_process.items()}
    ready, reasons = set(), {}
    for row in rows:
        if not row.awaits_flow or (moved is not None and row.process_id not in moved):
            continue
        blocking = sorted(process_names.get(p, str(p)) for p in graph.get(row.process_id, ())
                          if not process_done.get(p, True))
        before = [other for other in by_process[row.process_id] if other.sequence < row.sequence and not other.done]
        if blocking:
            reasons[row.pk] = f"waiting for process {', '.join(blocking)}"
        elif before:
            names = ", ".join(sorted(other.job for other in before)[:5])
            reasons[row.pk] = f"waiting for {names} (before it in its process)"
        else:
            ready.add(row.pk)
    return ready, reasons


def _hand_out(run: FlowRun, ready: list[Member]) -> None:
    if not ready:
        return
    pks = [row.pk for row in ready]
    # A lease like a trigger's: the dispatcher hands one out again only if its start task was lost.
    lease = timezone.now() + timedelta(seconds=lifecycle.setting("DISPATCH_LEASE_SECONDS"))
    Execution.objects.filter(pk__in=pks, awaits_flow=True).update(awaits_flow=False, waiting_reason="",
                                                                  next_check_at=lease)
    for row in ready:
        row.awaits_flow = False
    startable = [row.pk for row in ready if row.status in PENDING]  # a HELD one waits for its release
    if startable:
        transaction.on_commit(lambda: lifecycle.hand_out(startable))


def _explain(rows: list[Member], reasons: dict[int, str], run: FlowRun) -> None:
    """Keep each awaiting execution's reason true, writing only the ones that changed."""
    if run.held:
        reasons = {pk: f"the run is held ({reason})" for pk, reason in reasons.items()}
    changed: dict[str, list[int]] = {}
    for row in rows:
        reason = reasons.get(row.pk)
        if reason and row.waiting_reason != reason[:300] and row.status == Status.WAITING:
            changed.setdefault(reason[:300], []).append(row.pk)
    if changed:  # one UPDATE, whatever the number of reasons
        Execution.objects.filter(pk__in=[pk for pks in changed.values() for pk in pks]).update(waiting_reason=Case(
            *(When(pk__in=pks, then=Value(reason)) for reason, pks in changed.items()), output_field=CharField()))


def _store_status(run: FlowRun, active: bool) -> None:
    """COMPLETED once every job is done; ERROR when a job failed and nothing more can run (the run
    stays open: a restart or a skip brings it back to RUNNING); RUNNING otherwise.

    While anything is active (most of a run's life) it is RUNNING: `active` when the step saw so
    in the rows it read, else one row of the run says so. The jobs are counted only when nothing
    is active. An active execution is always its job's latest: a retry or a restart follows only
    an ended one."""
    status, finished_at = RunStatus.RUNNING, None
    if not active and not Execution.objects.filter(IS_ACTIVE, flow_run_id=run.pk).exists():
        counts = latest_executions(run).aggregate(open=Count("pk", filter=~IS_DONE), failed=Count("pk", filter=IS_FAILED))
        if not counts["open"]:
            status, finished_at = RunStatus.COMPLETED, timezone.now()
        elif counts["failed"]:
            status = RunStatus.ERROR
        # else nothing is active and nothing failed: a held run, RUNNING
    if (status, finished_at) == (run.status, run.finished_at):
        return
    FlowRun.objects.filter(pk=run.pk).update(status=status, finished_at=finished_at)
    if status != RunStatus.RUNNING and status != run.status:
        log.info("run %s of flow %s is %s", run.pk, run.flow, status)
        run.status, run.finished_at = status, finished_at
        transaction.on_commit(lambda: flow_run_finished.send(sender=FlowRun, flow_run=run))


# --- the operator's actions on a run --------------------------------------------------------


def hold(run: FlowRun, *, by: str) -> FlowRun:
    """No new starts; running executions finish. Pending ones go back to waiting for the run."""
    with transaction.atomic():
        if not FlowRun.objects.filter(pk=run.pk, finished_at__isnull=True, held=False).update(held=True):
            raise _not_allowed(run, "held", "an open run that is not held")
        Execution.objects.filter(flow_run=run, status__in=PENDING, awaits_flow=False).update(
            awaits_flow=True, waiting_reason=f"the run is held by {by}"[:300], next_check_at=None)
        step(run)  # every waiting execution says the run is held
        audit.record(by, "hold", run)
    run.refresh_from_db()
    return run


def release(run: FlowRun, *, by: str) -> FlowRun:
    """Starts resume: whatever is ready is handed out."""
    with transaction.atomic():
        if not FlowRun.objects.filter(pk=run.pk, finished_at__isnull=True, held=True).update(held=False):
            raise _not_allowed(run, "released", "a held open run")
        audit.record(by, "release", run)
        step(run)
    run.refresh_from_db()
    return run


def kill(run: FlowRun, *, by: str) -> FlowRun:
    """Close the run in ERROR and kill every active execution (pending ones end at once)."""
    with transaction.atomic():
        if not FlowRun.objects.filter(pk=run.pk, finished_at__isnull=True).update(
                status=RunStatus.ERROR, finished_at=timezone.now(), held=False):
            raise _not_allowed(run, "killed", "an open run")
        active = list(Execution.objects.filter(flow_run=run, status__in=ACTIVE).select_related(
            "job__custom_type", "job__process__flow", "application"))
        refused = []
        for execution in active:
            try:
                engine.kill(execution, by=by)
            except BatchError as exc:  # a custom type without Kill: it runs on, and the record says so
                refused.append(f"#{execution.pk}: {exc.message}")
        audit.record(by, "kill", run, "; ".join(refused))
    run.refresh_from_db()
    transaction.on_commit(lambda: flow_run_finished.send(sender=FlowRun, flow_run=run))
    return run


def _not_allowed(run: FlowRun, done: str, what: str) -> BatchError:
    run.refresh_from_db()
    state = f"{run.status}{', held' if run.held else ''}{', closed' if not run.is_open else ''}"
    return BatchError(ErrorCode.NOT_ALLOWED, f"Run {run.pk} is {state}: only {what} can be {done}.")
