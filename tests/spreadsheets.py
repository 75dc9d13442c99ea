"""Workbooks built in code for the spreadsheet tests: a small valid schedule to break one cell
at a time, cached formula values as Excel writes them, and counting the statements that write."""

from __future__ import annotations

import copy
import io
import re
import zipfile
from datetime import datetime

import openpyxl
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.spreadsheet.layout import APPLICATIONS, DEPENDENCIES, JOB_TYPES, JOBS, SCHEDULES

HEADERS = {sheet.name: [column.header for column in sheet.columns]
           for sheet in (APPLICATIONS, JOB_TYPES, JOBS, DEPENDENCIES, SCHEDULES)}

BASE = {
    "Applications": [["RMS", "Retail merchandising", 2, "Yes"]],
    "Job Types": [["EXTTYPE", "An external system", "https://ext.example.com/api", "/start", "/status", "/restart",
                   "/kill", "/log", "/health", "batch", 5]],
    "Jobs": [
        ["RMS", "Nightly", "Nightly", "Extract", 10, "extract_items", "EXEC", "echo extract", "region=EU",
         "Extract items", "Yes", 1, 600, "forbid", "", "No", 0],
        ["RMS", "Nightly", "Nightly", "Load", 10, "load_items", "EXTTYPE", "", "duration=2", "Load items", "Yes", 0,
         0, "forbid", "items", "No", 0],
        ["RMS", "Nightly", "Nightly", "Report", 10, "report_items", "DUMMY", "", "", "", "Yes", 0, 0, "allow", "",
         "Yes", 120],
        ["RMS", "", "", "", 0, "purge_old", "PYTHON", "purge_executions", "days=30", "", "No", 0, 0, "forbid", "",
         "No", 0],
    ],
    "Dependencies": [
        ["RMS", "Nightly", "Load", "Extract", "Yes"],
        ["RMS", "Nightly", "Report", "Load", "Yes"],
    ],
    "Schedules": [
        ["extract_items", "", "", "cron", "0 2 * * *", None, None, None, 0, "Europe/London", "skip", "Yes", ""],
        ["load_items", "", "", "interval", "", 3600, datetime(2030, 1, 1, 6, 0), None, 0, "UTC", "run_once", "Yes",
         "owner=ops"],
    ],
}


class Sheets(dict):
    """{sheet title: [header, row, ...]}, rows addressed as the worksheet numbers them (header = 1)."""

    @classmethod
    def base(cls) -> "Sheets":
        return cls({name: [list(HEADERS[name]), *copy.deepcopy(rows)] for name, rows in BASE.items()})

    def set(self, sheet: str, row: int, column: str, value: object) -> "Sheets":
        self[sheet][row - 1][self[sheet][0].index(column)] = value
        return self

    def append(self, sheet: str, **values: object) -> int:
        """Add a row from header=value keywords (header spaces as underscores); its row number."""
        header = self[sheet][0]
        row = [None] * len(header)
        for key, value in values.items():
            row[header.index(key.replace("_", " "))] = value
        self[sheet].append(row)
        return len(self[sheet])

    def xlsx(self, cached: dict[str, object] | None = None) -> bytes:
        """The workbook's bytes; `cached` {"Sheet!A2": value} gives formulas the values Excel saved."""
        workbook = openpyxl.Workbook()
        workbook.remove(workbook.active)
        for title, rows in self.items():
            worksheet = workbook.create_sheet(title)
            for row in rows:
                worksheet.append(row)
        buffer = io.BytesIO()
        workbook.save(buffer)
        data = buffer.getvalue()
        return with_cached_values(data, list(self), cached) if cached else data


def with_cached_values(data: bytes, titles: list[str], cached: dict[str, object]) -> bytes:
    """openpyxl saves formulas without results; write the results in, as Excel does."""
    source = zipfile.ZipFile(io.BytesIO(data))
    parts = {name: source.read(name) for name in source.namelist()}
    for where, value in cached.items():
        title, ref = where.split("!")
        name = f"xl/worksheets/sheet{titles.index(title) + 1}.xml"
        kind = ' t="str"' if isinstance(value, str) else ""
        xml, count = re.subn(rf'<c r="{ref}"([^>]*)><f>(.*?)</f><v ?/>',
                             lambda m: f'<c r="{ref}"{m.group(1)}{kind}><f>{m.group(2)}</f><v>{value}</v>',
                             parts[name].decode())
        assert count == 1, f"no formula at {where}"
        parts[name] = xml.encode()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for name, content in parts.items():
            target.writestr(name, content)
    return out.getvalue()


class Writes(CaptureQueriesContext):
    """The INSERT, UPDATE and DELETE statements run inside the block on the configuration: the audit
    trail's one entry for an applied workbook aside."""

    def __init__(self) -> None:
        super().__init__(connection)

    @property
    def statements(self) -> list[str]:
        return [q["sql"] for q in self.captured_queries
                if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")) and "audit_auditentry" not in q["sql"]]


def cells_of(data: bytes) -> dict[str, list[tuple]]:
    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    return {worksheet.title: [tuple(row) for row in worksheet.iter_rows(values_only=True)]
            for worksheet in workbook.worksheets}
