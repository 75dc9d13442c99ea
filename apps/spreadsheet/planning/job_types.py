"""The Job Types sheet: custom (Generic ReST) job types, matched to the stored ones by name.

Credentials never travel in a workbook: a stored type keeps its own, and a new one shares the
OAuth client of a stored type on the same base URL (the same external system), if any.
"""

from __future__ import annotations

from apps.catalog.models import JobType
from apps.spreadsheet import cells
from apps.spreadsheet.layout import JOB_TYPES
from apps.spreadsheet.planning.context import PlanContext, SheetPlanner
from apps.spreadsheet.planning.plan import CREATE, UPDATE, RowPlan
from apps.spreadsheet.reader import Row

JOB_TYPE_CELLS = {**{key: (cells.text,) for key in ("description", "url", "start_path", "status_path", "restart_path",
                                                    "kill_path", "log_path", "check_path", "scope")},
                  "poll_interval_seconds": (cells.whole_number, 5, 1)}


class JobTypesPlanner(SheetPlanner):
    sheet = JOB_TYPES

    def __init__(self, context: PlanContext) -> None:
        super().__init__(context)
        self.seen: dict[str, int] = {}

    def plan_row(self, row: Row) -> None:
        plan = self.row(row, self.cell_text(row, "name"))
        name = self.required_text(plan, row, "name")
        for key in ("start_path", "status_path"):
            self.required_text(plan, row, key)
        if not name:
            return
        if name in self.seen:
            self.error(plan, row, "name", f"Job type {name} is already on row {self.seen[name]}.")
            return
        self.seen[name] = row.number
        existing = self.stored.types.get(name)
        job_type = existing or JobType(name=name)
        self.context.known_types[name] = job_type  # the Jobs sheet refers to it
        values = self.values(plan, row, JOB_TYPE_CELLS)
        changed = self.assign(plan, job_type, values, creating=existing is None)
        if existing is None or changed:
            self.validate(plan, row, job_type)  # with JobType.clean: not a built-in kind's name
        self.decide(plan, existing is None, changed)
        if plan.action == CREATE:
            self._share_credentials(plan, job_type)
            self.changes.new_types.append(job_type)
        elif plan.action == UPDATE:
            self.changes.changed_types[job_type] = changed

    def _share_credentials(self, plan: RowPlan, job_type: JobType) -> None:
        """A new type on the base URL of a stored type with credentials uses that type's OAuth client."""
        if not job_type.url:
            return
        for other in self.stored.types.values():
            if other.url == job_type.url and (other.token_url or other.client_id or other.client_secret_encrypted):
                job_type.token_url, job_type.client_id = other.token_url, other.client_id
                job_type.client_secret_encrypted = other.client_secret_encrypted
                plan.note = f"OAuth client of {other.name} (same base URL)"
                return
