"""What the sheet planners share: the stored state read once, the plan being made (its rows
and problems), the names known so far, the writes planned, and the row helpers every sheet
uses to read its cells and record what a row does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import models
from django.utils import timezone

from apps.catalog.models import Application, Flow, JobDefinition, JobType, Process
from apps.scheduling.models import Schedule
from apps.spreadsheet import cells
from apps.spreadsheet.cells import CellError
from apps.spreadsheet.layout import Sheet
from apps.spreadsheet.planning.plan import CREATE, ERROR, UNCHANGED, UPDATE, Plan, RowPlan
from apps.spreadsheet.reader import Book, Problem, Row, Steps

PROGRESS_EVERY = 1000

INVALID = object()  # a cell that failed its conversion (its problem is recorded)
PredecessorLink = Process.predecessors.through

FlowKey = tuple[str, str]  # (application, flow)
ProcessKey = tuple[str, str, str]  # (application, flow, process)
Link = tuple[ProcessKey, ProcessKey]  # (process, the predecessor it waits for)

# The model fields whose own rules (patterns, lengths, validators) a planned object is checked
# against with clean_fields(), before its clean(); the converters already enforce types, ranges
# and choices. Cells that other cells depend on, or that no object holds, are checked alone
# against their field (SheetPlanner.check_field).
MODEL_RULES = {
    Application: ["name"],
    JobType: ["name", "url", "start_path", "status_path", "restart_path", "kill_path", "log_path", "check_path",
              "scope"],
    JobDefinition: ["name", "lock_group"],
}


@dataclass
class Stored:
    """Everything stored that rows are matched against, by name: a few queries whatever the size."""

    apps: dict[str, Application]
    app_names: dict[int, str]
    types: dict[str, JobType]
    flows: dict[FlowKey, Flow]
    flow_keys: dict[int, FlowKey]
    processes: dict[ProcessKey, Process]
    process_keys: dict[int, ProcessKey]
    jobs: dict[str, JobDefinition]
    job_names: dict[int, str]
    links: set[Link]
    schedules: list[Schedule]

    @classmethod
    def read(cls) -> Stored:
        apps = {app.name: app for app in Application.objects.all()}
        app_names = {app.pk: name for name, app in apps.items()}
        flows = {(app_names[flow.application_id], flow.name): flow for flow in Flow.objects.all()}
        flow_keys = {flow.pk: key for key, flow in flows.items()}
        processes = {(*flow_keys[p.flow_id], p.name): p for p in Process.objects.all()}
        process_keys = {p.pk: key for key, p in processes.items()}
        jobs = {job.name: job for job in JobDefinition.objects.select_related("custom_type")}
        _link_in_memory(flows.values(), processes.values(), jobs.values())
        links = PredecessorLink.objects.values_list("from_process_id", "to_process_id")
        return cls(
            apps=apps, app_names=app_names, types={job_type.name: job_type for job_type in JobType.objects.all()},
            flows=flows, flow_keys=flow_keys, processes=processes, process_keys=process_keys,
            jobs=jobs, job_names={job.pk: name for name, job in jobs.items()},
            links={(process_keys[a], process_keys[b]) for a, b in links},
            schedules=list(Schedule.objects.order_by("pk")),
        )


def _link_in_memory(flows, processes, jobs) -> None:
    """Each process points at its flow object and each job at its process object, so that the
    model rules that follow these relations (JobDefinition.clean) need no query per row."""
    flows_by_id = {flow.pk: flow for flow in flows}
    processes_by_id = {process.pk: process for process in processes}
    for process in processes:
        process.flow = flows_by_id[process.flow_id]
    for job in jobs:
        if job.process_id:
            job.process = processes_by_id[job.process_id]


@dataclass
class JobWrite:
    job: JobDefinition
    application: str
    process: ProcessKey | None
    fields: set[str]


@dataclass
class Changes:
    """What the plan will write; the applier writes it in this order."""

    new_apps: list[Application] = field(default_factory=list)
    changed_apps: dict[Application, set[str]] = field(default_factory=dict)
    new_types: list[JobType] = field(default_factory=list)
    changed_types: dict[JobType, set[str]] = field(default_factory=dict)
    new_flows: dict[FlowKey, Flow] = field(default_factory=dict)
    changed_flows: list[Flow] = field(default_factory=list)
    new_processes: dict[ProcessKey, Process] = field(default_factory=dict)
    jobs: list[JobWrite] = field(default_factory=list)
    links_added: list[Link] = field(default_factory=list)
    links_removed: list[Link] = field(default_factory=list)
    new_schedules: list[tuple[Schedule, tuple]] = field(default_factory=list)  # (schedule, its target)
    changed_schedules: list[tuple[Schedule, bool]] = field(default_factory=list)  # (schedule, was it active)


class PlanContext:
    """One workbook's planning: the sheet planners run in layout order, each adding to this."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.plan = Plan(sha256=book.sha256, warnings=list(book.warnings), problems=list(book.problems))
        self.now = timezone.now()
        self.stored = Stored.read()
        self.changes = Changes()
        # The names later sheets may refer to: stored ones, and those of the earlier sheets' rows.
        self.known_apps: set[str] = set(self.stored.apps)
        # Custom job types by name, stored or on the Job Types sheet: what a job's type refers to.
        self.known_types: dict[str, JobType] = dict(self.stored.types)
        self.known_jobs: dict[str, str] = {name: self.stored.app_names[job.application_id]
                                           for name, job in self.stored.jobs.items()}  # job -> its application


class SheetPlanner:
    """Plans one sheet's rows; subclasses name the sheet and plan a row in `plan_row`."""

    sheet: Sheet

    def __init__(self, context: PlanContext) -> None:
        self.context = context
        self.book, self.stored, self.changes = context.book, context.stored, context.changes
        self._present: dict[int, list] = {}
        self._exclude: dict[type, list[str]] = {}

    def steps(self) -> Steps[None]:
        """Every row in turn, with a progress event every PROGRESS_EVERY rows; then `finish`."""
        rows = self.rows()
        for index, row in enumerate(rows):
            if index % PROGRESS_EVERY == 0:
                yield (f"Checking {self.sheet.name}", index, len(rows))
            self.plan_row(row)
        self.finish()

    def plan_row(self, row: Row) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """What can only be planned once every row is read."""

    # -- reading rows and cells ---------------------------------------------------------------

    def rows(self) -> list[Row]:
        """The sheet's rows; none when its header is broken (a missing column would fail every row)."""
        if any(problem.sheet == self.sheet.name and problem.row == 1 for problem in self.book.problems):
            return []
        return self.book.rows(self.sheet)

    def has_column(self, key: str) -> bool:
        return self.book.has_column(self.sheet, key)

    def cell(self, plan: RowPlan, row: Row, key: str, convert: Callable, *args) -> object:
        """The converted cell, or INVALID with its problem recorded."""
        try:
            return convert(row.get(key), *args)
        except CellError as exc:
            self.error(plan, row, key, str(exc))
            return INVALID

    def required_text(self, plan: RowPlan, row: Row, key: str) -> str:
        value = self.cell(plan, row, key, cells.text)
        if value == "":
            self.error(plan, row, key, "Required.")
        return value if isinstance(value, str) else ""

    def values(self, plan: RowPlan, row: Row, converters: dict[str, tuple]) -> dict[str, object]:
        """The converted cells of the columns present in the sheet (absent columns: left alone)."""
        present = self._present.get(id(converters))
        if present is None:
            present = [(key, spec[0], spec[1:]) for key, spec in converters.items() if self.has_column(key)]
            self._present[id(converters)] = present
        values = {}
        for key, convert, args in present:
            value = self.cell(plan, row, key, convert, *args)
            if value is not INVALID:
                values[key] = value
        return values

    @staticmethod
    def cell_text(row: Row, key: str) -> str:
        """A cell as text for a row's key, whatever it holds (its problem is reported elsewhere)."""
        try:
            return cells.text(row.get(key))
        except CellError:
            return str(row.get(key))

    # -- recording what a row does --------------------------------------------------------------

    def row(self, row: Row, key: str) -> RowPlan:
        """The RowPlan of `row`, added to the plan: unchanged until decided otherwise."""
        plan = RowPlan(self.sheet.name, row.number, key)
        self.context.plan.rows.append(plan)
        return plan

    def error(self, plan: RowPlan, row: Row, key: str | None, message: str, value: object = INVALID) -> None:
        """A problem of this row: in column `key` (None: the row as a whole), naming the value."""
        column = self.sheet.header(key) if key else None
        if value is INVALID:
            value = row.get(key) if key else None
        self.context.plan.problems.append(Problem(self.sheet.name, row.number, column, value, message))
        plan.action = ERROR
        plan.errors.append(f"{column}: {message}" if column else message)

    def assign(self, plan: RowPlan, obj: models.Model, values: dict[str, object], creating: bool) -> set[str]:
        """Set `values` on `obj`; the fields that change (all of them for a new object)."""
        changed = set()
        for name, value in values.items():
            if creating or not _same(getattr(obj, name), value):
                setattr(obj, name, value)
                changed.add(name)
        if not creating and changed:
            plan.changes = [column.header for column in self.sheet.columns if column.key in changed]
        return changed

    def validate(self, plan: RowPlan, row: Row, obj: models.Model, **known: object) -> None:
        """The model's own rules, as full_clean() applies them: clean_fields() for the fields of
        MODEL_RULES, then clean(), given `known` (what the planner holds already, so that it needs
        no query). Each message goes to the column of its field, naming the value planned."""
        errors = _messages(obj.clean_fields, exclude=self._unchecked_fields(obj))
        for name, messages in _messages(obj.clean, **known).items():
            errors.setdefault(name, []).extend(messages)
        for name, messages in errors.items():
            key = name if any(c.key == name for c in self.sheet.columns) else None
            self.error(plan, row, key, " ".join(messages), getattr(obj, name, None))

    def _unchecked_fields(self, obj: models.Model) -> list[str]:
        exclude = self._exclude.get(type(obj))
        if exclude is None:
            checked = MODEL_RULES[type(obj)]
            exclude = self._exclude[type(obj)] = [f.name for f in obj._meta.fields if f.name not in checked]
        return exclude

    def check_field(self, plan: RowPlan, row: Row, key: str, model_field: models.Field, value: object) -> bool:
        """A cell against its model field's own validators (length, pattern), before any object
        holds it; False, with the problem recorded, if it fails them."""
        try:
            model_field.run_validators(value)
        except ValidationError as exc:
            self.error(plan, row, key, " ".join(exc.messages))
            return False
        return True

    @staticmethod
    def decide(plan: RowPlan, creating: bool, changed: set[str]) -> None:
        if plan.action != ERROR:
            plan.action = CREATE if creating else (UPDATE if changed else UNCHANGED)


def _messages(check: Callable[..., None], **arguments: object) -> dict[str, list[str]]:
    """The messages by field of a model check (clean_fields, clean); none if it passes."""
    try:
        check(**arguments)
    except ValidationError as exc:
        return exc.message_dict if hasattr(exc, "error_dict") else {NON_FIELD_ERRORS: exc.messages}
    return {}


def _same(stored: object, value: object) -> bool:
    """Stored text is compared as the reader sees a cell: without surrounding spaces."""
    if isinstance(stored, str) and isinstance(value, str):
        return stored.strip() == value
    if isinstance(value, models.Model):  # a reference planned as the object: the same when named the same
        return stored == str(value)
    return stored == value
