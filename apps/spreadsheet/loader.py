"""Loading a batch schedule workbook (SPEC §6): read → plan → apply.

`dry_run()` reads and plans: every row becomes create / update / unchanged / error, with
the problems (sheet, row, column, value) and warnings, and nothing is written. `load()` plans
and, when the plan has no problem, applies it in the same transaction: all or nothing.
The admin page, `manage.py load_schedule` and the tests all call these two.

Rules an operator can rely on:
- Rows are matched to what is stored by name: applications, job types and jobs (job names
  are unique installation-wide), flows by (application, name), processes by (flow, name),
  dependencies by (flow, process, predecessor). Schedules: see apps/spreadsheet/planning/schedules.py.
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

The work is in apps/spreadsheet/planning/: a planner per sheet sharing one context, and the
applier; this module keeps the entry points.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from apps import audit
from apps.spreadsheet.planning import plan_steps
from apps.spreadsheet.planning.plan import (  # noqa: F401 (the loader's public names)
    ACTIONS, CREATE, ERROR, FLOWS, PROCESSES, UNCHANGED, UPDATE, Plan, PlanChanged, RowPlan,
)
from apps.spreadsheet.planning.apply import INACTIVE_REASON  # noqa: F401
from apps.spreadsheet.reader import Progress, Steps, drive, read_steps


def dry_run(data: bytes, progress: Progress | None = None) -> Plan:
    """Read and plan the workbook; write nothing. Raises WorkbookRefused for an unreadable file."""
    return drive(dry_run_steps(data), progress)


def dry_run_steps(data: bytes) -> Steps[Plan]:
    """`dry_run` as progress events, for a page that shows them as they come."""
    book = yield from read_steps(data)
    return (yield from plan_steps(book))


def load(data: bytes, progress: Progress | None = None, expect: str | None = None, *, actor: str = "",
         source: str = "workbook") -> Plan:
    """Read, plan and, if the plan has no problem, apply it: one transaction, all or nothing.

    `expect`: the fingerprint of the dry run an operator confirmed; PlanChanged (and nothing
    written) when the plan made now differs, e.g. because someone edited a job meanwhile.
    A workbook that changed something goes into the audit trail as `actor`'s upload of `source` (its file name),
    in the same transaction. Returns the plan, `applied` telling whether it was written.
    """
    book = drive(read_steps(data), progress)
    try:
        with transaction.atomic():
            plan = drive(plan_steps(book), progress)
            if expect is not None and plan.fingerprint() != expect:
                raise PlanChanged("The workbook or the stored configuration changed since the dry run: "
                                  "review the new dry run before applying.")
            if plan.ok and plan.writes:
                plan.write()
            plan.applied = plan.ok
            if plan.applied and plan.writes:  # a load that changes nothing writes nothing, not even this
                audit.record(actor, "upload", ("workbook", source), f"{plan.writes} row(s) written: {plan.summary()}")
    except IntegrityError:
        # Another load or an edit created the same name between our reads and our writes.
        raise PlanChanged("The stored configuration changed while the workbook was being applied: nothing was "
                          "written; try again.") from None
    return plan
