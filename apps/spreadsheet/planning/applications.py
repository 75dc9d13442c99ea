"""The Applications sheet: one application a row, matched to the stored one by name."""

from __future__ import annotations

from apps.catalog.models import Application
from apps.spreadsheet import cells
from apps.spreadsheet.layout import APPLICATIONS
from apps.spreadsheet.planning.context import PlanContext, SheetPlanner
from apps.spreadsheet.planning.plan import CREATE, UPDATE
from apps.spreadsheet.reader import Row

# How each optional cell is read: column key -> (converter, its arguments).
APPLICATION_CELLS = {"description": (cells.text,), "throttle_limit": (cells.whole_number, 0),
                     "enabled": (cells.yes_no, True)}


class ApplicationsPlanner(SheetPlanner):
    sheet = APPLICATIONS

    def __init__(self, context: PlanContext) -> None:
        super().__init__(context)
        self.seen: dict[str, int] = {}  # name -> the row that has it

    def plan_row(self, row: Row) -> None:
        plan = self.row(row, self.cell_text(row, "name"))
        name = self.required_text(plan, row, "name")
        if not name:
            return
        if name in self.seen:
            self.error(plan, row, "name", f"Application {name} is already on row {self.seen[name]}.")
            return
        self.seen[name] = row.number
        self.context.known_apps.add(name)
        values = self.values(plan, row, APPLICATION_CELLS)
        existing = self.stored.apps.get(name)
        app = existing or Application(name=name)
        changed = self.assign(plan, app, values, creating=existing is None)
        if existing is None or changed:
            self.validate(plan, row, app)
        self.decide(plan, existing is None, changed)
        if plan.action == CREATE:
            self.changes.new_apps.append(app)
        elif plan.action == UPDATE:
            self.changes.changed_apps[app] = changed
