"""Reading a batch schedule workbook: refuse what is not one, then each known sheet's rows.

Rows stream from the sheet XML (apps/spreadsheet/xlsx.py: values as openpyxl's read-only,
`data_only=True` mode gives them, so a formula gives its cached value, as Excel shows it),
never a cell tree in memory. Text is stripped; blank text is an empty cell; a row with no
value in a known column is skipped (empty trailing rows, spacer rows).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from typing import Callable, Generator, TypeVar

from django.conf import settings

from apps.spreadsheet.layout import SCHEDULES, SHEETS, Sheet, normalize
from apps.spreadsheet.xlsx import XlsxBook

# Excel writes a password-protected workbook as an OLE compound file (CFB), not a zip: the
# encrypted package and its EncryptionInfo stream inside. Excel 97-2003 .xls files are CFB too.
CFB_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ENCRYPTION_STREAM = "EncryptionInfo".encode("utf-16-le")
# A zip may expand a thousandfold; past this multiple of the size limit it is refused unread.
EXPANSION_LIMIT = 20
PROGRESS_EVERY = 1000

Progress = Callable[[str, int, "int | None"], None]
# Long operations are generators of progress events (stage, rows done, rows in all or None) that
# return their result: a streaming page shows the events as they come, `drive` runs them plainly.
Event = tuple[str, int, "int | None"]
T = TypeVar("T")
Steps = Generator[Event, None, T]


def drive(steps: Steps[T], progress: Progress | None = None) -> T:
    """Run `steps` to the end, handing each progress event to `progress`; its result."""
    while True:
        try:
            event = next(steps)
        except StopIteration as done:
            return done.value
        if progress is not None:
            progress(*event)


class WorkbookRefused(Exception):
    """The file as a whole cannot be loaded: the message says why, for the operator."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the workbook, where it is and the value found there."""

    sheet: str
    row: int | None
    column: str | None
    value: object
    message: str

    def __str__(self) -> str:
        where = f'Sheet "{self.sheet}"'
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f', column "{self.column}", value {show(self.value)}'
        return f"{where}: {self.message}"


def show(value: object) -> str:
    if value is None:
        return "(empty)"
    if isinstance(value, str):
        return f'"{value}"'
    if hasattr(value, "isoformat"):
        return value.isoformat(sep=" ") if hasattr(value, "hour") else value.isoformat()
    return str(value)


@dataclass
class Row:
    number: int
    cells: dict[str, object]

    def get(self, key: str) -> object:
        return self.cells.get(key)


@dataclass
class SheetData:
    sheet: Sheet
    title: str
    present: frozenset[str]
    rows: list[Row] = field(default_factory=list)


@dataclass
class Book:
    sheets: dict[str, SheetData]
    warnings: list[str]
    problems: list[Problem]
    sha256: str

    def rows(self, sheet: Sheet) -> list[Row]:
        data = self.sheets.get(sheet.name)
        return data.rows if data else []

    def has_column(self, sheet: Sheet, key: str) -> bool:
        data = self.sheets.get(sheet.name)
        return bool(data and key in data.present)

    @property
    def row_count(self) -> int:
        return sum(len(data.rows) for data in self.sheets.values())


def read(data: bytes, progress: Progress | None = None) -> Book:
    """The workbook's known sheets, or WorkbookRefused."""
    return drive(read_steps(data), progress)


def read_steps(data: bytes) -> Steps[Book]:
    """`read`, as progress events; limits from SPREADSHEET_MAX_BYTES and SPREADSHEET_MAX_ROWS."""
    max_bytes, max_rows = settings.SPREADSHEET_MAX_BYTES, settings.SPREADSHEET_MAX_ROWS
    check_size(len(data), max_bytes)
    workbook = _open(data, max_bytes)
    try:
        return (yield from _read_sheets(workbook, hashlib.sha256(data).hexdigest(), max_rows))
    finally:
        workbook.archive.close()


def check_size(size: int, max_bytes: int | None = None) -> None:
    max_bytes = settings.SPREADSHEET_MAX_BYTES if max_bytes is None else max_bytes
    if size > max_bytes:
        raise WorkbookRefused(
            f"The file is {_megabytes(size)}, over the limit of {_megabytes(max_bytes)} (SPREADSHEET_MAX_BYTES)."
        )
    if size == 0:
        raise WorkbookRefused("The file is empty: it is not an .xlsx workbook.")


def _megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB" if size >= 100 * 1024 else f"{size:,} bytes"


def _open(data: bytes, max_bytes: int) -> XlsxBook:
    if data.startswith(CFB_MAGIC):
        if ENCRYPTION_STREAM in data:
            raise WorkbookRefused("The workbook is encrypted (password-protected): remove the password in Excel "
                                  "(File › Info › Protect Workbook) and upload it again.")
        raise WorkbookRefused("The file is an Excel 97-2003 .xls workbook (or another OLE file), not an .xlsx: "
                              "save it as an Excel Workbook (.xlsx).")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
        expanded = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, ValueError, OSError):
        raise WorkbookRefused("The file is not an .xlsx workbook (an .xlsx file is a zip archive; this is not one).") \
            from None
    if "xl/workbook.xml" not in names:
        raise WorkbookRefused("The file is a zip archive but not an .xlsx workbook (it has no xl/workbook.xml).")
    if expanded > EXPANSION_LIMIT * max_bytes:
        raise WorkbookRefused(f"The workbook expands to {_megabytes(expanded)} when unzipped, over "
                              f"{EXPANSION_LIMIT} times the size limit: it is refused.")
    try:
        return XlsxBook(archive)
    except Exception as exc:  # a missing part, malformed XML, a damaged zip member
        raise WorkbookRefused(f"The workbook could not be read: {type(exc).__name__}: {exc}") from None


def _read_sheets(workbook, sha256: str, max_rows: int) -> Steps[Book]:
    by_name = {normalize(sheet.name): sheet for sheet in SHEETS}
    book = Book(sheets={}, warnings=[], problems=[], sha256=sha256)
    counted = 0
    for title in workbook.sheetnames:
        sheet = by_name.get(normalize(title))
        if sheet is None:
            book.warnings.append(f'Sheet "{title}" is not part of the layout and is ignored '
                                 f'(known sheets: {", ".join(s.name for s in SHEETS)}).')
            continue
        if sheet.name in book.sheets:
            book.warnings.append(f'Sheet "{title}" is ignored: sheet "{book.sheets[sheet.name].title}" '
                                 f'is already read as {sheet.name}.')
            continue
        if not workbook.is_worksheet(title):
            book.warnings.append(f'Sheet "{title}" is a chart sheet, not a table, and is ignored.')
            continue
        try:
            data = yield from _read_sheet(book, sheet, title, workbook, max_rows, counted)
        except (KeyError, ValueError, IndexError, SyntaxError) as exc:  # ParseError is a SyntaxError
            raise WorkbookRefused(f'Sheet "{title}" could not be read: {type(exc).__name__}: {exc}') from None
        if data is not None:
            book.sheets[sheet.name] = data
            counted += len(data.rows)
    return book


def _read_sheet(book: Book, sheet: Sheet, title: str, workbook: XlsxBook, max_rows: int, counted: int) -> Steps:
    rows = workbook.rows(title)
    number, header = next(rows, (0, []))
    if number != 1 or all(_clean(cell) is None for cell in header):
        book.warnings.append(f'Sheet "{title}" has no header row and is ignored.')
        return None
    columns = _columns(book, sheet, title, header)
    data = SheetData(sheet=sheet, title=title, present=frozenset(key for _, key in columns))
    total = workbook.dimension - 1 if workbook.dimension else None
    # Formatted but empty rows count towards a looser limit, so that they cannot stall the reader.
    rows_left = max_rows - counted
    raw_limit = 10 * max_rows + 1000
    for stored, (number, values) in enumerate(rows, start=1):
        cells = {key: _clean(values[index]) for index, key in columns if index < len(values)}
        if any(value is not None for value in cells.values()):
            data.rows.append(Row(number, cells))
            if len(data.rows) > rows_left:
                raise WorkbookRefused(f"The workbook has too many rows: over {max_rows:,} "
                                      f"(SPREADSHEET_MAX_ROWS), reached on sheet \"{title}\" row {number}.")
        if stored > raw_limit:
            raise WorkbookRefused(f'The workbook has too many rows: sheet "{title}" goes on past row {number:,}.')
        if stored % PROGRESS_EVERY == 0:
            yield (f"Reading {sheet.name}", stored, total)
    yield (f"Reading {sheet.name}", len(data.rows), len(data.rows))
    return data


def _columns(book: Book, sheet: Sheet, title: str, header: list) -> list[tuple[int, str]]:
    """(index, column key) of the known columns; unknown ones are warnings, a missing one a problem."""
    known = {normalize(column.header): column for column in sheet.columns}
    found: dict[str, int] = {}
    for index, cell in enumerate(header):
        name = _clean(cell)
        if name is None:
            continue
        column = known.get(normalize(str(name)))
        if column is None:
            book.warnings.append(f'Sheet "{title}": column "{name}" ({_letter(index)}) is not part of the layout '
                                 f'and is ignored.')
        elif column.key in found:
            book.problems.append(Problem(sheet.name, 1, column.header, name,
                                         f"This column appears twice ({_letter(found[column.key])} and "
                                         f"{_letter(index)})."))
        else:
            found[column.key] = index
    for column in sheet.columns:
        if column.required and column.key not in found:
            message = f'The required column "{column.header}" is missing.'
            book.problems.append(Problem(sheet.name, 1, None, None, message))
    if sheet is SCHEDULES and "job" not in found and "flow" not in found:
        book.problems.append(Problem(sheet.name, 1, None, None, 'The sheet needs a "Job" or a "Flow" column.'))
    return [(index, key) for key, index in found.items()]


def _letter(index: int) -> str:
    from openpyxl.utils import get_column_letter

    return get_column_letter(index + 1)


def _clean(value: object) -> object:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value
