"""The Jobs sheet, and the flows and processes its rows name (they have no sheet of their own).

Jobs are matched to the stored ones by name (unique installation-wide), flows by (application,
name), processes by (flow, name). Without the Flow and Process columns a job stays where it is.
"""

from __future__ import annotations

from collections.abc import Mapping

from apps.catalog.models import Concurrency, Flow, JobDefinition, JobKind, JobType, Process
from apps.spreadsheet import cells
from apps.spreadsheet.cells import CellError
from apps.spreadsheet.layout import JOBS
from apps.spreadsheet.planning.context import INVALID, FlowKey, JobWrite, PlanContext, ProcessKey, SheetPlanner
from apps.spreadsheet.planning.plan import CREATE, ERROR, FLOWS, PROCESSES, UPDATE, RowPlan
from apps.spreadsheet.reader import Problem, Row

JOB_CELLS = {
    "sequence": (cells.whole_number, 0), "job_type": (cells.text,), "command": (cells.text,),
    "parameters": (cells.text,), "description": (cells.text,), "enabled": (cells.yes_no, True),
    "max_retries": (cells.whole_number, 0), "timeout_seconds": (cells.whole_number, 0),
    "concurrency": (cells.choice, Concurrency.values, Concurrency.FORBID), "lock_group": (cells.text,),
    "skip_on_error": (cells.yes_no, False), "threshold_runtime_seconds": (cells.whole_number, 0),
}
# The model fields a row's cells are checked against before any object holds them.
NAMED_FIELDS = {"cycle": Flow._meta.get_field("cycle"), "flow": Flow._meta.get_field("name"),
                "process": Process._meta.get_field("name")}
PARAMETERS = JobDefinition._meta.get_field("parameters")


def job_type_of(cell: str, custom_types: Mapping[str, JobType]) -> str | JobType:
    """What a job's type is set to for its Job Type cell: a built-in kind (EXEC, PYTHON, DUMMY) in
    any case, upper-cased, and EXEC for an empty cell; any other name must be one of `custom_types`
    (stored, or on the Job Types sheet), and gives that type's object (a new one gets its id when
    the types are written, before the jobs). CellError says what is wrong, suggesting a name in
    another case.

    The only place where the loader turns a Job Type cell into what a job refers to."""
    kind = JobKind.builtin(cell or JobKind.EXEC)
    if kind is not None:
        return kind.value
    if cell not in custom_types:
        near = [name for name in custom_types if name.lower() == cell.lower()]
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise CellError(f"Unknown job type {cell}{hint}: use EXEC, PYTHON, DUMMY or a type of the Job Types sheet or "
                        f"already stored.")
    return custom_types[cell]


class JobsPlanner(SheetPlanner):
    sheet = JOBS

    def __init__(self, context: PlanContext) -> None:
        super().__init__(context)
        has_flow, has_process = self.has_column("flow"), self.has_column("process")
        self.with_flows = has_flow and has_process
        if has_flow != has_process:
            context.plan.problems.append(Problem(JOBS.name, 1, None, None, 'The columns "Flow" and "Process" go '
                                                                           'together: give both or neither.'))
        self.seen: dict[str, int] = {}
        self.cycles: dict[FlowKey, tuple[str, int]] = {}  # flow -> (its cycle, the row that gave it)
        self.flow_rows: dict[FlowKey, int] = {}  # flow -> the first row naming it
        self.process_rows: dict[ProcessKey, int] = {}

    def plan_row(self, row: Row) -> None:
        plan = self.row(row, self.cell_text(row, "name"))
        app = self.required_text(plan, row, "application")
        name = self.required_text(plan, row, "name")
        if app and app not in self.context.known_apps:
            self.error(plan, row, "application",
                       f"Unknown application {app}: add it to the Applications sheet or create it first.")
        if name and name in self.seen:
            self.error(plan, row, "name", f"Job {name} is already on row {self.seen[name]}: job names are "
                                          f"unique across all applications.")
        elif name:
            self.seen[name] = row.number
            self.context.known_jobs[name] = app
        process = self._process_of(plan, row, app) if self.with_flows and app else None
        if process:  # known to the later sheets even if this row has a problem: no cascade of errors
            self.flow_rows.setdefault(process[:2], row.number)
            self.process_rows.setdefault(process, row.number)
        values = self._job_values(plan, row)
        if plan.action != ERROR:
            self._plan_job(plan, row, name, app, process, values)

    def finish(self) -> None:
        self._plan_flows()
        self._plan_processes()

    # -- the row's cells ----------------------------------------------------------------------

    def _process_of(self, plan: RowPlan, row: Row, app: str) -> ProcessKey | None:
        values = [self.cell(plan, row, key, cells.text) for key in ("cycle", "flow", "process")]
        if INVALID in values:
            return None
        cycle, flow, process = values
        problems = len(self.context.plan.problems)
        for key, value in (("cycle", cycle), ("flow", flow), ("process", process)):
            self.check_field(plan, row, key, NAMED_FIELDS[key], value)
        if flow and not process:
            self.error(plan, row, "process", f"A job in flow {flow} needs its process.")
        elif process and not flow:
            self.error(plan, row, "flow", f"Process {process} needs its flow.")
        elif cycle and not flow and cycle.lower() != "adhoc":
            self.error(plan, row, "cycle", "A cycle belongs to a flow: give the Flow and Process too.")
        if not (flow and process) or len(self.context.plan.problems) > problems:
            return None
        if self.has_column("cycle") and cycle:
            first = self.cycles.setdefault((app, flow), (cycle, row.number))
            if first[0] != cycle:
                self.error(plan, row, "cycle", f"Flow {flow} of {app} has cycle {first[0]} on row {first[1]}: "
                                               f"a flow has one cycle.")
        return (app, flow, process)

    def _job_values(self, plan: RowPlan, row: Row) -> dict[str, object]:
        values = self.values(plan, row, JOB_CELLS)
        if "job_type" in values:
            try:
                values["job_type"] = job_type_of(values["job_type"], self.context.known_types)
            except CellError as exc:
                self.error(plan, row, "job_type", str(exc))
        if "parameters" in values:  # with the cells, so that a row lists all its problems at once
            self.check_field(plan, row, "parameters", PARAMETERS, values["parameters"])
        return values

    # -- the job ------------------------------------------------------------------------------

    def _plan_job(self, plan: RowPlan, row: Row, name: str, app: str, process: ProcessKey | None,
                  values: dict[str, object]) -> None:
        existing = self.stored.jobs.get(name)
        job = existing or JobDefinition(name=name)
        changed = self.assign(plan, job, values, creating=existing is None)
        if existing is None:
            changed |= {"application", "process"}
        else:
            moved = self._moves(plan, row, existing, app, process)
            plan.changes = [header for header, _ in moved] + plan.changes
            changed |= {field_name for _, field_name in moved}
        if changed:
            self.validate(plan, row, job)
        self.decide(plan, existing is None, changed)
        if plan.action in (CREATE, UPDATE):
            stays_in = process if self.with_flows else self.stored.process_keys.get(job.process_id)
            self.changes.jobs.append(JobWrite(job, app, stays_in, changed))

    def _moves(self, plan: RowPlan, row: Row, job: JobDefinition, app: str,
               process: ProcessKey | None) -> list[tuple[str, str]]:
        """(header, field) of a stored job's move to another application or process."""
        moved = []
        stored_app = self.stored.app_names[job.application_id]
        stored_process = self.stored.process_keys.get(job.process_id)
        if stored_app != app:
            moved.append(("Application", "application"))
            if not self.with_flows and stored_process:
                self.error(plan, row, "application", f"Job {job.name} is in a process of application "
                                                     f"{stored_app}: give its Flow and Process to move it.")
        if self.with_flows and stored_process != process:
            if (stored_process or ("", ""))[1] != (process or ("", ""))[1]:
                moved.append(("Flow", "process"))
            moved.append(("Process", "process"))
        return moved

    # -- the flows and processes the rows name ------------------------------------------------

    def _plan_flows(self) -> None:
        with_cycles = self.has_column("cycle")
        for key, number in self.flow_rows.items():
            plan = RowPlan(FLOWS, number, f"{key[0]}/{key[1]}")
            cycle = self.cycles.get(key, ("", 0))[0]
            flow = self.stored.flows.get(key)
            if flow is None:
                plan.action = CREATE
                self.changes.new_flows[key] = Flow(name=key[1], cycle=cycle)
            elif with_cycles and flow.cycle != cycle:
                plan.action, plan.changes = UPDATE, ["Cycle"]
                flow.cycle = cycle
                self.changes.changed_flows.append(flow)
            self.context.plan.rows.append(plan)

    def _plan_processes(self) -> None:
        for key, number in self.process_rows.items():
            if key not in self.stored.processes:
                self.changes.new_processes[key] = Process(name=key[2])
                self.context.plan.rows.append(RowPlan(PROCESSES, number, "/".join(key), CREATE))
