"""What Batch Monitoring shows for one business date: each section read by one bounded query (no
query per row), and the timeline laid out for an SVG drawing that spans the day's activity.

A day's executions are those created on that date (in TIME_ZONE) and those of flow runs for that
business date. Grouping on the timeline: application, then flow and process for jobs in a flow.
A tile per flow shows its run for the date (`flow_tiles`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from itertools import groupby

from django.db.models import Avg, Count, Exists, F, OuterRef, Q, QuerySet
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.catalog.models import Flow
from apps.console.operations import offered
from apps.engine.models import Execution, Status
from apps.flows.models import FlowRun, RunStatus
from apps.flows.services import IS_DONE, latest_executions

LIMIT = 100  # rows per section; the page says when there are more
TIMELINE_LIMIT = 600  # bars drawn
ACTIVITY = 40
TIMELINE_WIDTH, LANE_HEIGHT, LABEL_WIDTH, AXIS_HEIGHT = 1000, 16, 230, 22
TICK_STEPS = [5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200]  # seconds
TIMELINE_FIELDS = ("id", "status", "started_at", "finished_at", "flow_run", "job__name",
                   "job__threshold_runtime_seconds", "job__average_runtime_seconds", "job__process__name",
                   "job__process__flow__name", "application__name")  # flow_run: a run's own queryset sets it


def day_bounds(day: date) -> tuple[datetime, datetime]:
    start = timezone.make_aware(datetime.combine(day, time.min))
    return start, timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))


@dataclass
class Day:
    """A business date (and a cycle, or all) as the page shows it."""

    date: date
    cycle: str = ""
    runs: list[int] = field(init=False)

    def __post_init__(self) -> None:
        # The runs' ids as a list, not a subquery: PostgreSQL then ORs two index scans (created_at,
        # flow_run) instead of reading the whole history. A date has a handful of runs.
        self.runs = list(FlowRun.objects.filter(business_date=self.date).values_list("pk", flat=True)[:1000])

    def executions(self) -> QuerySet:
        """Its executions: created that day (TIME_ZONE), or of a flow run for that date."""
        start, end = day_bounds(self.date)
        day_of = Q(created_at__gte=start, created_at__lt=end)
        executions = Execution.objects.filter(day_of | Q(flow_run_id__in=self.runs) if self.runs else day_of)
        if self.cycle:
            executions = executions.filter(Q(flow_run__cycle=self.cycle)
                                           | Q(flow_run__isnull=True, job__process__flow__cycle=self.cycle))
        return executions


def related(queryset: QuerySet) -> QuerySet:
    # Never the logs (up to BATCHDESK_LOG_MAX_BYTES each): no section shows them.
    return (queryset.select_related("job", "application", "agent", "job__process__flow")
            .defer("log", "parameters", "execution_info"))


@dataclass
class Row:
    """An execution as a section lists it, with the buttons the user may press on it."""

    execution: Execution
    buttons: list  # (Operation, the URL it posts to)
    elapsed: float | None = None
    usual: float | None = None
    long_running: bool = False

    @property
    def progress(self) -> float | None:
        """Elapsed as a share of the usual duration, in percent, capped for drawing."""
        if self.elapsed is None or not self.usual:
            return None
        return min(self.elapsed / self.usual * 100, 200.0)


def rows(executions, user, now: datetime | None = None) -> list[Row]:
    now = now or timezone.now()
    operate = reverse("admin:engine_execution_operate", args=[0, "op"]).replace("/0/operate/op/", "/{}/operate/{}/")
    made = []
    for execution in executions:
        elapsed = (now - execution.started_at).total_seconds() if execution.started_at else None
        buttons = [(op, operate.format(execution.pk, op.name)) for op in offered(execution, user)]
        made.append(Row(execution, buttons, elapsed, execution.job.average_runtime_seconds, execution.long_running))
    return made


def counts(day: Day) -> list[tuple[str, int]]:
    found = dict(day.executions().order_by().values_list("status").annotate(n=Count("id")))
    return [(status, found.get(status, 0)) for status in Status.values]


def running(day: Day, user) -> list[Row]:
    # What runs now runs now, whatever day it was created: the date chooses only its history.
    return rows(related(Execution.objects.filter(status=Status.RUNNING)).order_by("started_at")[:LIMIT], user)


def failures(day: Day, user) -> list[Row]:
    """The final failure of each job that needs a hand: ended in ERROR with no retry after it, not
    restarted, not counted done by its flow; one per job (its latest), with its attempt count."""
    later = Execution.objects.filter(Q(retry_of=OuterRef("pk")) | Q(restart_of=OuterRef("pk")))
    failed = (related(day.executions().filter(status=Status.ERROR, skipped_in_flow="").exclude(Exists(later)))
              .order_by("job_id", "-finished_at", "-id")[:LIMIT * 3])
    latest = [next(group) for _, group in groupby(failed, key=lambda e: e.job_id)]
    latest.sort(key=lambda e: e.finished_at or e.created_at, reverse=True)
    return rows(latest[:LIMIT], user)


def waiting(day: Day, user) -> list[Row]:
    return rows(related(day.executions().filter(status__in=[Status.LOADED, Status.WAITING]))
                .order_by("created_at", "id")[:LIMIT], user)


def held(day: Day, user) -> list[Row]:
    return rows(related(day.executions().filter(status=Status.HELD)).order_by("created_at", "id")[:LIMIT], user)


@dataclass
class Event:
    at: datetime
    kind: str  # "execution" or "operator"
    text: str
    execution: Execution | None = None
    entry: AuditEntry | None = None


def activity(day: Day) -> list[Event]:
    """What happened last: executions that ended, and what operators did (the audit trail)."""
    start, end = day_bounds(day.date)
    ended = related(day.executions().filter(finished_at__isnull=False)).order_by("-finished_at")[:ACTIVITY]
    done = AuditEntry.objects.filter(at__gte=start, at__lt=end).order_by("-at", "-id")[:ACTIVITY]
    events = [Event(e.finished_at, "execution", e.status, execution=e) for e in ended]
    events += [Event(a.at, "operator", a.action, entry=a) for a in done]
    return sorted(events, key=lambda event: event.at, reverse=True)[:ACTIVITY]


# --- the timeline --------------------------------------------------------------------------


@dataclass
class Lane:
    key: str
    label: str
    group: str
    y: float = 0
    bars: list[dict] = field(default_factory=list)
    critical: bool = False  # on the chain of jobs that set its run's end


def lane_group(execution: Execution) -> str:
    """The heading a job's lane sits under: application, flow / process when the job has them."""
    process = execution.job.process
    if process is None:
        return execution.application.name
    return f"{execution.application.name} · {process.flow.name} · {process.name}"


def timeline(day: Day, now: datetime | None = None) -> dict:
    """The day's executions that started, as bars on one lane per job, grouped; the axis spans
    the first start to the last end (or now, while something runs), not a fixed 24 hours."""
    return timeline_of(day.executions(), now)


def timeline_of(executions: QuerySet, now: datetime | None = None, critical: set[int] = frozenset()) -> dict:
    """`executions` that started, drawn as `timeline` says; the lanes of the jobs in `critical` marked."""
    now = now or timezone.now()
    # The latest TIMELINE_LIMIT of a busy day: what an operator looks at is what happened last;
    # of each, only what a bar shows (its lane, group, times and whether it runs long).
    started = list(executions.filter(started_at__isnull=False).select_related("job__process__flow", "application")
                   .only(*TIMELINE_FIELDS).order_by("-started_at", "-id")[:TIMELINE_LIMIT])[::-1]
    if not started:
        return {"lanes": [], "bars": 0}
    t0 = min(e.started_at for e in started)
    t1 = max((e.finished_at or now) for e in started)
    span = max((t1 - t0).total_seconds(), 60.0)
    t0, t1 = t0 - timedelta(seconds=span * 0.02), t1 + timedelta(seconds=span * 0.02)
    lanes: dict[str, Lane] = {}
    # Each bar's link and tooltip made here, once: a reverse() and two date filters per bar in the
    # template cost more than the query for a busy day.
    link = reverse("admin:engine_execution_change", args=[0]).replace("/0/", "/{}/")
    for execution in started:
        key = f"job-{execution.job_id}"
        lane = lanes.setdefault(key, Lane(key, execution.job.name, lane_group(execution),
                                          critical=execution.job_id in critical))
        ended = f"{timezone.localtime(execution.finished_at):%H:%M:%S}" if execution.finished_at else "now"
        lane.bars.append({"id": execution.pk, "status": execution.status, "href": link.format(execution.pk),
                          "title": f"#{execution.pk} {execution.job.name} {execution.status} "
                                   f"{timezone.localtime(execution.started_at):%H:%M:%S}–{ended}",
                          "start": execution.started_at.timestamp(),
                          "end": execution.finished_at.timestamp() if execution.finished_at else "",
                          "long_running": execution.long_running})
    ordered = sorted(lanes.values(), key=lambda lane: (lane.group, lane.label))
    groups, y = [], AXIS_HEIGHT
    for group, members in groupby(ordered, key=lambda lane: lane.group):
        members = list(members)
        groups.append({"name": group, "y": y})
        y += LANE_HEIGHT
        for lane in members:
            lane.y = y
            y += LANE_HEIGHT
    scale = TIMELINE_WIDTH / (t1 - t0).total_seconds()
    for lane in ordered:
        for bar in lane.bars:
            bar["x"] = round((bar["start"] - t0.timestamp()) * scale, 2)
            end = bar["end"] or now.timestamp()
            bar["width"] = round(max((end - bar["start"]) * scale, 2), 2)
    return {"lanes": ordered, "groups": groups, "bars": len(started), "truncated": len(started) >= TIMELINE_LIMIT,
            "t0": t0.timestamp(), "t1": t1.timestamp(), "now": now.timestamp(), "ticks": ticks(t0, t1, scale),
            "width": TIMELINE_WIDTH, "label_width": LABEL_WIDTH, "height": y + 4, "bar_height": LANE_HEIGHT - 5,
            "axis_height": AXIS_HEIGHT}


def ticks(t0: datetime, t1: datetime, scale: float) -> list[dict]:
    """Round local times at a step that gives about 6 to 12 ticks over the span."""
    span = (t1 - t0).total_seconds()
    step = next((s for s in TICK_STEPS if span / s <= 12), TICK_STEPS[-1])
    local0 = timezone.localtime(t0)
    midnight = local0.replace(hour=0, minute=0, second=0, microsecond=0)
    first = midnight + timedelta(seconds=((local0 - midnight).total_seconds() // step + 1) * step)
    marks, moment = [], first
    while moment < t1:
        marks.append({"x": round((moment - t0).total_seconds() * scale, 2),
                      "label": moment.strftime("%H:%M" if step >= 60 else "%H:%M:%S")})
        moment += timedelta(seconds=step)
    return marks


def updates(day: Day, open_ids: list[int], since: datetime, now: datetime | None = None) -> list[dict]:
    """For the live refresh: the bars of executions that were open at the last refresh, and of any
    that started since; nothing that had already finished is read again."""
    now = now or timezone.now()
    changed = (day.executions().filter(started_at__isnull=False)
               .filter(Q(pk__in=open_ids[:TIMELINE_LIMIT]) | Q(started_at__gte=since))
               .select_related("job").defer("log", "parameters", "execution_info")[:TIMELINE_LIMIT])
    return [{"id": e.pk, "lane": f"job-{e.job_id}", "status": e.status, "start": e.started_at.timestamp(),
             "end": e.finished_at.timestamp() if e.finished_at else None, "long_running": e.long_running,
             "title": f"#{e.pk} {e.job.name} {e.status}"} for e in changed]


# --- flow tiles ------------------------------------------------------------------------------


@dataclass
class Tile:
    """A flow and its run for the business date, as a tile on the page."""

    flow: object
    run: FlowRun | None
    done: int = 0
    total: int = 0
    expected_end: datetime | None = None

    @property
    def state(self) -> str:
        if self.run is None:
            return "not started"
        if self.run.held and self.run.is_open:
            return "held"
        return {RunStatus.RUNNING: "running", RunStatus.COMPLETED: "completed", RunStatus.ERROR: "error"}[self.run.status]

    @property
    def percent(self) -> int:
        return round(100 * self.done / self.total) if self.total else 0


def flow_tiles(day: Day, limit: int = 60) -> list[Tile]:
    """A tile per flow (of the chosen cycle) with its latest run for the date: four queries whatever
    the number of flows and jobs (flows, runs, each run's done/total, each flow's usual duration)."""
    flows = Flow.objects.select_related("application").order_by("application__name", "name")
    if day.cycle:
        flows = flows.filter(cycle=day.cycle)
    flows = list(flows[:limit])
    runs: dict[int, FlowRun] = {}
    for run in FlowRun.objects.filter(business_date=day.date, flow__in=flows).order_by("created_at", "id"):
        runs[run.flow_id] = run  # the latest run of the date wins
    figures = _done_and_total([run.pk for run in runs.values()])
    usual = dict(FlowRun.objects.filter(flow__in=flows, status=RunStatus.COMPLETED, started_at__isnull=False)
                 .values("flow").annotate(usual=Avg(F("finished_at") - F("started_at"))).values_list("flow", "usual"))
    tiles = []
    for flow in flows:
        run = runs.get(flow.pk)
        tile = Tile(flow, run, *figures.get(run.pk if run else None, (0, 0)))
        if run and run.is_open and run.started_at and usual.get(flow.pk):
            tile.expected_end = run.started_at + usual[flow.pk]
        tiles.append(tile)
    return tiles


def _done_and_total(run_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per run: (jobs done, jobs), counting each job's latest execution in the run."""
    if not run_ids:
        return {}
    rows = (latest_executions(run_ids).values("flow_run_id")
            .annotate(done=Count("id", filter=IS_DONE), total=Count("id")))
    return {row["flow_run_id"]: (row["done"], row["total"]) for row in rows}
