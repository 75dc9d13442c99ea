"""`manage.py load_schedule FILE [--dry-run]` and `manage.py export_schedule FILE`."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from apps.catalog.models import Application, JobDefinition
from tests.spreadsheets import Sheets, Writes, cells_of

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.fixture
def workbook(tmp_path):
    path = tmp_path / "schedule.xlsx"
    path.write_bytes(Sheets.base().xlsx())
    return path


def test_it_dry_runs_without_writing(workbook):
    with Writes() as writes:
        out, err = run("load_schedule", str(workbook), "--dry-run")
    assert writes.statements == [] and err == ""
    assert "  Jobs          create     4  update     0  unchanged     0  error     0" in out
    assert out.endswith(f"Dry run of {workbook}: 14 row(s) would be written; nothing was written.\n")


def test_it_loads_and_then_finds_nothing_to_do(workbook):
    out, _ = run("load_schedule", str(workbook))
    assert out.endswith(f"Loaded {workbook}: 14 row(s) written.\n")
    assert JobDefinition.objects.count() == 4
    out, _ = run("load_schedule", str(workbook), "-v", "2")
    assert out.endswith(f"Loaded {workbook}: 0 row(s) written (everything was already up to date).\n")


def test_it_lists_every_problem_and_fails(tmp_path):
    path = tmp_path / "bad.xlsx"
    path.write_bytes(Sheets.base().set("Jobs", 2, "Enabled", "sure").set("Schedules", 2, "Cron", "61 * * * *").xlsx())
    err = io.StringIO()
    with pytest.raises(CommandError, match=r"bad\.xlsx: 2 problem\(s\); nothing was written\."):
        call_command("load_schedule", str(path), stdout=io.StringIO(), stderr=err)
    assert err.getvalue().splitlines() == [
        'Sheet "Jobs", row 2, column "Enabled", value "sure": Expected Yes or No (also Y/N, True/False, 1/0).',
        'Sheet "Schedules", row 2, column "Cron", value "61 * * * *": Minute field: 61 is out of range 0-59.',
    ]
    assert not Application.objects.exists()


def test_it_refuses_a_file_that_is_not_a_workbook(tmp_path):
    path = tmp_path / "notes.xlsx"
    path.write_text("just text")
    with pytest.raises(CommandError, match="notes.xlsx: The file is not an .xlsx workbook"):
        run("load_schedule", str(path))


def test_it_says_when_the_file_is_missing(tmp_path):
    with pytest.raises(CommandError, match="No such file: .*missing.xlsx"):
        run("load_schedule", str(tmp_path / "missing.xlsx"))


def test_it_exports_what_it_loaded(workbook, tmp_path):
    run("load_schedule", str(workbook))
    target = tmp_path / "export.xlsx"
    out, _ = run("export_schedule", str(target))
    assert out == f"Wrote {target}: 1 Applications, 1 Job Types, 4 Jobs, 2 Dependencies, 2 Schedules.\n"
    exported, original = cells_of(target.read_bytes()), cells_of(workbook.read_bytes())
    for sheet in ("Applications", "Job Types", "Jobs", "Dependencies", "Schedules"):
        assert exported[sheet][0] == original[sheet][0]
        assert set(exported[sheet][1:]) == set(original[sheet][1:])  # the same rows, in the export's order
