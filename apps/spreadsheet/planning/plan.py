"""What planning a workbook gives: a RowPlan per row (create / update / unchanged / error) and
the Plan that holds them with the problems, warnings and the fingerprint an operator confirms."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from apps.spreadsheet.layout import SHEETS
from apps.spreadsheet.reader import Problem

if TYPE_CHECKING:
    from apps.spreadsheet.planning.apply import Applier

CREATE, UPDATE, UNCHANGED, ERROR = "create", "update", "unchanged", "error"
ACTIONS = (CREATE, UPDATE, UNCHANGED, ERROR)
# Flows and processes have no sheet of their own: the Jobs rows that name them create them.
FLOWS, PROCESSES = "Flows", "Processes"


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
    _applier: Applier | None = field(default=None, repr=False)

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

    def write(self) -> None:
        """Write what the plan found to change. Only load() calls this, inside its transaction,
        and only for a plan with no problem."""
        self._applier.apply()
