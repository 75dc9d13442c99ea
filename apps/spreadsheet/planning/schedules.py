"""The Schedules sheet.

Schedules have no name: a row matches a stored schedule of the same target and kind by its
defining value — the cron expression, the interval, or a once schedule's start. Rows with
equal keys match stored schedules with that key in id order (the export writes them in that
order). The other cells (end, repeats, time zone, misfire, active, extra, an interval's or
cron's start) update the match. Changing a cron expression therefore adds a schedule beside
the old one; nothing is deleted.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from apps.scheduling.models import Kind, Misfire, Schedule, default_timezone
from apps.scheduling.timing import tidy_cron
from apps.spreadsheet import cells
from apps.spreadsheet.layout import SCHEDULES
from apps.spreadsheet.planning.context import INVALID, PlanContext, SheetPlanner
from apps.spreadsheet.planning.plan import CREATE, ERROR, UPDATE, RowPlan
from apps.spreadsheet.reader import Row

KINDS = Kind.values
SCHEDULE_CELLS = {
    "cron": (cells.text,), "interval_seconds": (cells.whole_number, None, 1), "repeats": (cells.whole_number, 0),
    "misfire": (cells.choice, Misfire.values, Misfire.SKIP), "active": (cells.yes_no, True), "extra": (cells.text,),
}
# Schedule.clean() needs a target id; a job or flow this workbook creates has none yet.
_NOT_YET_SAVED = -1
# The model fields cells are checked against before the schedule holds them: the time zone
# reads the row's dates, and the cron expression is part of how the row is matched.
TIMEZONE, CRON = Schedule._meta.get_field("timezone"), Schedule._meta.get_field("cron")

Target = tuple  # ("job", job name) or ("flow", application, flow name)


class SchedulesPlanner(SheetPlanner):
    sheet = SCHEDULES

    def __init__(self, context: PlanContext) -> None:
        super().__init__(context)
        self.stored_by_key: dict[tuple, list[Schedule]] = defaultdict(list)
        for schedule in self.stored.schedules:
            identity = _identity(schedule.kind, schedule.cron, schedule.interval_seconds, schedule.start_at)
            self.stored_by_key[(self._target_of(schedule), identity)].append(schedule)
        self.matched: Counter = Counter()  # key -> rows matched so far

    def plan_row(self, row: Row) -> None:
        plan = self.row(row, "")
        target = self._target(plan, row)
        values = self._values(plan, row)
        if plan.action == ERROR or target is None:
            return
        key = (target, _identity(values["kind"], values.get("cron", ""), values.get("interval_seconds"),
                                 values.get("start_at")))
        plan.key = f"{target[-1]}: {values['kind']} {_describe(key[1])}"
        candidates = self.stored_by_key.get(key, [])
        existing = candidates[self.matched[key]] if self.matched[key] < len(candidates) else None
        self.matched[key] += 1
        self._plan_schedule(plan, row, target, existing, values)

    def _target_of(self, schedule: Schedule) -> Target:
        if schedule.job_id:
            return ("job", self.stored.job_names[schedule.job_id])
        return ("flow", *self.stored.flow_keys[schedule.flow_id])

    def _target(self, plan: RowPlan, row: Row) -> Target | None:
        job, flow, app = (self.cell(plan, row, key, cells.text) for key in ("job", "flow", "application"))
        if INVALID in (job, flow, app):
            return None
        if job and flow:
            self.error(plan, row, "flow", "Give a Job or a Flow, not both.")
        elif job:
            return self._job_target(plan, row, job, app)
        elif flow:
            return self._flow_target(plan, row, flow, app)
        else:
            self.error(plan, row, "job" if self.has_column("job") else "flow", "Required: a Job or a Flow.")
        return None

    def _job_target(self, plan: RowPlan, row: Row, job: str, app: str) -> Target | None:
        known_jobs = self.context.known_jobs
        if job not in known_jobs:
            self.error(plan, row, "job", f"Unknown job {job}: add it to the Jobs sheet or create it first.")
        elif app and known_jobs[job] != app:
            self.error(plan, row, "application", f"Job {job} belongs to application {known_jobs[job]}.")
        else:
            return ("job", job)
        return None

    def _flow_target(self, plan: RowPlan, row: Row, flow: str, app: str) -> Target | None:
        if not app:
            self.error(plan, row, "application", f"A schedule of flow {flow} needs the flow's application.")
        elif (app, flow) not in self.stored.flows and (app, flow) not in self.changes.new_flows:
            self.error(plan, row, "flow", f"Application {app} has no flow {flow}.")
        else:
            return ("flow", app, flow)
        return None

    def _values(self, plan: RowPlan, row: Row) -> dict[str, object]:
        kind = self.cell(plan, row, "kind", cells.choice, KINDS, "")
        if kind == "":
            self.error(plan, row, "kind", f"Required: one of {', '.join(KINDS)}.")
        zone = self._zone(plan, row)
        values = self.values(plan, row, SCHEDULE_CELLS)
        values.update(self._moments(plan, row, zone if zone is not INVALID else default_timezone()))
        values["kind"] = kind
        if self.has_column("timezone") and zone is not INVALID:
            values["timezone"] = zone
        if "cron" in values:
            values["cron"] = tidy_cron(values["cron"])
            self.check_field(plan, row, "cron", CRON, values["cron"])
        for key, wanted in (("cron", Kind.CRON), ("interval_seconds", Kind.INTERVAL)):
            if values.get(key) and kind in KINDS and kind != wanted:
                self.error(plan, row, key, f"{self.sheet.header(key)} is only for {wanted} schedules; "
                                           f"this one is {kind}.")
        return values

    def _zone(self, plan: RowPlan, row: Row) -> str | object:
        """The row's time zone (the field's default for an empty cell), or INVALID."""
        zone = self.cell(plan, row, "timezone", cells.text)
        if zone == "":
            return default_timezone()
        if zone is INVALID or not self.check_field(plan, row, "timezone", TIMEZONE, zone):
            return INVALID
        return zone

    def _moments(self, plan: RowPlan, row: Row, zone: str) -> dict[str, object]:
        """Start and End, read on the wall clock of the row's time zone."""
        moments = {}
        for key in ("start_at", "end_at"):
            if self.has_column(key):
                moment = self.cell(plan, row, key, cells.moment, zone)
                if moment is not INVALID:
                    moments[key] = moment
        return moments

    def _plan_schedule(self, plan: RowPlan, row: Row, target: Target, existing: Schedule | None,
                       values: dict[str, object]) -> None:
        if existing is not None:
            kind = values.pop("kind")  # the identity matched already: kind, cron, interval, a once's start
            values.pop("cron", None), values.pop("interval_seconds", None)
            if kind == Kind.ONCE or (kind == Kind.INTERVAL and values.get("start_at") is None):
                values.pop("start_at", None)  # an interval without a Start keeps the anchor it was given
        schedule = existing or Schedule()
        was_active = existing.active if existing else True  # a new inactive row: made inactive by this load
        changed = self.assign(plan, schedule, values, creating=existing is None)
        if existing is None or changed:
            self._clean(plan, row, schedule, target)
        self.decide(plan, existing is None, changed)
        if plan.action == CREATE:
            self.changes.new_schedules.append((schedule, target))
        elif plan.action == UPDATE:
            self.changes.changed_schedules.append((schedule, was_active))

    def _clean(self, plan: RowPlan, row: Row, schedule: Schedule, target: Target) -> None:
        """Schedule.clean()'s verdict, each message in its column and naming the cell's value."""
        job_id, flow_id = schedule.job_id, schedule.flow_id
        if target[0] == "job":
            stored_job = self.stored.jobs.get(target[1])
            schedule.job_id = stored_job.pk if stored_job else _NOT_YET_SAVED
        else:
            stored_flow = self.stored.flows.get(target[1:])
            schedule.flow_id = stored_flow.pk if stored_flow else _NOT_YET_SAVED
        try:
            schedule.clean()
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                self.error(plan, row, {NON_FIELD_ERRORS: "kind"}.get(name, name), " ".join(messages))
        schedule.job_id, schedule.flow_id = job_id, flow_id  # a new schedule gets its target when applied


def _identity(kind: str, cron: str, interval: int | None, start: datetime | None) -> tuple:
    """What tells schedules of one target and kind apart: see the module docstring."""
    if kind == Kind.CRON:
        return (kind, tidy_cron(cron or ""))
    if kind == Kind.INTERVAL:
        return (kind, interval)
    return (kind, start)


def _describe(identity: tuple) -> str:
    value = identity[1]
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)
