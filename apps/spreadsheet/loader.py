"""Loading a batch schedule workbook (SPEC §6): read → plan → apply.

`dry_run()` reads and plans: every row becomes create / update / unchanged / error, with
the problems (sheet, row, column, value) and warnings, and nothing is written. `load()` plans
and, when the plan has no problem, applies it in the same transaction: all or nothing.
The admin page, `manage.py load_schedule` and the tests all call these two.

Rules an operator can rely on:
- Rows are matched to what is stored by name: applications, job types and jobs (job names
  are unique installation-wide), flows by (application, name), processes by (flow, name),
  dependencies by (flow, process, predecessor). Schedules: see `_Planner._schedules`.
- A column absent from a sheet leaves that field alone; a present but empty cell means the
  field's default (Enabled: Yes, Retries: 0, ...). A row whose values equal what is stored
  is "unchanged" and writes nothing, so loading the same workbook twice writes nothing.
- Nothing is deleted: rows missing from the workbook leave their objects alone. A
  Dependencies row with Enabled = No removes that dependency.
- Credentials never travel in a workbook. An existing job type keeps its own; a new one uses
  the installation's OAUTH_* defaults, unless a stored job type has the same base URL and
  credentials of its own: the new type then shares that client (same external system), and
  its row says so.

Speed: everything stored is read once into dicts at the start (a handful of queries
whatever the row count), and written with bulk_create/bulk_update.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from apps.catalog import params
from apps.catalog.models import Application, Concurrency, Flow, JobDefinition, JobKind, JobType, Process
from apps.catalog.validators import timezone_name
from apps.scheduling.models import Kind, Misfire, Schedule
from apps.spreadsheet import cells
from apps.spreadsheet.cells import CellError
from apps.spreadsheet.layout import APPLICATIONS, DEPENDENCIES, JOB_TYPES, JOBS, SCHEDULES, SHEETS, Sheet
from apps.spreadsheet.reader import Book, Problem, Progress, Row, Steps, drive, read_steps

CREATE, UPDATE, UNCHANGED, ERROR = "create", "update", "unchanged", "error"
ACTIONS = (CREATE, UPDATE, UNCHANGED, ERROR)
# Flows and processes have no sheet of their own: the Jobs rows that name them create them.
FLOWS, PROCESSES = "Flows", "Processes"
PROGRESS_EVERY = 1000
INACTIVE_REASON = "made inactive by a spreadsheet load"
BATCH = 500

_INVALID = object()  # a cell that failed its conversion (its problem is recorded)
# Schedule.clean() needs a target id; a job or flow this workbook creates has none yet.
_NOT_YET_SAVED = -1
PredecessorLink = Process.predecessors.through

ProcessKey = tuple[str, str, str]  # (application, flow, process)
FlowKey = tuple[str, str]

# How each optional cell is read: column key -> (converter, its arguments).
APPLICATION_CELLS = {"description": (cells.text,), "throttle_limit": (cells.whole_number, 0),
                     "enabled": (cells.yes_no, True)}
JOB_TYPE_CELLS = {**{key: (cells.text,) for key in ("description", "url", "start_path", "status_path", "restart_path",
                                                    "kill_path", "log_path", "check_path", "scope")},
                  "poll_interval_seconds": (cells.whole_number, 5, 1)}
JOB_CELLS = {
    "sequence": (cells.whole_number, 0), "job_type": (cells.text,), "command": (cells.text,),
    "parameters": (cells.text,), "description": (cells.text,), "enabled": (cells.yes_no, True),
    "max_retries": (cells.whole_number, 0), "timeout_seconds": (cells.whole_number, 0),
    "concurrency": (cells.choice, Concurrency.values, Concurrency.FORBID), "lock_group": (cells.text,),
    "skip_on_error": (cells.yes_no, False), "threshold_runtime_seconds": (cells.whole_number, 0),
}
SCHEDULE_CELLS = {
    "cron": (cells.text,), "interval_seconds": (cells.whole_number, None, 1), "repeats": (cells.whole_number, 0),
    "misfire": (cells.choice, Misfire.values, Misfire.SKIP), "active": (cells.yes_no, True), "extra": (cells.text,),
}
KINDS = Kind.values
# The model fields whose own rules (patterns, lengths) are checked with clean_fields(); the
# converters above already enforce types, ranges and choices, and parameters are parsed once.
MODEL_RULES = {
    Application: ["name"],
    JobType: ["name", "url", "start_path", "status_path", "restart_path", "kill_path", "log_path", "check_path",
              "scope"],
    JobDefinition: ["name", "job_type", "lock_group"],
}


class PlanChanged(Exception):
    """What would be applied now differs from the dry run the operator confirmed."""


@dataclass
class RowPlan:
    sheet: str
    row: int | None
    key: str
    action: str = UNCHANGED
    changes: list[str] = field(default_factory=list)
    note: str = ""
    errors: list[str] = field(default_factory=list)

    @property
    def location(self) -> str:
        """Where the row is: flows and processes are named on a row of the Jobs sheet."""
        if self.row is None:
            return ""
        return f"Jobs row {self.row}" if self.sheet in (FLOWS, PROCESSES) else f"row {self.row}"


@dataclass
class Plan:
    sha256: str
    warnings: list[str]
    problems: list[Problem]
    rows: list[RowPlan] = field(default_factory=list)
    applied: bool = False
    _planner: "_Planner | None" = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def writes(self) -> int:
        return sum(row.action in (CREATE, UPDATE) for row in self.rows)

    def counts(self) -> dict[str, dict[str, int]]:
        """{sheet: {action: rows}} in layout order, flows and processes after Jobs."""
        order = [s.name for s in SHEETS[:3]] + [FLOWS, PROCESSES] + [s.name for s in SHEETS[3:]]
        counted: dict[str, Counter] = defaultdict(Counter)
        for row in self.rows:
            counted[row.sheet][row.action] += 1
        return {sheet: {action: counted[sheet][action] for action in ACTIONS} for sheet in order if sheet in counted}

    def totals(self) -> dict[str, int]:
        return dict(Counter(row.action for row in self.rows))

    def fingerprint(self) -> str:
        """The file and every row's action and changes: equal fingerprints, equal writes."""
        digest = hashlib.sha256(self.sha256.encode())
        for row in self.rows:
            fields = (row.sheet, str(row.row), row.key, row.action, ",".join(row.changes))
            digest.update(("\x1f".join(fields) + "\n").encode())
        return digest.hexdigest()

    def summary(self) -> str:
        parts = [f"{sheet}: " + ", ".join(f"{n} {action}" for action, n in actions.items() if n)
                 for sheet, actions in self.counts().items()]
        return "; ".join(parts) or "the workbook has no rows"


def dry_run(data: bytes, progress: Progress | None = None) -> Plan:
    """Read and plan the workbook; write nothing. Raises WorkbookRefused for an unreadable file."""
    return drive(dry_run_steps(data), progress)


def dry_run_steps(data: bytes) -> Steps[Plan]:
    """`dry_run` as progress events, for a page that shows them as they come."""
    book = yield from read_steps(data)
    return (yield from _Planner(book).steps())


def load(data: bytes, progress: Progress | None = None, expect: str | None = None) -> Plan:
    """Read, plan and, if the plan has no problem, apply it: one transaction, all or nothing.

    `expect`: the fingerprint of the dry run an operator confirmed; PlanChanged (and nothing
    written) when the plan made now differs, e.g. because someone edited a job meanwhile.
    Returns the plan, `applied` telling whether it was written.
    """
    book = drive(read_steps(data), progress)
    try:
        with transaction.atomic():
            plan = drive(_Planner(book).steps(), progress)
            if expect is not None and plan.fingerprint() != expect:
                raise PlanChanged("The workbook or the stored configuration changed since the dry run: "
                                  "review the new dry run before applying.")
            if plan.ok and plan.writes:
                plan._planner.apply()
            plan.applied = plan.ok
    except IntegrityError:
        # Another load or an edit created the same name between our reads and our writes.
        raise PlanChanged("The stored configuration changed while the workbook was being applied: nothing was "
                          "written; try again.") from None
    return plan


# -- planning ------------------------------------------------------------------------------


@dataclass
class _JobWrite:
    job: JobDefinition
    application: str
    process: ProcessKey | None
    fields: set[str]


class _Planner:
    def __init__(self, book: Book) -> None:
        self.book = book
        self.result = Plan(sha256=book.sha256, warnings=list(book.warnings), problems=list(book.problems))
        self.now = timezone.now()
        self._snapshot()
        # What the plan will write, applied in this order by apply().
        self.new_apps: list[Application] = []
        self.changed_apps: dict[Application, set[str]] = {}
        self.new_types: list[JobType] = []
        self.changed_types: dict[JobType, set[str]] = {}
        self.new_flows: dict[FlowKey, Flow] = {}
        self.changed_flows: list[Flow] = []
        self.new_processes: dict[ProcessKey, Process] = {}
        self.job_writes: list[_JobWrite] = []
        self.links_added: list[tuple[ProcessKey, ProcessKey]] = []
        self.links_removed: list[tuple[ProcessKey, ProcessKey]] = []
        self.new_schedules: list[tuple[Schedule, tuple]] = []
        self.changed_schedules: list[Schedule] = []
        self._present: dict[tuple, list] = {}
        self._exclude: dict[type, list[str]] = {}
        self._cleaned: dict[tuple, dict[str, list[str]]] = {}
        self._armed: dict[tuple, tuple] = {}

    def _snapshot(self) -> None:
        """Everything stored that rows are matched against: a few queries, whatever the size."""
        self.apps = {app.name: app for app in Application.objects.all()}
        self.app_names = app_names = {app.pk: name for name, app in self.apps.items()}
        self.types = {job_type.name: job_type for job_type in JobType.objects.all()}
        self.flows = {(app_names[flow.application_id], flow.name): flow for flow in Flow.objects.all()}
        flow_keys = {flow.pk: key for key, flow in self.flows.items()}
        self.processes = {(*flow_keys[p.flow_id], p.name): p for p in Process.objects.all()}
        self.process_keys = {p.pk: key for key, p in self.processes.items()}
        self.jobs = {job.name: job for job in JobDefinition.objects.select_related("custom_type")}
        self.job_apps = {name: app_names[job.application_id] for name, job in self.jobs.items()}
        links = PredecessorLink.objects.values_list("from_process_id", "to_process_id")
        self.links = {(self.process_keys[a], self.process_keys[b]) for a, b in links}
        self.schedules = list(Schedule.objects.order_by("pk"))
        self.job_names = {job.pk: name for name, job in self.jobs.items()}
        self.flow_keys = flow_keys

    def steps(self) -> Steps[Plan]:
        """Plan each sheet in turn (later sheets refer to earlier ones); progress events meanwhile."""
        for stage in (self._applications, self._job_types, self._jobs, self._dependencies, self._schedules):
            yield from stage()
        self.result._planner = self
        return self.result

    # -- helpers ----------------------------------------------------------------------------

    def _rows(self, sheet: Sheet) -> list[Row]:
        """A sheet's rows; none when its header is broken (a missing column would fail every row)."""
        if any(problem.sheet == sheet.name and problem.row == 1 for problem in self.book.problems):
            return []
        return self.book.rows(sheet)

    def _row(self, sheet: Sheet | str, row: Row | None, key: str) -> RowPlan:
        plan = RowPlan(sheet if isinstance(sheet, str) else sheet.name, row.number if row else None, key)
        self.result.rows.append(plan)
        return plan

    def _error(self, plan: RowPlan, sheet: Sheet, row: Row, key: str | None, message: str,
               value: object = _INVALID) -> None:
        column = sheet.header(key) if key else None
        if value is _INVALID:
            value = row.get(key) if key else None
        self.result.problems.append(Problem(sheet.name, row.number, column, value, message))
        plan.action = ERROR
        plan.errors.append(f"{column}: {message}" if column else message)

    def _cell(self, plan: RowPlan, sheet: Sheet, row: Row, key: str, convert: Callable, *args) -> object:
        try:
            return convert(row.get(key), *args)
        except CellError as exc:
            self._error(plan, sheet, row, key, str(exc))
            return _INVALID

    def _required_text(self, plan: RowPlan, sheet: Sheet, row: Row, key: str) -> str:
        value = self._cell(plan, sheet, row, key, cells.text)
        if value == "":
            self._error(plan, sheet, row, key, "Required.")
        return value if isinstance(value, str) else ""

    def _values(self, plan: RowPlan, sheet: Sheet, row: Row, converters: dict[str, tuple]) -> dict[str, object]:
        """The converted cells of the columns present in the sheet (absent columns: left alone)."""
        present = self._present.get((sheet.name, id(converters)))
        if present is None:
            present = [(key, spec[0], spec[1:]) for key, spec in converters.items() if self.book.has_column(sheet, key)]
            self._present[(sheet.name, id(converters))] = present
        values = {}
        for key, convert, args in present:
            value = self._cell(plan, sheet, row, key, convert, *args)
            if value is not _INVALID:
                values[key] = value
        return values

    def _assign(self, plan: RowPlan, sheet: Sheet, obj: models.Model, values: dict[str, object],
                creating: bool) -> set[str]:
        """Set `values` on `obj`; the fields that change (all of them for a new object)."""
        changed = set()
        for name, value in values.items():
            if creating or not _same(getattr(obj, name), value):
                # A job's type is a reference: set it to the type object this plan knows (a
                # new one gets its id when the types are written, before the jobs).
                setattr(obj, name, self.types.get(value, value) if name == "job_type" else value)
                changed.add(name)
        if not creating and changed:
            plan.changes = [column.header for column in sheet.columns if column.key in changed]
        return changed

    def _validate(self, plan: RowPlan, sheet: Sheet, row: Row, obj: models.Model) -> None:
        """The model's own rules for the fields of MODEL_RULES (name patterns, lengths)."""
        exclude = self._exclude.get(type(obj))
        if exclude is None:
            checked = MODEL_RULES[type(obj)]
            exclude = self._exclude[type(obj)] = [f.name for f in obj._meta.fields if f.name not in checked]
        try:
            obj.clean_fields(exclude=exclude)
        except ValidationError as exc:
            for name, messages in exc.message_dict.items():
                key = name if any(c.key == name for c in sheet.columns) else None
                self._error(plan, sheet, row, key, " ".join(messages), getattr(obj, name, None))

    def _decide(self, plan: RowPlan, creating: bool, changed: set[str]) -> None:
        if plan.action != ERROR:
            plan.action = CREATE if creating else (UPDATE if changed else UNCHANGED)

    @staticmethod
    def _tick(sheet: Sheet, index: int, total: int) -> Steps[None]:
        if index % PROGRESS_EVERY == 0:
            yield (f"Checking {sheet.name}", index, total)

    # -- Applications -----------------------------------------------------------------------

    def _applications(self) -> Steps[None]:
        sheet, seen = APPLICATIONS, {}
        rows = self._rows(sheet)
        for index, row in enumerate(rows):
            yield from self._tick(sheet, index, len(rows))
            plan = self._row(sheet, row, self._cell_text(row, "name"))
            name = self._required_text(plan, sheet, row, "name")
            if not name:
                continue
            if name in seen:
                self._error(plan, sheet, row, "name", f"Application {name} is already on row {seen[name]}.")
                continue
            seen[name] = row.number
            values = self._values(plan, sheet, row, APPLICATION_CELLS)
            existing = self.apps.get(name)
            app = existing or Application(name=name)
            changed = self._assign(plan, sheet, app, values, creating=existing is None)
            if existing is None or changed:
                self._validate(plan, sheet, row, app)
            self._decide(plan, existing is None, changed)
            if plan.action == CREATE:
                self.new_apps.append(app)
            elif plan.action == UPDATE:
                self.changed_apps[app] = changed
        self.known_apps = set(self.apps) | set(seen)

    @staticmethod
    def _cell_text(row: Row, key: str) -> str:
        try:
            return cells.text(row.get(key))
        except CellError:
            return str(row.get(key))

    # -- Job Types --------------------------------------------------------------------------

    def _job_types(self) -> Steps[None]:
        sheet, seen, rows = JOB_TYPES, {}, self._rows(JOB_TYPES)
        for index, row in enumerate(rows):
            yield from self._tick(sheet, index, len(rows))
            plan = self._row(sheet, row, self._cell_text(row, "name"))
            name = self._required_text(plan, sheet, row, "name")
            for key in ("start_path", "status_path"):
                self._required_text(plan, sheet, row, key)
            if not name:
                continue
            if JobKind.builtin(name) is not None:
                self._error(plan, sheet, row, "name", f"{name} is a built-in job type: custom types need another name.")
                continue
            if name in seen:
                self._error(plan, sheet, row, "name", f"Job type {name} is already on row {seen[name]}.")
                continue
            seen[name] = row.number
            values = self._values(plan, sheet, row, JOB_TYPE_CELLS)
            existing = self.types.get(name)
            job_type = existing or JobType(name=name)
            changed = self._assign(plan, sheet, job_type, values, creating=existing is None)
            if existing is None or changed:
                self._validate(plan, sheet, row, job_type)
            self._decide(plan, existing is None, changed)
            if plan.action == CREATE:
                self._share_credentials(plan, job_type)
                self.new_types.append(job_type)
                self.types[name] = job_type  # the Jobs sheet refers to it
            elif plan.action == UPDATE:
                self.changed_types[job_type] = changed
        self.known_types = set(self.types) | set(seen)

    def _share_credentials(self, plan: RowPlan, job_type: JobType) -> None:
        """A new type on the base URL of a stored type with credentials uses that type's OAuth client."""
        if not job_type.url:
            return
        for other in self.types.values():
            if other.url == job_type.url and (other.token_url or other.client_id or other.client_secret_encrypted):
                job_type.token_url, job_type.client_id = other.token_url, other.client_id
                job_type.client_secret_encrypted = other.client_secret_encrypted
                plan.note = f"OAuth client of {other.name} (same base URL)"
                return

    # -- Jobs (and the flows and processes they name) ---------------------------------------

    def _jobs(self) -> Steps[None]:
        sheet, rows = JOBS, self._rows(JOBS)
        with_flows = self.book.has_column(sheet, "flow") and self.book.has_column(sheet, "process")
        if self.book.has_column(sheet, "flow") != self.book.has_column(sheet, "process"):
            self.result.problems.append(Problem(sheet.name, 1, None, None,
                                                'The columns "Flow" and "Process" go together: give both or neither.'))
        seen: dict[str, int] = {}
        cycles: dict[FlowKey, tuple[str, int]] = {}
        flow_rows: dict[FlowKey, int] = {}
        process_rows: dict[ProcessKey, int] = {}
        for index, row in enumerate(rows):
            yield from self._tick(sheet, index, len(rows))
            plan = self._row(sheet, row, self._cell_text(row, "name"))
            app = self._required_text(plan, sheet, row, "application")
            name = self._required_text(plan, sheet, row, "name")
            if app and app not in self.known_apps:
                self._error(plan, sheet, row, "application",
                            f"Unknown application {app}: add it to the Applications sheet or create it first.")
            if name and name in seen:
                self._error(plan, sheet, row, "name", f"Job {name} is already on row {seen[name]}: job names are "
                                                      f"unique across all applications.")
            elif name:
                seen[name] = row.number
                self.job_apps[name] = app
            process = self._process_of(plan, row, app, cycles) if with_flows and app else None
            if process:  # known to the later sheets even if this row has a problem: no cascade of errors
                flow_rows.setdefault(process[:2], row.number)
                process_rows.setdefault(process, row.number)
            values = self._job_values(plan, row)
            if plan.action != ERROR:
                self._plan_job(plan, row, name, app, process, values, with_flows)
        self._plan_flows(flow_rows, process_rows, cycles)

    def _process_of(self, plan: RowPlan, row: Row, app: str, cycles: dict) -> ProcessKey | None:
        sheet = JOBS
        values = [self._cell(plan, sheet, row, key, cells.text) for key in ("cycle", "flow", "process")]
        if _INVALID in values:
            return None
        cycle, flow, process = values
        problems = len(self.result.problems)
        for key, value, limit in (("cycle", cycle, 64), ("flow", flow, 100), ("process", process, 100)):
            if len(value) > limit:
                self._error(plan, sheet, row, key, f"At most {limit} characters (this has {len(value)}).")
        if flow and not process:
            self._error(plan, sheet, row, "process", f"A job in flow {flow} needs its process.")
        elif process and not flow:
            self._error(plan, sheet, row, "flow", f"Process {process} needs its flow.")
        elif cycle and not flow and cycle.lower() != "adhoc":
            self._error(plan, sheet, row, "cycle", "A cycle belongs to a flow: give the Flow and Process too.")
        if not (flow and process) or len(self.result.problems) > problems:
            return None
        if self.book.has_column(sheet, "cycle") and cycle:
            first = cycles.setdefault((app, flow), (cycle, row.number))
            if first[0] != cycle:
                self._error(plan, sheet, row, "cycle", f"Flow {flow} of {app} has cycle {first[0]} on row {first[1]}: "
                                                       f"a flow has one cycle.")
        return (app, flow, process)

    def _job_values(self, plan: RowPlan, row: Row) -> dict[str, object]:
        sheet = JOBS
        values = self._values(plan, sheet, row, JOB_CELLS)
        if "job_type" in values:
            values["job_type"] = self._job_type(plan, row, values["job_type"])
        if "parameters" in values:
            try:
                params.validate(values["parameters"])
            except ValidationError as exc:
                self._error(plan, sheet, row, "parameters", " ".join(exc.messages))
        return values

    def _job_type(self, plan: RowPlan, row: Row, name: str) -> str:
        if not name or JobKind.builtin(name) is not None:
            return JobKind.builtin(name or JobKind.EXEC).value
        if name not in self.known_types:
            near = [known for known in self.known_types if known.lower() == name.lower()]
            hint = f" (did you mean {near[0]}?)" if near else ""
            self._error(plan, JOBS, row, "job_type", f"Unknown job type {name}{hint}: use EXEC, PYTHON, DUMMY or a "
                                                     f"type of the Job Types sheet or already stored.")
        return name

    def _plan_job(self, plan: RowPlan, row: Row, name: str, app: str, process: ProcessKey | None,
                  values: dict[str, object], with_flows: bool) -> None:
        existing = self.jobs.get(name)
        job = existing or JobDefinition(name=name)
        changed = self._assign(plan, JOBS, job, values, creating=existing is None)
        if existing is None:
            changed |= {"application", "process"}
        else:
            moved = self._moves(plan, row, existing, app, process, with_flows)
            plan.changes = [header for header, _ in moved] + plan.changes
            changed |= {field_name for _, field_name in moved}
        if changed:
            self._check_runs(plan, row, job)
            self._validate(plan, JOBS, row, job)
        self._decide(plan, existing is None, changed)
        if plan.action in (CREATE, UPDATE):
            stays_in = process if with_flows else self.process_keys.get(job.process_id)
            self.job_writes.append(_JobWrite(job, app, stays_in, changed))

    def _moves(self, plan: RowPlan, row: Row, job: JobDefinition, app: str, process: ProcessKey | None,
               with_flows: bool) -> list[tuple[str, str]]:
        """(header, field) of a stored job's move to another application or process."""
        moved = []
        stored_app, stored_process = self.app_names[job.application_id], self.process_keys.get(job.process_id)
        if stored_app != app:
            moved.append(("Application", "application"))
            if not with_flows and stored_process:
                self._error(plan, JOBS, row, "application", f"Job {job.name} is in a process of application "
                                                            f"{stored_app}: give its Flow and Process to move it.")
        if with_flows and stored_process != process:
            if (stored_process or ("", ""))[1] != (process or ("", ""))[1]:
                moved.append(("Flow", "process"))
            moved.append(("Process", "process"))
        return moved

    def _check_runs(self, plan: RowPlan, row: Row, job: JobDefinition) -> None:
        """What JobDefinition.clean() checks, without its query per row."""
        if job.job_type == "EXEC" and not job.command.strip():
            self._error(plan, JOBS, row, "command", "An EXEC job needs a command.", job.command)
        if job.job_type == "PYTHON":
            from apps.catalog.registry import registry

            if job.command not in registry:
                self._error(plan, JOBS, row, "command", f"{job.command!r} is not a registered PYTHON task; known: "
                                                        f"{', '.join(sorted(registry))}.", job.command)

    def _plan_flows(self, flow_rows: dict[FlowKey, int], process_rows: dict[ProcessKey, int],
                    cycles: dict[FlowKey, tuple[str, int]]) -> None:
        with_cycles = self.book.has_column(JOBS, "cycle")
        for key, number in flow_rows.items():
            plan = RowPlan(FLOWS, number, f"{key[0]}/{key[1]}")
            cycle = cycles.get(key, ("", 0))[0]
            flow = self.flows.get(key)
            if flow is None:
                plan.action = CREATE
                self.new_flows[key] = Flow(name=key[1], cycle=cycle)
            elif with_cycles and flow.cycle != cycle:
                plan.action, plan.changes = UPDATE, ["Cycle"]
                flow.cycle = cycle
                self.changed_flows.append(flow)
            self.result.rows.append(plan)
        for key, number in process_rows.items():
            if key not in self.processes:
                self.new_processes[key] = Process(name=key[2])
                self.result.rows.append(RowPlan(PROCESSES, number, "/".join(key), CREATE))

    # -- Dependencies -----------------------------------------------------------------------

    def _dependencies(self) -> Steps[None]:
        sheet, rows = DEPENDENCIES, self._rows(DEPENDENCIES)
        known = set(self.processes) | set(self.new_processes)
        flows = set(self.flows) | set(self.new_flows)
        links = set(self.links)
        added: list[tuple[ProcessKey, ProcessKey, RowPlan, Row]] = []
        seen: dict[tuple, int] = {}
        for index, row in enumerate(rows):
            yield from self._tick(sheet, index, len(rows))
            texts = {key: self._cell_text(row, key) for key in ("application", "flow", "process", "predecessor")}
            plan = self._row(sheet, row, f"{texts['application']}/{texts['flow']}: {texts['process']} waits for "
                                         f"{texts['predecessor']}")
            app, flow, process, predecessor = (self._required_text(plan, sheet, row, key)
                                               for key in ("application", "flow", "process", "predecessor"))
            enabled = self._cell(plan, sheet, row, "enabled", cells.yes_no, True)
            if plan.action == ERROR:
                continue
            if app not in self.known_apps:
                self._error(plan, sheet, row, "application", f"Unknown application {app}.")
                continue
            if (app, flow) not in flows:
                self._error(plan, sheet, row, "flow", f"Application {app} has no flow {flow} (flows are made by the "
                                                      f"Jobs sheet).")
                continue
            for key, name in (("process", process), ("predecessor", predecessor)):
                if (app, flow, name) not in known:
                    elsewhere = sorted(k[1] for k in known if k[0] == app and k[2] == name and k[1] != flow)
                    where = (f" (it is in flow {', '.join(elsewhere)}: a process waits only for processes of its "
                             f"own flow)") if elsewhere else ""
                    self._error(plan, sheet, row, key, f"Flow {flow} of {app} has no process {name}{where}.")
            if plan.action == ERROR:
                continue
            if process == predecessor:
                self._error(plan, sheet, row, "predecessor", f"Process {process} cannot wait for itself.")
                continue
            link = ((app, flow, process), (app, flow, predecessor))
            if link in seen:
                self._error(plan, sheet, row, "predecessor", f"This dependency is already on row {seen[link]}.")
                continue
            seen[link] = row.number
            if enabled and link not in links:
                plan.action = CREATE
                links.add(link)
                added.append((*link, plan, row))
                self.links_added.append(link)
            elif not enabled and link in links:
                plan.action, plan.note = UPDATE, "dependency removed"
                links.discard(link)
                self.links_removed.append(link)
        self._find_cycles(links, added)

    def _find_cycles(self, links: set[tuple[ProcessKey, ProcessKey]], added: list) -> None:
        """A new link P waits for Q closes a cycle when Q already waits, through others, for P."""
        waits_for: dict[ProcessKey, set[ProcessKey]] = defaultdict(set)
        for process, predecessor in links:
            waits_for[process].add(predecessor)
        for process, predecessor, plan, row in reversed(added):  # blame the row that closes the cycle
            path = _path(waits_for, predecessor, process)
            if path is not None:
                names = " → ".join(key[2] for key in [process, *path])
                self._error(plan, DEPENDENCIES, row, "predecessor",
                            f"Dependency cycle in flow {process[1]}: {names} (each waits for the next).")
                waits_for[process].discard(predecessor)  # report each cycle once

    # -- Schedules ----------------------------------------------------------------------------

    def _schedules(self) -> Steps[None]:
        """Schedules have no name: a row matches a stored schedule of the same target and kind by
        its defining value — the cron expression, the interval, or a once schedule's start.
        Rows with equal keys match stored schedules with that key in id order (the export
        writes them in that order). The other cells (end, repeats, time zone, misfire, active,
        extra, an interval's or cron's start) update the match. Changing a cron expression
        therefore adds a schedule beside the old one; nothing is deleted.
        """
        sheet, rows = SCHEDULES, self._rows(SCHEDULES)
        stored: dict[tuple, list[Schedule]] = defaultdict(list)
        for schedule in self.schedules:
            stored[(self._target_of(schedule), _identity(schedule.kind, schedule.cron, schedule.interval_seconds,
                                                         schedule.start_at))].append(schedule)
        matched: Counter = Counter()
        for index, row in enumerate(rows):
            yield from self._tick(sheet, index, len(rows))
            plan = self._row(sheet, row, "")
            target = self._schedule_target(plan, row)
            values = self._schedule_values(plan, row)
            if plan.action == ERROR or target is None:
                continue
            key = (target, _identity(values["kind"], values.get("cron", ""), values.get("interval_seconds"),
                                     values.get("start_at")))
            plan.key = f"{target[-1]}: {values['kind']} {_describe(key[1])}"
            candidates = stored.get(key, [])
            existing = candidates[matched[key]] if matched[key] < len(candidates) else None
            matched[key] += 1
            self._plan_schedule(plan, row, target, existing, values)

    def _target_of(self, schedule: Schedule) -> tuple:
        if schedule.job_id:
            return ("job", self.job_names[schedule.job_id])
        return ("flow", *self.flow_keys[schedule.flow_id])

    def _schedule_target(self, plan: RowPlan, row: Row) -> tuple | None:
        sheet = SCHEDULES
        job, flow, app = (self._cell(plan, sheet, row, key, cells.text) for key in ("job", "flow", "application"))
        if _INVALID in (job, flow, app):
            return None
        if job and flow:
            self._error(plan, sheet, row, "flow", "Give a Job or a Flow, not both.")
        elif job:
            if job not in self.job_apps:
                self._error(plan, sheet, row, "job", f"Unknown job {job}: add it to the Jobs sheet or create it first.")
            elif app and self.job_apps[job] != app:
                self._error(plan, sheet, row, "application", f"Job {job} belongs to application {self.job_apps[job]}.")
            else:
                return ("job", job)
        elif flow:
            if not app:
                self._error(plan, sheet, row, "application", f"A schedule of flow {flow} needs the flow's application.")
            elif (app, flow) not in self.flows and (app, flow) not in self.new_flows:
                self._error(plan, sheet, row, "flow", f"Application {app} has no flow {flow}.")
            else:
                return ("flow", app, flow)
        else:
            self._error(plan, sheet, row, "job" if self.book.has_column(sheet, "job") else "flow",
                        "Required: a Job or a Flow.")
        return None

    def _schedule_values(self, plan: RowPlan, row: Row) -> dict[str, object]:
        sheet = SCHEDULES
        kind = self._cell(plan, sheet, row, "kind", cells.choice, KINDS, "")
        if kind == "":
            self._error(plan, sheet, row, "kind", f"Required: one of {', '.join(KINDS)}.")
        zone = self._cell(plan, sheet, row, "timezone", cells.text)
        if zone:
            try:
                timezone_name(zone)
            except ValidationError as exc:
                self._error(plan, sheet, row, "timezone", " ".join(exc.messages))
                zone = _INVALID
        zone_name = zone if isinstance(zone, str) and zone else settings.TIME_ZONE
        values = self._values(plan, sheet, row, SCHEDULE_CELLS)
        for key in ("start_at", "end_at"):  # read on the wall clock of the row's time zone
            if self.book.has_column(sheet, key):
                moment = self._cell(plan, sheet, row, key, cells.moment, zone_name)
                if moment is not _INVALID:
                    values[key] = moment
        values["kind"] = kind
        if self.book.has_column(sheet, "timezone") and zone is not _INVALID:
            values["timezone"] = zone_name
        if "cron" in values:
            values["cron"] = " ".join(values["cron"].split())
            if len(values["cron"]) > 200:
                self._error(plan, sheet, row, "cron", f"At most 200 characters (this has {len(values['cron'])}).")
        for key, wanted in (("cron", Kind.CRON), ("interval_seconds", Kind.INTERVAL)):
            if values.get(key) and kind in KINDS and kind != wanted:
                self._error(plan, sheet, row, key, f"{sheet.header(key)} is only for {wanted} schedules; "
                                                   f"this one is {kind}.")
        return values

    def _plan_schedule(self, plan: RowPlan, row: Row, target: tuple, existing: Schedule | None,
                       values: dict[str, object]) -> None:
        sheet = SCHEDULES
        if existing is not None:
            kind = values.pop("kind")  # the identity matched already: kind, cron, interval, a once's start
            values.pop("cron", None), values.pop("interval_seconds", None)
            if kind == Kind.ONCE or (kind == Kind.INTERVAL and values.get("start_at") is None):
                values.pop("start_at", None)  # an interval without a Start keeps the anchor it was given
        schedule = existing or Schedule()
        was_active = existing.active if existing else False
        changed = self._assign(plan, sheet, schedule, values, creating=existing is None)
        if existing is None or changed:
            if target[0] == "job":
                stored = self.jobs.get(target[1])
                schedule.job_id = stored.pk if stored else _NOT_YET_SAVED
            else:
                stored_flow = self.flows.get(target[1:])
                schedule.flow_id = stored_flow.pk if stored_flow else _NOT_YET_SAVED
            for name, messages in self._clean_errors(schedule).items():
                key = {NON_FIELD_ERRORS: "kind"}.get(name, name)
                self._error(plan, sheet, row, key, " ".join(messages))
        self._decide(plan, existing is None, changed)
        if plan.action == CREATE:
            schedule.job_id = schedule.flow_id = None
            self.new_schedules.append((schedule, target))
        elif plan.action == UPDATE:
            self._rearm(schedule, was_active)
            self.changed_schedules.append(schedule)

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

    def _first_fire(self, schedule: Schedule) -> None:
        """What Schedule.save() does for a new active schedule (schedule_from now), computed once
        for schedules alike: the result depends only on the fields of this key and on now."""
        key = (schedule.kind, schedule.cron, schedule.timezone, schedule.interval_seconds, schedule.start_at,
               schedule.end_at)
        if key not in self._armed:
            schedule.schedule_from(self.now)
            self._armed[key] = (schedule.next_fire_at, schedule.start_at, schedule.active, schedule.inactive_reason)
        schedule.next_fire_at, schedule.start_at, schedule.active, schedule.inactive_reason = self._armed[key]

    def _rearm(self, schedule: Schedule, was_active: bool) -> None:
        """As services.reschedule (and resume, when made active again), without a save per row."""
        schedule.next_fire_at = None
        if schedule.active:
            if not was_active:
                schedule.inactive_reason = ""
                if schedule.repeats and schedule.fire_count >= schedule.repeats:
                    schedule.fire_count = 0  # made active again: its repeats start afresh, as resume() does
            schedule.schedule_from(self.now)
        elif was_active:
            schedule.inactive_reason = INACTIVE_REASON

    # -- applying ---------------------------------------------------------------------------

    def apply(self) -> None:
        """Write the plan. Called by load() inside its transaction, only for a plan with no problem."""
        Application.objects.bulk_create(self.new_apps)
        self.apps.update({app.name: app for app in self.new_apps})
        _bulk_update(Application, self.changed_apps)
        JobType.objects.bulk_create(self.new_types)
        _bulk_update(JobType, self.changed_types)
        for (app, _), flow in self.new_flows.items():
            flow.application = self.apps[app]
        Flow.objects.bulk_create(self.new_flows.values(), batch_size=BATCH)
        Flow.objects.bulk_update(self.changed_flows, ["cycle"], batch_size=BATCH)
        self.flows.update(self.new_flows)
        for key, process in self.new_processes.items():
            process.flow = self.flows[key[:2]]
        Process.objects.bulk_create(self.new_processes.values(), batch_size=BATCH)
        self.processes.update(self.new_processes)
        self._apply_jobs()
        self._apply_links()
        self._apply_schedules()

    def _apply_jobs(self) -> None:
        new, changed = [], {}
        for write in self.job_writes:
            write.job.application = self.apps[write.application]
            write.job.process = self.processes[write.process] if write.process else None
            if write.job.pk is None:
                new.append(write.job)
            else:
                changed[write.job] = write.fields
        JobDefinition.objects.bulk_create(new, batch_size=BATCH)
        _bulk_update(JobDefinition, changed)
        self.jobs.update({job.name: job for job in new})

    def _apply_links(self) -> None:
        PredecessorLink.objects.bulk_create(
            [PredecessorLink(from_process=self.processes[a], to_process=self.processes[b])
             for a, b in self.links_added],
            batch_size=BATCH,
        )
        removed = [(self.processes[a].pk, self.processes[b].pk) for a, b in self.links_removed]
        for start in range(0, len(removed), BATCH):
            condition = models.Q()
            for a, b in removed[start:start + BATCH]:
                condition |= models.Q(from_process_id=a, to_process_id=b)
            PredecessorLink.objects.filter(condition).delete()

    def _apply_schedules(self) -> None:
        for schedule, target in self.new_schedules:
            if target[0] == "job":
                schedule.job = self.jobs[target[1]]
            else:
                schedule.flow = self.flows[target[1:]]
            if schedule.active:
                self._first_fire(schedule)
            else:
                schedule.inactive_reason = INACTIVE_REASON
        Schedule.objects.bulk_create([schedule for schedule, _ in self.new_schedules], batch_size=BATCH)
        fields = ["cron", "interval_seconds", "start_at", "end_at", "repeats", "timezone", "misfire", "active",
                  "extra", "next_fire_at", "inactive_reason", "fire_count"]
        Schedule.objects.bulk_update(self.changed_schedules, fields, batch_size=BATCH)


def _bulk_update(model: type[models.Model], changed: dict[models.Model, set[str]]) -> None:
    """bulk_update grouped by the set of fields that changed, so each row writes only those."""
    groups: dict[frozenset, list] = defaultdict(list)
    for obj, fields in changed.items():
        if "job_type" in fields:  # the property over the two columns that hold it
            fields = (set(fields) - {"job_type"}) | {"kind", "custom_type"}
        groups[frozenset(fields)].append(obj)
    for fields, objs in groups.items():
        model.objects.bulk_update(objs, sorted(fields), batch_size=BATCH)


def _identity(kind: str, cron: str, interval: int | None, start: datetime | None) -> tuple:
    if kind == Kind.CRON:
        return (kind, " ".join((cron or "").split()))
    if kind == Kind.INTERVAL:
        return (kind, interval)
    return (kind, start)


def _same(stored: object, value: object) -> bool:
    """Stored text is compared as the reader sees a cell: without surrounding spaces."""
    if isinstance(stored, str) and isinstance(value, str):
        return stored.strip() == value
    return stored == value


def _describe(identity: tuple) -> str:
    value = identity[1]
    return value.isoformat(sep=" ") if isinstance(value, datetime) else str(value)


def _path(waits_for: dict, start, goal) -> list | None:
    """The processes from `start` to `goal` following waits-for links (depth first), or None."""
    stack, parents = [start], {start: None}
    while stack:
        node = stack.pop()
        if node == goal:
            path = []
            while node is not None:
                path.append(node)
                node = parents[node]
            return path[::-1]
        for nxt in sorted(waits_for.get(node, ())):
            if nxt not in parents:
                parents[nxt] = node
                stack.append(nxt)
    return None
