"""The batch schedule workbook's layout (SPEC §6): its sheets and columns, in the order the
exporter writes them. The reader matches headers and sheet names loosely (`normalize`)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    required: bool = False


@dataclass(frozen=True)
class Sheet:
    name: str
    columns: tuple[Column, ...]

    def column(self, key: str) -> Column:
        return next(column for column in self.columns if column.key == key)

    def header(self, key: str) -> str:
        return self.column(key).header


def normalize(text: str) -> str:
    """A header or sheet name as compared: case, spaces, underscores and a trailing `*` ignored."""
    return "".join(str(text).split()).replace("_", "").rstrip("*").lower()


APPLICATIONS = Sheet("Applications", (
    Column("Name", "name", required=True),
    Column("Description", "description"),
    Column("Throttle Limit", "throttle_limit"),
    Column("Enabled", "enabled"),
))

# Never token_url, client_id or client_secret: credentials do not travel in workbooks.
JOB_TYPES = Sheet("Job Types", (
    Column("Job Type", "name", required=True),
    Column("Description", "description"),
    Column("URL", "url"),
    Column("Job Start", "start_path", required=True),
    Column("Job Status", "status_path", required=True),
    Column("Job Restart", "restart_path"),
    Column("Job Kill", "kill_path"),
    Column("Job Logs", "log_path"),
    Column("Validation", "check_path"),
    Column("Scope", "scope"),
    Column("Poll Interval", "poll_interval_seconds"),
))

JOBS = Sheet("Jobs", (
    Column("Application", "application", required=True),
    Column("Cycle", "cycle"),
    Column("Flow", "flow"),
    Column("Process", "process"),
    Column("Sequence", "sequence"),
    Column("Job", "name", required=True),
    Column("Job Type", "job_type"),
    Column("Command", "command"),
    Column("Parameters", "parameters"),
    Column("Description", "description"),
    Column("Enabled", "enabled"),
    Column("Retries", "max_retries"),
    Column("Timeout", "timeout_seconds"),
    Column("Concurrency", "concurrency"),
    Column("Lock Group", "lock_group"),
    Column("Skip On Error", "skip_on_error"),
    Column("Threshold Runtime", "threshold_runtime_seconds"),
))

DEPENDENCIES = Sheet("Dependencies", (
    Column("Application", "application", required=True),
    Column("Flow", "flow", required=True),
    Column("Process", "process", required=True),
    Column("Predecessor Process", "predecessor", required=True),
    Column("Enabled", "enabled"),
))

# `Job` or `Flow` (one of them) is required: checked per row, not as a column.
SCHEDULES = Sheet("Schedules", (
    Column("Job", "job"),
    Column("Flow", "flow"),
    Column("Application", "application"),
    Column("Kind", "kind", required=True),
    Column("Cron", "cron"),
    Column("Interval", "interval_seconds"),
    Column("Start", "start_at"),
    Column("End", "end_at"),
    Column("Repeats", "repeats"),
    Column("Timezone", "timezone"),
    Column("Misfire", "misfire"),
    Column("Active", "active"),
    Column("Extra", "extra"),
))

SHEETS = (APPLICATIONS, JOB_TYPES, JOBS, DEPENDENCIES, SCHEDULES)
