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

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from apps.catalog.validators import timezone_name
from apps.scheduling.models import Kind, Misfire, Schedule
from apps.spreadsheet import cells
from apps.spreadsheet.layout import SCHEDULES
from apps.spreadsheet.planning.context import INVALID, PlanContext, SheetPlanner
from apps.spreadsheet.planning.plan import CREATE, ERROR, UPDATE, RowPlan
from apps.spreadsheet.reader import Row

INACTIVE_REASON = "made inactive by a spreadsheet load"
KINDS = Kind.values
SCHEDULE_CELLS = {
    "cron": (cells.text,), "interval_seconds": (cells.whole_number, None, 1), "repeats": (cells.whole_number, 0),
    "misfire": (cells.choice, Misfire.values, Misfire.SKIP), "active": (cells.yes_no, True), "extra": (cells.text,),
}
# Schedule.clean() needs a target id; a job or flow this workbook creates has none yet.
_NOT_YET_SAVED = -1

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
        self._cleaned: dict[tuple, dict[str, list[str]]] = {}

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
        zone = self.cell(plan, row, "timezone", cells.text)
        if zone:
            try:
                timezone_name(zone)
            except ValidationError as exc:
                self.error(plan, row, "timezone", " ".join(exc.messages))
                zone = INVALID
        zone_name = zone if isinstance(zone, str) and zone else settings.TIME_ZONE
        values = self.values(plan, row, SCHEDULE_CELLS)
        for key in ("start_at", "end_at"):  # read on the wall clock of the row's time zone
            if self.has_column(key):
                moment = self.cell(plan, row, key, cells.moment, zone_name)
                if moment is not INVALID:
                    values[key] = moment
        values["kind"] = kind
        if self.has_column("timezone") and zone is not INVALID:
            values["timezone"] = zone_name
        if "cron" in values:
            values["cron"] = " ".join(values["cron"].split())
            if len(values["cron"]) > 200:
                self.error(plan, row, "cron", f"At most 200 characters (this has {len(values['cron'])}).")
        for key, wanted in (("cron", Kind.CRON), ("interval_seconds", Kind.INTERVAL)):
            if values.get(key) and kind in KINDS and kind != wanted:
                self.error(plan, row, key, f"{self.sheet.header(key)} is only for {wanted} schedules; "
                                           f"this one is {kind}.")
        return values

    def _plan_schedule(self, plan: RowPlan, row: Row, target: Target, existing: Schedule | None,
                       values: dict[str, object]) -> None:
        if existing is not None:
            kind = values.pop("kind")  # the identity matched already: kind, cron, interval, a once's start
            values.pop("cron", None), values.pop("interval_seconds", None)
            if kind == Kind.ONCE or (kind == Kind.INTERVAL and values.get("start_at") is None):
                values.pop("start_at", None)  # an interval without a Start keeps the anchor it was given
        schedule = existing or Schedule()
        was_active = existing.active if existing else False
        changed = self.assign(plan, schedule, values, creating=existing is None)
        if existing is None or changed:
            if target[0] == "job":
                stored = self.stored.jobs.get(target[1])
                schedule.job_id = stored.pk if stored else _NOT_YET_SAVED
            else:
                stored_flow = self.stored.flows.get(target[1:])
                schedule.flow_id = stored_flow.pk if stored_flow else _NOT_YET_SAVED
            for name, messages in self._clean_errors(schedule).items():
                key = {NON_FIELD_ERRORS: "kind"}.get(name, name)
                self.error(plan, row, key, " ".join(messages))
        self.decide(plan, existing is None, changed)
        if plan.action == CREATE:
            schedule.job_id = schedule.flow_id = None
            self.changes.new_schedules.append((schedule, target))
        elif plan.action == UPDATE:
            self._rearm(schedule, was_active)
            self.changes.changed_schedules.append(schedule)

    def _clean_errors(self, schedule: Schedule) -> dict[str, list[str]]:
        """Schedule.clean()'s verdict. It reads only the fields of this key, and parsing a cron
        expression is the costly part, so rows alike (the same cron in the same zone) are checked once."""
        key = (bool(schedule.job_id), bool(schedule.flow_id), schedule.kind, schedule.cron, schedule.timezone,
               schedule.interval_seconds, schedule.start_at, schedule.end_at, schedule.active,
               schedule.fire_count == 0)
        if key not in self._cleaned:
            try:
                schedule.clean()
                self._cleaned[key] = {}
            except ValidationError as exc:
                self._cleaned[key] = exc.message_dict
        return self._cleaned[key]

    def _rearm(self, schedule: Schedule, was_active: bool) -> None:
        """As services.reschedule (and resume, when made active again), without a save per row."""
        schedule.next_fire_at = None
        if schedule.active:
            if not was_active:
                schedule.inactive_reason = ""
                if schedule.repeats and schedule.fire_count >= schedule.repeats:
                    schedule.fire_count = 0  # made active again: its repeats start afresh, as resume() does
            schedule.schedule_from(self.context.now)
        elif was_active:
            schedule.inactive_reason = INACTIVE_REASON


def _identity(kind: str, cron: str, interval: int | None, start: datetime | None) -> tuple:
    """What tells schedules of one target and kind apart: see the module docstring."""
    if kind == Kind.CRON:
        return (kind, " ".join((cron or "").split()))
    if kind == Kind.INTERVAL:
        return (kind, interval)
    return (kind, start)


def _describe(identity: tuple) -> str:
    value = identity[1]
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)
