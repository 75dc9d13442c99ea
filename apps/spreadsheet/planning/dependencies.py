"""The Dependencies sheet: which process of a flow waits for which, matched by (flow, process,
predecessor). A row with Enabled = No removes its dependency; a new one must not close a cycle."""

from __future__ import annotations

from collections import defaultdict

from apps.catalog.dependencies import waits_for_path
from apps.spreadsheet import cells
from apps.spreadsheet.layout import DEPENDENCIES
from apps.spreadsheet.planning.context import Link, PlanContext, ProcessKey, SheetPlanner
from apps.spreadsheet.planning.plan import CREATE, ERROR, UPDATE, RowPlan
from apps.spreadsheet.reader import Row


class DependenciesPlanner(SheetPlanner):
    sheet = DEPENDENCIES

    def __init__(self, context: PlanContext) -> None:
        super().__init__(context)
        # The Jobs sheet ran already: the flows and processes it creates count as known.
        self.processes = set(self.stored.processes) | set(self.changes.new_processes)
        self.flows = set(self.stored.flows) | set(self.changes.new_flows)
        self.links = set(self.stored.links)  # as they will be once the plan is applied
        self.added: list[tuple[ProcessKey, ProcessKey, RowPlan, Row]] = []
        self.seen: dict[Link, int] = {}

    def plan_row(self, row: Row) -> None:
        texts = {key: self.cell_text(row, key) for key in ("application", "flow", "process", "predecessor")}
        plan = self.row(row, f"{texts['application']}/{texts['flow']}: {texts['process']} waits for "
                             f"{texts['predecessor']}")
        app, flow, process, predecessor = (self.required_text(plan, row, key)
                                           for key in ("application", "flow", "process", "predecessor"))
        enabled = self.cell(plan, row, "enabled", cells.yes_no, True)
        if plan.action == ERROR:
            return
        link = self._link(plan, row, app, flow, process, predecessor)
        if link is None:
            return
        self.seen[link] = row.number
        if enabled and link not in self.links:
            plan.action = CREATE
            self.links.add(link)
            self.added.append((*link, plan, row))
            self.changes.links_added.append(link)
        elif not enabled and link in self.links:
            plan.action, plan.note = UPDATE, "dependency removed"
            self.links.discard(link)
            self.changes.links_removed.append(link)

    def finish(self) -> None:
        self._find_cycles()

    def _link(self, plan: RowPlan, row: Row, app: str, flow: str, process: str, predecessor: str) -> Link | None:
        """The row's dependency, or None with its problem recorded."""
        if app not in self.context.known_apps:
            self.error(plan, row, "application", f"Unknown application {app}.")
            return None
        if (app, flow) not in self.flows:
            self.error(plan, row, "flow", f"Application {app} has no flow {flow} (flows are made by the "
                                          f"Jobs sheet).")
            return None
        for key, name in (("process", process), ("predecessor", predecessor)):
            if (app, flow, name) not in self.processes:
                elsewhere = sorted(k[1] for k in self.processes if k[0] == app and k[2] == name and k[1] != flow)
                where = (f" (it is in flow {', '.join(elsewhere)}: a process waits only for processes of its "
                         f"own flow)") if elsewhere else ""
                self.error(plan, row, key, f"Flow {flow} of {app} has no process {name}{where}.")
        if plan.action == ERROR:
            return None
        if process == predecessor:
            self.error(plan, row, "predecessor", f"Process {process} cannot wait for itself.")
            return None
        link = ((app, flow, process), (app, flow, predecessor))
        if link in self.seen:
            self.error(plan, row, "predecessor", f"This dependency is already on row {self.seen[link]}.")
            return None
        return link

    def _find_cycles(self) -> None:
        """A new link P waits for Q closes a cycle when Q already waits, through others, for P."""
        waits_for: dict[ProcessKey, set[ProcessKey]] = defaultdict(set)
        for process, predecessor in self.links:
            waits_for[process].add(predecessor)
        for process, predecessor, plan, row in reversed(self.added):  # blame the row that closes the cycle
            path = waits_for_path(waits_for, predecessor, process)
            if path is not None:
                names = " → ".join(key[2] for key in [process, *path])
                self.error(plan, row, "predecessor",
                           f"Dependency cycle in flow {process[1]}: {names} (each waits for the next).")
                waits_for[process].discard(predecessor)  # report each cycle once
