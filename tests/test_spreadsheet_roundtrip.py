"""Export → load → export: nothing changes; loading twice writes nothing the second time;
no credential ever reaches a workbook; the example workbook that `make run` loads."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from apps.catalog.models import Application, Flow, JobDefinition, JobType, Process
from apps.scheduling.models import Kind, Schedule
from apps.spreadsheet import example, exporter, loader
from apps.spreadsheet.layout import SHEETS
from tests.spreadsheets import Writes, cells_of

pytestmark = pytest.mark.django_db

UTC = timezone.utc
EXAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "batch_schedule_example.xlsx"
SECRETS = ("https://login.example.com/oauth2/token", "batchdesk-client-7f3a", "s3cr3t-P4ssw0rd")


@pytest.fixture
def configuration(db):
    """The example schedule, and the awkward cases a workbook must carry unchanged."""
    assert loader.load(EXAMPLE.read_bytes()).applied
    rms = Application.objects.get(name="RMS")
    job_type = JobType.objects.create(name="SECURED", url="https://erp.example.com", start_path="/start",
                                      status_path="/status", token_url=SECRETS[0], client_id=SECRETS[1])
    job_type.set_client_secret(SECRETS[2])
    job_type.save()
    odd = JobDefinition.objects.create(
        name="odd.job-1", application=rms, job_type="SECURED", parameters="a=1||b=x y",
        description="=SUM(A1:A3) is text here, not a formula\nsecond line", lock_group="ledger",
    )
    # An interval anchored when it was made (microseconds), and a start in the repeated hour
    # of the end of summer time in London (the second 01:30, which a wall time cannot tell).
    Schedule.objects.create(job=odd, kind=Kind.INTERVAL, interval_seconds=90)
    Schedule.objects.create(job=odd, kind=Kind.ONCE, start_at=datetime(2031, 10, 26, 1, 30, tzinfo=UTC),
                            timezone="Europe/London")
    Schedule.objects.create(job=odd, kind=Kind.CRON, cron="0 0 12 ? * MON-FRI", timezone="Asia/Tokyo",
                            end_at=datetime(2032, 1, 1, 0, 0, 0, 250000, tzinfo=UTC), repeats=500, misfire="run_all",
                            interval_seconds=60)  # left over from when it was an interval: not part of it
    # A flow schedule made before the loader refused them: carried, not re-validated.
    Schedule.objects.create(flow=Flow.objects.get(name="Nightly", application=rms), kind=Kind.CRON, cron="0 1 * * *")
    return job_type


def test_it_exports_exactly_the_sheets_and_columns_of_the_layout(configuration):
    cells = cells_of(exporter.export_bytes())
    assert list(cells) == [sheet.name for sheet in SHEETS]
    for sheet in SHEETS:
        assert cells[sheet.name][0] == tuple(column.header for column in sheet.columns)


def test_it_round_trips_without_a_change(configuration):
    first = exporter.export_bytes()
    with Writes() as writes:
        plan = loader.load(first)
    assert plan.applied and plan.problems == [] and plan.warnings == []
    assert plan.writes == 0 and writes.statements == []
    assert {row.action for row in plan.rows} == {"unchanged"}
    second = exporter.export_bytes()
    assert cells_of(second) == cells_of(first)
    assert len(cells_of(first)["Jobs"]) == 1 + 60 + 1  # the header, the example's jobs and odd.job-1


def test_it_writes_nothing_when_the_same_workbook_is_loaded_twice(db):
    assert loader.load(EXAMPLE.read_bytes()).writes > 100
    with Writes() as writes:
        again = loader.load(EXAMPLE.read_bytes())
    assert again.applied and again.writes == 0
    assert writes.statements == []


def test_it_never_writes_a_credential(configuration):
    data = exporter.export_bytes()
    archive = zipfile.ZipFile(io.BytesIO(data))
    text = b"".join(archive.read(name) for name in archive.namelist()).decode("utf-8", errors="replace")
    for secret in SECRETS:
        assert secret not in text
    assert configuration.client_secret_encrypted not in text
    headers = cells_of(data)["Job Types"][0]
    assert not {"Token URL", "Client ID", "Client Secret"} & set(headers)


def test_it_writes_wall_times_as_dates_and_ambiguous_ones_as_iso_text(configuration):
    rows = {(row[0], row[3]): row for row in cells_of(exporter.export_bytes())["Schedules"][1:]}
    assert rows[("rms_adhoc_reindex", "once")][6] == datetime(2032, 1, 1, 5, 0)
    assert rows[("odd.job-1", "once")][6] == "2031-10-26T01:30:00+00:00"
    assert rows[("odd.job-1", "cron")][7] == "2032-01-01T09:00:00.250000+09:00"
    assert rows[(None, "cron")][1:3] == ("Nightly", "RMS")


def test_it_loads_the_example_workbook(db):
    plan = loader.load(EXAMPLE.read_bytes())
    assert plan.applied and plan.problems == [] and plan.warnings == []
    assert sorted(Application.objects.values_list("name", flat=True)) == ["RMS", "WMS"]
    assert sorted(JobType.objects.values_list("name", flat=True)) == ["FILE_XFER", "RMS_BATCH", "WMS_API"]
    assert JobType.objects.filter(url="http://127.0.0.1:8000/extsys").count() == 3
    assert JobDefinition.objects.count() == 60
    assert set(JobDefinition.objects.with_type_name().values_list("type_name", flat=True)) == {
        "EXEC", "PYTHON", "DUMMY", "RMS_BATCH", "WMS_API", "FILE_XFER"}
    assert Flow.objects.count() == 5 and Process.objects.count() == 16
    assert Process.predecessors.through.objects.count() == 14
    assert set(Schedule.objects.values_list("kind", flat=True)) == {"once", "interval", "cron"}
    assert Schedule.objects.filter(active=True, next_fire_at__isnull=False).count() == 13


def test_it_regenerates_the_committed_example_workbook(tmp_path):
    target = tmp_path / "example.xlsx"
    assert example.main(["example", str(target)]) == 0
    assert cells_of(target.read_bytes()) == cells_of(EXAMPLE.read_bytes())
