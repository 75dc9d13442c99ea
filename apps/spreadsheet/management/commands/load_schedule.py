"""`manage.py load_schedule FILE [--dry-run]`: load a batch schedule workbook (SPEC §6, §7)."""

from __future__ import annotations

import getpass
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from apps.spreadsheet import loader
from apps.spreadsheet.reader import WorkbookRefused, check_size


class Command(BaseCommand):
    help = ("Load a batch schedule workbook (.xlsx): all or nothing, listing every problem with its sheet, row "
            "and column. --dry-run shows what would change and writes nothing.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("file")
        parser.add_argument("--dry-run", action="store_true", help="Check and report; write nothing.")

    def handle(self, *args, file: str, dry_run: bool, verbosity: int, **options) -> None:
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"No such file: {file}")
        try:
            check_size(path.stat().st_size)
            data = path.read_bytes()
            plan = loader.dry_run(data) if dry_run else loader.load(data, actor=f"cli:{getpass.getuser()}",
                                                                     source=path.name)
        except WorkbookRefused as exc:
            raise CommandError(f"{file}: {exc}") from None
        for warning in plan.warnings:
            self.stderr.write(f"warning: {warning}")
        self._report(plan, verbosity)
        if not plan.ok:
            for problem in plan.problems:
                self.stderr.write(str(problem))
            raise CommandError(f"{file}: {len(plan.problems)} problem(s); nothing was written.")
        if dry_run:
            self.stdout.write(f"Dry run of {file}: {plan.writes} row(s) would be written; nothing was written.")
        else:
            self.stdout.write(f"Loaded {file}: {plan.writes} row(s) written" +
                              ("" if plan.writes else " (everything was already up to date)") + ".")

    def _report(self, plan: loader.Plan, verbosity: int) -> None:
        for sheet, actions in plan.counts().items():
            counts = "  ".join(f"{action} {count:>5}" for action, count in actions.items())
            self.stdout.write(f"  {sheet:<13} {counts}")
        if verbosity < 2:
            return
        for row in plan.rows:
            if row.action != loader.UNCHANGED or verbosity >= 3:
                detail = f" ({', '.join(row.changes)})" if row.changes else ""
                note = f" [{row.note}]" if row.note else ""
                self.stdout.write(f"  {row.sheet} {row.location}: {row.action} {row.key}{detail}{note}")
