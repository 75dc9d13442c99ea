"""Planning a batch schedule workbook: one planner per sheet, in layout order (later sheets refer
to what earlier ones make known), sharing one PlanContext; then the Applier writes the plan."""

from __future__ import annotations

from apps.spreadsheet.planning.applications import ApplicationsPlanner
from apps.spreadsheet.planning.apply import Applier
from apps.spreadsheet.planning.context import PlanContext
from apps.spreadsheet.planning.dependencies import DependenciesPlanner
from apps.spreadsheet.planning.job_types import JobTypesPlanner
from apps.spreadsheet.planning.jobs import JobsPlanner
from apps.spreadsheet.planning.plan import Plan
from apps.spreadsheet.planning.schedules import SchedulesPlanner
from apps.spreadsheet.reader import Book, Steps

PLANNERS = (ApplicationsPlanner, JobTypesPlanner, JobsPlanner, DependenciesPlanner, SchedulesPlanner)


def plan_steps(book: Book) -> Steps[Plan]:
    """Plan each sheet in turn, with progress events meanwhile; the plan, ready to be written."""
    context = PlanContext(book)
    for planner in PLANNERS:  # each made when its turn comes: it starts from what the earlier ones planned
        yield from planner(context).steps()
    context.plan._applier = Applier(context.stored, context.changes, context.now)
    return context.plan
