"""Loading batch schedule workbooks: every malformed one refused with its precise problem and
nothing written; cells as real workbooks hold them; creates, updates and unchanged rows."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime, timedelta, timezone

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.catalog.models import Application, Flow, JobDefinition, JobType, Process
from apps.scheduling.models import Schedule
from apps.spreadsheet import loader
from apps.spreadsheet.reader import CFB_MAGIC, WorkbookRefused
from tests.spreadsheets import Sheets, Writes

pytestmark = pytest.mark.django_db

UTC = timezone.utc


def problems(data: bytes) -> list[str]:
    """The problems of a refused load, after checking that it wrote nothing at all."""
    with Writes() as writes:
        plan = loader.load(data)
    assert not plan.applied
    assert writes.statements == []
    assert not Application.objects.exists() and not JobDefinition.objects.exists()
    return [str(problem) for problem in plan.problems]


def refusal(data: bytes) -> str:
    with Writes() as writes, pytest.raises(WorkbookRefused) as refused:
        loader.load(data)
    assert writes.statements == []
    return str(refused.value)


def broken(sheet: str, row: int, column: str, value: object) -> bytes:
    return Sheets.base().set(sheet, row, column, value).xlsx()


# --- refused files -------------------------------------------------------------------------


def test_it_refuses_a_file_that_is_not_an_xlsx():
    assert refusal(b"Application,Job\nRMS,extract\n") == \
        "The file is not an .xlsx workbook (an .xlsx file is a zip archive; this is not one)."


def test_it_refuses_an_encrypted_workbook():
    # What Excel writes for a password-protected workbook: an OLE compound file holding the
    # EncryptionInfo and EncryptedPackage streams (directory names in UTF-16).
    data = CFB_MAGIC + b"\x00" * 504 + "EncryptionInfo".encode("utf-16-le") + b"\x00" * 64 + \
        "EncryptedPackage".encode("utf-16-le") + b"\x00" * 512
    assert refusal(data) == ("The workbook is encrypted (password-protected): remove the password in Excel "
                             "(File › Info › Protect Workbook) and upload it again.")


def test_it_refuses_an_old_xls_workbook():
    assert refusal(CFB_MAGIC + b"\x00" * 2048) == ("The file is an Excel 97-2003 .xls workbook (or another OLE file), "
                                                    "not an .xlsx: save it as an Excel Workbook (.xlsx).")


def test_it_refuses_a_zip_that_is_not_a_workbook():
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("notes.txt", "hello")
    assert refusal(buffer.getvalue()) == \
        "The file is a zip archive but not an .xlsx workbook (it has no xl/workbook.xml)."


def test_it_refuses_a_file_over_the_size_limit(settings):
    data = Sheets.base().xlsx()
    settings.SPREADSHEET_MAX_BYTES = 1000
    assert refusal(data) == f"The file is {len(data):,} bytes, over the limit of 1,000 bytes (SPREADSHEET_MAX_BYTES)."


def test_it_refuses_a_workbook_with_too_many_rows(settings):
    settings.SPREADSHEET_MAX_ROWS = 8
    # 1 application + 1 job type + 4 jobs + 2 dependencies = 8; the first schedule is one too many.
    assert refusal(Sheets.base().xlsx()) == ('The workbook has too many rows: over 8 (SPREADSHEET_MAX_ROWS), '
                                             'reached on sheet "Schedules" row 2.')


# --- malformed cells: each names sheet, row, column and value -------------------------------


def test_it_reports_a_missing_required_cell():
    assert problems(broken("Jobs", 3, "Job", None)) == [
        'Sheet "Jobs", row 3, column "Job", value (empty): Required.',
        'Sheet "Schedules", row 3, column "Job", value "load_items": Unknown job load_items: add it to the Jobs '
        'sheet or create it first.',
    ]


def test_it_reports_a_missing_required_column():
    sheets = Sheets.base()
    for row in sheets["Job Types"]:
        del row[4]  # Job Status
    assert problems(sheets.xlsx()) == [
        'Sheet "Job Types", row 1: The required column "Job Status" is missing.',
        'Sheet "Jobs", row 3, column "Job Type", value "EXTTYPE": Unknown job type EXTTYPE: use EXEC, PYTHON, DUMMY '
        'or a type of the Job Types sheet or already stored.',
    ]


def test_it_reports_an_unknown_application():
    assert problems(broken("Jobs", 5, "Application", "NOPE")) == [
        'Sheet "Jobs", row 5, column "Application", value "NOPE": Unknown application NOPE: add it to the '
        'Applications sheet or create it first.',
    ]


def test_it_reports_an_unknown_job_type_and_suggests_the_near_one():
    assert problems(broken("Jobs", 3, "Job Type", "exttype")) == [
        'Sheet "Jobs", row 3, column "Job Type", value "exttype": Unknown job type exttype (did you mean EXTTYPE?): '
        'use EXEC, PYTHON, DUMMY or a type of the Job Types sheet or already stored.',
    ]


def test_it_reports_a_duplicate_job_name():
    assert problems(broken("Jobs", 4, "Job", "extract_items")) == [
        'Sheet "Jobs", row 4, column "Job", value "extract_items": Job extract_items is already on row 2: job names '
        'are unique across all applications.',
    ]


def test_it_reports_a_duplicate_application_name():
    sheets = Sheets.base()
    sheets.append("Applications", Name="RMS", Description="again")
    assert problems(sheets.xlsx()) == [
        'Sheet "Applications", row 3, column "Name", value "RMS": Application RMS is already on row 2.',
    ]


def test_it_reports_malformed_parameters():
    assert problems(broken("Jobs", 2, "Parameters", "region=EU||oops")) == [
        'Sheet "Jobs", row 2, column "Parameters", value "region=EU||oops": Malformed parameter pair \'oops\': '
        'expected key=value.',
    ]


def test_it_reports_a_bad_cron_expression():
    assert problems(broken("Schedules", 2, "Cron", "0 25 * * *")) == [
        'Sheet "Schedules", row 2, column "Cron", value "0 25 * * *": Hour field: 25 is out of range 0-23.',
    ]


def test_it_reports_a_cron_expression_that_never_fires():
    assert problems(broken("Schedules", 2, "Cron", "0 0 30 2 *")) == [
        'Sheet "Schedules", row 2, column "Cron", value "0 0 30 2 *": Never fires: day 30 does not occur in February.',
    ]


def test_it_reports_a_bad_time_zone():
    assert problems(broken("Schedules", 2, "Timezone", "Mars/Olympus")) == [
        'Sheet "Schedules", row 2, column "Timezone", value "Mars/Olympus": Unknown time zone \'Mars/Olympus\': '
        'use an IANA name such as Europe/London.',
    ]


def test_it_reports_a_dependency_cycle_naming_its_processes():
    sheets = Sheets.base()
    row = sheets.append("Dependencies", Application="RMS", Flow="Nightly", Process="Extract",
                        Predecessor_Process="Report")
    assert problems(sheets.xlsx()) == [
        f'Sheet "Dependencies", row {row}, column "Predecessor Process", value "Report": Dependency cycle in flow '
        f'Nightly: Extract → Report → Load → Extract (each waits for the next).',
    ]


def test_it_reports_a_process_waiting_for_itself():
    assert problems(broken("Dependencies", 2, "Predecessor Process", "Load")) == [
        'Sheet "Dependencies", row 2, column "Predecessor Process", value "Load": Process Load cannot wait for itself.',
    ]


def test_it_reports_a_predecessor_in_another_flow():
    sheets = Sheets.base().set("Jobs", 4, "Flow", "Weekly")
    assert problems(sheets.xlsx()) == [
        'Sheet "Dependencies", row 3, column "Process", value "Report": Flow Nightly of RMS has no process Report '
        '(it is in flow Weekly: a process waits only for processes of its own flow).',
    ]


def test_it_reports_a_bad_yes_no():
    assert problems(broken("Jobs", 2, "Enabled", "maybe")) == [
        'Sheet "Jobs", row 2, column "Enabled", value "maybe": Expected Yes or No (also Y/N, True/False, 1/0).',
    ]


def test_it_reports_a_bad_number():
    assert problems(broken("Jobs", 2, "Retries", "three")) == [
        'Sheet "Jobs", row 2, column "Retries", value "three": Expected a whole number.',
    ]


def test_it_reports_a_fraction_where_a_whole_number_is_needed():
    assert problems(broken("Applications", 2, "Throttle Limit", 2.5)) == [
        'Sheet "Applications", row 2, column "Throttle Limit", value 2.5: Expected a whole number, not a fraction.',
    ]


def test_it_reports_a_negative_number():
    assert problems(broken("Jobs", 2, "Timeout", -5)) == [
        'Sheet "Jobs", row 2, column "Timeout", value -5: Must be at least 0.',
    ]


def test_it_reports_a_bad_date():
    assert problems(broken("Schedules", 3, "Start", "next tuesday")) == [
        'Sheet "Schedules", row 3, column "Start", value "next tuesday": Expected a date and time: an Excel date or '
        'ISO text such as 2026-12-31 23:00.',
    ]


def test_it_reports_a_one_time_schedule_in_the_past():
    sheets = Sheets.base()
    row = sheets.append("Schedules", Job="report_items", Kind="once", Start=datetime(2020, 5, 1, 8, 0), Timezone="UTC")
    assert problems(sheets.xlsx()) == [
        f'Sheet "Schedules", row {row}, column "Start", value 2020-05-01 08:00:00: 2020-05-01 08:00:00 UTC is in the '
        f'past: this one-time schedule would never fire.',
    ]


def test_it_loads_a_flow_schedule():
    sheets = Sheets.base()
    sheets.append("Schedules", Flow="Nightly", Application="RMS", Kind="cron", Cron="0 1 * * *")
    plan = loader.load(sheets.xlsx())
    assert plan.applied, plan.problems
    schedule = Schedule.objects.get(flow__name="Nightly")
    assert (schedule.job, schedule.flow.application.name, schedule.cron) == (None, "RMS", "0 1 * * *")


def test_it_reports_a_schedule_of_an_unknown_job():
    assert problems(broken("Schedules", 2, "Job", "no_such_job")) == [
        'Sheet "Schedules", row 2, column "Job", value "no_such_job": Unknown job no_such_job: add it to the Jobs '
        'sheet or create it first.',
    ]


def test_it_reports_a_custom_type_named_like_a_built_in_one():
    sheets = Sheets.base().set("Job Types", 2, "Job Type", "Exec").set("Jobs", 3, "Job Type", "DUMMY")
    assert problems(sheets.xlsx()) == [
        'Sheet "Job Types", row 2, column "Job Type", value "Exec": Exec is a built-in job type: custom types need '
        'another name.',
    ]


def test_it_reports_a_bad_url():
    assert problems(broken("Job Types", 2, "URL", "ftp://files.example.com")) == [
        "Sheet \"Job Types\", row 2, column \"URL\", value \"ftp://files.example.com\": 'ftp://files.example.com' is not an "
        "http(s) URL.",
    ]


def test_it_reports_an_exec_job_without_a_command():
    assert problems(broken("Jobs", 2, "Command", "   ")) == [
        'Sheet "Jobs", row 2, column "Command", value "": An EXEC job needs a command.',
    ]


def test_it_reports_an_unregistered_python_task():
    assert problems(broken("Jobs", 5, "Command", "os.system")).__getitem__(0).startswith(
        'Sheet "Jobs", row 5, column "Command", value "os.system": \'os.system\' is not a registered PYTHON task; '
        'known: ')


def test_it_reports_a_job_name_the_model_refuses():
    assert problems(broken("Jobs", 5, "Job", "purge old")) == [
        'Sheet "Jobs", row 5, column "Job", value "purge old": Use 1–100 letters, digits, \'_\', \'.\' or \'-\'.',
    ]


def test_it_reports_an_unknown_concurrency_and_misfire():
    sheets = Sheets.base().set("Jobs", 2, "Concurrency", "sometimes").set("Schedules", 2, "Misfire", "later")
    assert problems(sheets.xlsx()) == [
        'Sheet "Jobs", row 2, column "Concurrency", value "sometimes": Expected one of forbid, allow, replace.',
        'Sheet "Schedules", row 2, column "Misfire", value "later": Expected one of skip, run_once, run_all.',
    ]


def test_it_reports_an_interval_on_a_cron_schedule():
    assert problems(broken("Schedules", 2, "Interval", 60)) == [
        'Sheet "Schedules", row 2, column "Interval", value 60: Interval is only for interval schedules; this one '
        'is cron.',
    ]


def test_it_reports_a_process_without_its_flow():
    assert problems(broken("Jobs", 4, "Flow", None))[0] == \
        'Sheet "Jobs", row 4, column "Flow", value (empty): Process Report needs its flow.'


def test_it_reports_a_flow_name_longer_than_the_model_allows():
    sheets = Sheets.base().set("Jobs", 5, "Flow", "F" * 101).set("Jobs", 5, "Process", "Purge")
    assert problems(sheets.xlsx()) == [
        f'Sheet "Jobs", row 5, column "Flow", value "{"F" * 101}": Ensure this value has at most 100 characters '
        f'(it has 101).',
    ]


def test_it_reports_a_flow_with_two_cycles():
    assert problems(broken("Jobs", 3, "Cycle", "Hourly_1")) == [
        'Sheet "Jobs", row 3, column "Cycle", value "Hourly_1": Flow Nightly of RMS has cycle Nightly on row 2: a flow '
        'has one cycle.',
    ]


def test_it_lists_every_problem_of_a_workbook_at_once():
    sheets = Sheets.base().set("Jobs", 2, "Retries", "x").set("Jobs", 3, "Enabled", "perhaps") \
        .set("Schedules", 2, "Kind", "sometimes")
    assert problems(sheets.xlsx()) == [
        'Sheet "Jobs", row 2, column "Retries", value "x": Expected a whole number.',
        'Sheet "Jobs", row 3, column "Enabled", value "perhaps": Expected Yes or No (also Y/N, True/False, 1/0).',
        'Sheet "Schedules", row 2, column "Kind", value "sometimes": Expected one of once, interval, cron.',
    ]


# --- cells as real workbooks hold them ---------------------------------------------------


def test_it_loads_the_base_workbook():
    plan = loader.load(Sheets.base().xlsx())
    assert plan.applied and plan.problems == [] and plan.warnings == []
    # 1 application, 1 job type, 4 jobs, 1 flow, 3 processes, 2 dependencies, 2 schedules
    assert plan.totals() == {"create": 14}
    extract = JobDefinition.objects.get(name="extract_items")
    assert (extract.process.name, extract.process.flow.name, extract.process.flow.cycle) == ("Extract", "Nightly",
                                                                                             "Nightly")
    assert (extract.max_retries, extract.timeout_seconds, extract.parameters) == (1, 600, "region=EU")
    assert list(Process.objects.get(name="Report").predecessors.values_list("name", flat=True)) == ["Load"]
    assert JobDefinition.objects.get(name="purge_old").process is None
    nightly = Schedule.objects.get(job__name="extract_items")
    assert nightly.next_fire_at is not None and nightly.timezone == "Europe/London"
    interval = Schedule.objects.get(job__name="load_items")
    assert interval.start_at == datetime(2030, 1, 1, 6, 0, tzinfo=UTC) == interval.next_fire_at


def test_it_reads_floats_text_numbers_booleans_and_stray_spaces():
    sheets = Sheets.base()
    sheets.set("Applications", 2, "Name", "  RMS ").set("Applications", 2, "Throttle Limit", 2.0)
    sheets.set("Jobs", 2, "Retries", " 3 ").set("Jobs", 2, "Timeout", 600.0).set("Jobs", 2, "Enabled", True)
    sheets.set("Jobs", 3, "Enabled", " n ").set("Jobs", 4, "Skip On Error", 1).set("Jobs", 5, "Enabled", "FALSE")
    sheets.set("Jobs", 4, "Sequence", "20.0").set("Jobs", 2, "Job Type", "exec")
    assert loader.load(sheets.xlsx()).applied
    assert Application.objects.get().throttle_limit == 2
    extract, load, report, purge = (JobDefinition.objects.get(name=name) for name in
                                    ("extract_items", "load_items", "report_items", "purge_old"))
    assert (extract.max_retries, extract.timeout_seconds, extract.enabled, extract.job_type) == (3, 600, True, "EXEC")
    assert (load.enabled, report.skip_on_error, report.sequence, purge.enabled) == (False, True, 20, False)


def test_it_reads_dates_as_excel_dates_or_iso_text():
    sheets = Sheets.base()
    sheets.set("Schedules", 3, "Start", "2030-01-01T07:00:00+01:00").set("Schedules", 3, "End", "2031-06-30")
    sheets.append("Schedules", Job="report_items", Kind="once", Start=datetime(2031, 7, 1, 9, 30),
                  Timezone="Europe/Paris")
    assert loader.load(sheets.xlsx()).applied
    interval = Schedule.objects.get(job__name="load_items")
    assert interval.start_at == datetime(2030, 1, 1, 6, 0, tzinfo=UTC)
    assert interval.end_at == datetime(2031, 6, 30, 0, 0, tzinfo=UTC)
    once = Schedule.objects.get(job__name="report_items")
    assert once.start_at == datetime(2031, 7, 1, 7, 30, tzinfo=UTC)  # 09:30 in Paris, summer time


def test_it_reads_the_cached_values_of_formulas():
    sheets = Sheets.base().set("Jobs", 2, "Application", '=UPPER("rms")').set("Jobs", 2, "Timeout", "=10*60")
    data = sheets.xlsx(cached={"Jobs!A2": "RMS", "Jobs!M2": 600})
    assert loader.load(data).applied
    assert JobDefinition.objects.get(name="extract_items").timeout_seconds == 600


def test_it_skips_empty_trailing_rows_and_matches_headers_loosely():
    sheets = Sheets.base()
    sheets["Jobs"][0] = [header.upper().replace(" ", "_") for header in sheets["Jobs"][0]]
    sheets["Jobs"] += [[None] * 17, ["  ", None, ""] + [None] * 14, [None] * 17]
    sheets["Applications"][0][2] = "throttlelimit"
    plan = loader.load(sheets.xlsx())
    assert plan.applied and plan.totals()["create"] == 14


def test_it_warns_about_unknown_sheets_and_columns():
    sheets = Sheets.base()
    sheets["Notes"] = [["Remember to check the ledger"]]
    sheets["Jobs"][0].append("Owner")
    sheets["Jobs"][1].append("alice")
    plan = loader.load(sheets.xlsx())
    assert plan.applied
    assert plan.warnings == [
        'Sheet "Jobs": column "Owner" (R) is not part of the layout and is ignored.',
        'Sheet "Notes" is not part of the layout and is ignored (known sheets: Applications, Job Types, Jobs, '
        'Dependencies, Schedules).',
    ]


def test_it_loads_a_workbook_with_only_some_sheets_and_columns():
    loader.load(Sheets.base().xlsx())
    partial = Sheets({"Jobs": [["Job", "Application", "Retries"], ["extract_items", "RMS", 5]]})
    plan = loader.load(partial.xlsx())
    assert [(row.action, row.changes) for row in plan.rows] == [("update", ["Retries"])]
    extract = JobDefinition.objects.get(name="extract_items")
    assert (extract.max_retries, extract.timeout_seconds, extract.process.name) == (5, 600, "Extract")


# --- updates ------------------------------------------------------------------------------


def test_it_updates_only_what_changed_and_says_which_columns():
    loader.load(Sheets.base().xlsx())
    sheets = Sheets.base().set("Jobs", 2, "Command", "echo extract --full").set("Jobs", 4, "Process", "Extract")
    with Writes() as writes:
        plan = loader.load(sheets.xlsx())
    changed = [(row.sheet, row.row, row.action, row.changes) for row in plan.rows if row.action != "unchanged"]
    assert changed == [("Jobs", 2, "update", ["Command"]), ("Jobs", 4, "update", ["Process"])]
    assert len(writes.statements) == 2  # one bulk UPDATE per set of changed columns
    assert JobDefinition.objects.get(name="report_items").process.name == "Extract"


def test_it_updates_a_schedule_and_computes_its_next_fire():
    loader.load(Sheets.base().xlsx())
    before = Schedule.objects.get(job__name="extract_items")
    plan = loader.load(Sheets.base().set("Schedules", 2, "Timezone", "America/New_York").xlsx())
    assert [(row.row, row.changes) for row in plan.rows if row.action == "update"] == [(2, ["Timezone"])]
    after = Schedule.objects.get(pk=before.pk)
    assert after.timezone == "America/New_York"
    assert after.next_fire_at.astimezone(UTC).hour in (6, 7)  # 02:00 in New York
    assert after.next_fire_at == after.upcoming(1, after.next_fire_at - timedelta(seconds=1))[0]


def test_it_pauses_and_reactivates_a_schedule():
    loader.load(Sheets.base().xlsx())
    loader.load(Sheets.base().set("Schedules", 2, "Active", "No").xlsx())
    paused = Schedule.objects.get(job__name="extract_items")
    assert (paused.active, paused.next_fire_at, paused.inactive_reason) == (False, None, loader.INACTIVE_REASON)
    loader.load(Sheets.base().xlsx())
    resumed = Schedule.objects.get(pk=paused.pk)
    assert resumed.active and resumed.next_fire_at is not None and resumed.inactive_reason == ""


def test_it_adds_a_schedule_beside_one_with_another_cron():
    loader.load(Sheets.base().xlsx())
    plan = loader.load(Sheets.base().set("Schedules", 2, "Cron", "0 3 * * *").xlsx())
    assert [row.action for row in plan.rows if row.sheet == "Schedules"] == ["create", "unchanged"]
    assert sorted(Schedule.objects.filter(job__name="extract_items").values_list("cron", flat=True)) == \
        ["0 2 * * *", "0 3 * * *"]


def test_it_removes_a_dependency_marked_disabled():
    loader.load(Sheets.base().xlsx())
    plan = loader.load(Sheets.base().set("Dependencies", 3, "Enabled", "No").xlsx())
    assert [(row.row, row.action, row.note) for row in plan.rows if row.sheet == "Dependencies"] == [
        (2, "unchanged", ""), (3, "update", "dependency removed")]
    assert not Process.objects.get(name="Report").predecessors.exists()


def test_it_moves_a_job_to_another_flow_and_creates_what_it_names():
    loader.load(Sheets.base().xlsx())
    sheets = Sheets.base().set("Jobs", 5, "Cycle", "Weekly").set("Jobs", 5, "Flow", "Weekly") \
        .set("Jobs", 5, "Process", "Housekeeping")
    plan = loader.load(sheets.xlsx())
    assert [(row.sheet, row.action, row.key) for row in plan.rows if row.action != "unchanged"] == [
        ("Jobs", "update", "purge_old"), ("Flows", "create", "RMS/Weekly"), ("Processes", "create",
                                                                            "RMS/Weekly/Housekeeping")]
    assert Flow.objects.get(name="Weekly").cycle == "Weekly"


def test_it_keeps_the_credentials_of_an_existing_job_type():
    job_type = JobType.objects.create(name="EXTTYPE", start_path="/s", status_path="/t", token_url="https://id/token",
                                      client_id="batch")
    job_type.set_client_secret("s3cret")
    job_type.save()
    loader.load(Sheets.base().xlsx())
    stored = JobType.objects.get(name="EXTTYPE")
    assert (stored.token_url, stored.client_id, stored.client_secret_encrypted) == (
        "https://id/token", "batch", job_type.client_secret_encrypted)
    assert (stored.start_path, stored.url) == ("/start", "https://ext.example.com/api")


def test_it_gives_a_new_job_type_the_client_of_a_stored_type_on_the_same_url():
    other = JobType.objects.create(name="OTHER", url="https://ext.example.com/api", start_path="/s",
                                   status_path="/t", token_url="https://id/token", client_id="batch")
    other.set_client_secret("s3cret")
    other.save()
    plan = loader.load(Sheets.base().xlsx())
    assert [row.note for row in plan.rows if row.sheet == "Job Types"] == ["OAuth client of OTHER (same base URL)"]
    new = JobType.objects.get(name="EXTTYPE")
    assert (new.token_url, new.client_id, new.client_secret_encrypted) == (
        "https://id/token", "batch", other.client_secret_encrypted)


def test_it_leaves_a_new_job_type_on_another_url_to_the_installation_defaults():
    JobType.objects.create(name="OTHER", url="https://elsewhere.example.com", start_path="/s", status_path="/t",
                           client_id="batch")
    loader.load(Sheets.base().xlsx())
    new = JobType.objects.get(name="EXTTYPE")
    assert (new.token_url, new.client_id, new.client_secret_encrypted) == ("", "", "")


def test_it_checks_updated_rows_against_the_model_rules_without_a_query_per_row():
    loader.load(Sheets.base().xlsx())
    edited = Sheets.base()
    for row in range(2, 6):
        edited.set("Jobs", row, "Description", f"edited {row}")
    edited.set("Schedules", 2, "Timezone", "America/New_York").set("Schedules", 3, "Repeats", 5)
    with CaptureQueriesContext(connection) as unchanged:
        loader.dry_run(Sheets.base().xlsx())
    with CaptureQueriesContext(connection) as updated:
        plan = loader.dry_run(edited.xlsx())
    assert plan.totals() == {"update": 6, "unchanged": 5}
    assert len(updated.captured_queries) == len(unchanged.captured_queries)


def test_it_refuses_to_apply_a_plan_other_than_the_one_confirmed():
    data = Sheets.base().xlsx()
    fingerprint = loader.dry_run(data).fingerprint()
    Application.objects.create(name="RMS", description="created meanwhile")
    with Writes() as writes, pytest.raises(loader.PlanChanged):
        loader.load(data, expect=fingerprint)
    assert writes.statements == []
