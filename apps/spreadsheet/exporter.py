"""Writing the stored configuration as a batch schedule workbook, in the layout the loader
reads (SPEC §6), so that export → load changes nothing.

Never a credential: the Job Types sheet has no token URL, client id or secret column.
Start and End are written as Excel dates on the schedule's own wall clock, as an operator
would type them; where that would lose the instant (a time in a repeated daylight-saving
hour, or sub-second precision) they are ISO text with the UTC offset instead.
"""

from __future__ import annotations

import io
import zoneinfo
from datetime import datetime
from typing import IO, Iterable

from django.db.models import Prefetch
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from apps.catalog.models import Application, JobDefinition, JobType, Process
from apps.scheduling.models import Kind, Schedule
from apps.spreadsheet.layout import APPLICATIONS, DEPENDENCIES, JOB_TYPES, JOBS, SCHEDULES, Sheet

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
WIDTHS = {"Description": 40, "Command": 50, "Parameters": 30, "URL": 36, "Cron": 20, "Start": 20, "End": 20,
          "Extra": 30, "Job": 28, "Predecessor Process": 22}


def export(target: IO[bytes]) -> dict[str, int]:
    """Write the workbook to `target`; returns the rows written per sheet."""
    workbook = Workbook(write_only=True)
    counts = {}
    for sheet, rows in ((APPLICATIONS, _applications()), (JOB_TYPES, _job_types()), (JOBS, _jobs()),
                        (DEPENDENCIES, _dependencies()), (SCHEDULES, _schedules())):
        counts[sheet.name] = _write_sheet(workbook, sheet, rows)
    workbook.save(target)
    return counts


def export_bytes() -> bytes:
    buffer = io.BytesIO()
    export(buffer)
    return buffer.getvalue()


def _write_sheet(workbook: Workbook, sheet: Sheet, rows: Iterable[list]) -> int:
    worksheet = workbook.create_sheet(sheet.name)
    worksheet.freeze_panes = "A2"
    for index, column in enumerate(sheet.columns, start=1):
        worksheet.column_dimensions[get_column_letter(index)].width = WIDTHS.get(column.header, 16)
    header = []
    for column in sheet.columns:
        cell = WriteOnlyCell(worksheet, value=column.header)
        cell.font = Font(bold=True)
        header.append(cell)
    worksheet.append(header)
    count = 0
    for row in rows:
        worksheet.append([_cell(worksheet, value) for value in row])
        count += 1
    return count


def _cell(worksheet, value: object) -> object:
    if not isinstance(value, str):
        return value
    value = ILLEGAL_CHARACTERS_RE.sub("", value)
    if value.startswith("="):
        # Text, never a formula: a command or description that starts with "=" stays as typed.
        cell = WriteOnlyCell(worksheet, value=value)
        cell.data_type = "s"
        return cell
    return value


def _yes_no(value: bool) -> str:
    return "Yes" if value else "No"


def _applications():
    for app in Application.objects.order_by("name"):
        yield [app.name, app.description, app.throttle_limit, _yes_no(app.enabled)]


def _job_types():
    for t in JobType.objects.order_by("name"):
        yield [t.name, t.description, t.url, t.start_path, t.status_path, t.restart_path, t.kill_path, t.log_path,
               t.check_path, t.scope, t.poll_interval_seconds]


def _jobs():
    jobs = JobDefinition.objects.select_related("application", "process__flow", "custom_type")

    def order(job: JobDefinition) -> tuple:
        flow = job.process.flow.name if job.process else ""
        return (job.application.name, flow, job.process.name if job.process else "", job.sequence, job.name)

    for job in sorted(jobs, key=order):
        flow = job.process.flow if job.process else None
        yield [job.application.name, flow.cycle if flow else "", flow.name if flow else "",
               job.process.name if job.process else "", job.sequence, job.name, job.job_type, job.command,
               job.parameters, job.description, _yes_no(job.enabled), job.max_retries, job.timeout_seconds,
               job.concurrency, job.lock_group, _yes_no(job.skip_on_error), job.threshold_runtime_seconds]


def _dependencies():
    processes = Process.objects.select_related("flow__application").prefetch_related(
        Prefetch("predecessors", queryset=Process.objects.order_by("name"))
    )
    rows = [[p.flow.application.name, p.flow.name, p.name, predecessor.name, "Yes"]
            for p in processes for predecessor in p.predecessors.all()]
    return sorted(rows)


def _schedules():
    schedules = Schedule.objects.select_related("job", "flow__application")

    def order(schedule: Schedule) -> tuple:
        target = schedule.job.name if schedule.job_id else f"{schedule.flow.application.name}/{schedule.flow.name}"
        return (schedule.job_id is None, target, schedule.pk)

    for s in sorted(schedules, key=order):
        job, flow, app = (s.job.name, "", "") if s.job_id else ("", s.flow.name, s.flow.application.name)
        # A cron or interval left over from an earlier kind is not part of the schedule: not written.
        cron = s.cron if s.kind == Kind.CRON else ""
        interval = s.interval_seconds if s.kind == Kind.INTERVAL else None
        yield [job, flow, app, s.kind, cron, interval, _local(s.start_at, s.timezone),
               _local(s.end_at, s.timezone), s.repeats, s.timezone, s.misfire, _yes_no(s.active), s.extra]


def _local(moment: datetime | None, tz: str) -> datetime | str | None:
    """The wall time in `tz` as a naive datetime, or ISO text where the wall time is not enough."""
    if moment is None:
        return None
    try:
        zone = zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return moment.isoformat()
    local = moment.astimezone(zone)
    wall = local.replace(tzinfo=None)
    if local.microsecond or wall.replace(tzinfo=zone, fold=0).timestamp() != moment.timestamp():
        return local.isoformat()
    return wall
