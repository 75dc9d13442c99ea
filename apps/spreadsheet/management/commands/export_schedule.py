"""`manage.py export_schedule FILE`: the stored configuration as a batch schedule workbook (SPEC §6)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from apps.spreadsheet import exporter


class Command(BaseCommand):
    help = "Write applications, job types, jobs, dependencies and schedules to an .xlsx workbook " \
           "(no credentials); load_schedule reads it back unchanged."

    def add_arguments(self, parser) -> None:
        parser.add_argument("file")

    def handle(self, *args, file: str, **options) -> None:
        try:
            with open(file, "wb") as target:
                counts = exporter.export(target)
        except OSError as exc:
            raise CommandError(f"Cannot write {file}: {exc.strerror}") from None
        self.stdout.write(f"Wrote {file}: " + ", ".join(f"{count} {sheet}" for sheet, count in counts.items()) + ".")
