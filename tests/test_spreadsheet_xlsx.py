"""The lean .xlsx reader on what other writers than openpyxl put in a workbook: rich text with
phonetic runs, escaped control characters, cells without references, the 1904 calendar,
custom date formats, error values, strict OOXML and a chart sheet."""

from __future__ import annotations

import io
import zipfile
from datetime import datetime

import pytest

from apps.spreadsheet.reader import WorkbookRefused, read
from apps.spreadsheet.xlsx import MAIN, STRICT, XlsxBook

RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PACKAGE_RELS = "http://schemas.openxmlformats.org/package/2006/relationships"


def workbook(sheet_xml: str, namespace: str = MAIN, date1904: bool = False, title: str = "Jobs") -> bytes:
    calendar = ' date1904="1"' if date1904 else ""
    parts = {
        "[Content_Types].xml": "<Types/>",
        "xl/workbook.xml": f'<workbook xmlns="{namespace}" xmlns:r="{RELS}">'
                           f'<workbookPr{calendar}/>'
                           f'<sheets><sheet name="{title}" sheetId="1" r:id="rId1"/>'
                           f'<sheet name="Chart" sheetId="2" r:id="rId9"/></sheets></workbook>',
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{PACKAGE_RELS}">'
            f'<Relationship Id="rId1" Type="{RELS}/worksheet" Target="worksheets/sheet1.xml"/>'
            f'<Relationship Id="rId9" Type="{RELS}/chartsheet" Target="/xl/chartsheets/c1.xml"/>'
            f'<Relationship Id="rId2" Type="{RELS}/sharedStrings" Target="sharedStrings.xml"/>'
            f'<Relationship Id="rId3" Type="{RELS}/styles" Target="styles.xml"/></Relationships>'
        ),
        "xl/sharedStrings.xml": f'<sst xmlns="{namespace}"><si><t>Job</t></si><si><t>Start</t></si>'
                                f'<si><r><rPr><b/></rPr><t>night</t></r><r><t xml:space="preserve">ly_run</t></r>'
                                f'<rPh sb="0" eb="1"><t>ナイト</t></rPh></si>'
                                f'<si><t>echo a_x000D_</t></si></sst>',
        "xl/styles.xml": f'<styleSheet xmlns="{namespace}"><numFmts count="1">'
                         f'<numFmt numFmtId="164" formatCode="dd/mm/yyyy\\ hh:mm"/></numFmts>'
                         f'<cellStyleXfs count="1"><xf numFmtId="14"/></cellStyleXfs>'
                         f'<cellXfs count="3"><xf numFmtId="0"/><xf numFmtId="164"/><xf numFmtId="14"/></cellXfs>'
                         f'</styleSheet>',
        "xl/worksheets/sheet1.xml": f'<worksheet xmlns="{namespace}"><dimension ref="A1:C4"/>'
                                    f'<sheetData>{sheet_xml}</sheetData></worksheet>',
        "xl/chartsheets/c1.xml": "<chartsheet/>",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in parts.items():
            archive.writestr(name, content)
    return buffer.getvalue()


SHEET = (
    '<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>'
    '<row r="3"><c t="s"><v>2</v></c><c s="1"><v>45658.25</v></c><c t="e"><v>#N/A</v></c></row>'
    '<row r="4"><c r="A4" t="s"><v>3</v></c><c r="B4" s="2"><v>1</v></c><c r="C4" t="b"><v>1</v></c></row>'
)


def rows(data: bytes) -> list[tuple[int, list]]:
    book = XlsxBook(zipfile.ZipFile(io.BytesIO(data)))
    return list(book.rows("Jobs"))


def test_it_reads_rich_text_dates_errors_and_cells_without_references():
    assert rows(workbook(SHEET)) == [
        (1, ["Job", "Start"]),
        (3, ["nightly_run", datetime(2025, 1, 1, 6, 0), "#N/A"]),
        (4, ["echo a\r", datetime(1900, 1, 1, 0, 0), True]),
    ]


def test_it_reads_dates_on_the_1904_calendar():
    assert rows(workbook(SHEET, date1904=True))[1][1][1] == datetime(2029, 1, 2, 6, 0)


def test_it_reads_strict_open_xml():
    assert rows(workbook(SHEET, namespace=STRICT))[1][1][0] == "nightly_run"


def test_it_reads_a_whole_sheet_and_warns_about_a_chart_sheet():
    sheet = ('<row r="1"><c r="A1" t="inlineStr"><is><t>Application</t></is></c>'
             '<c r="B1" t="inlineStr"><is><t>Job</t></is></c></row>'
             '<row r="2"><c r="A2" t="inlineStr"><is><t> RMS </t></is></c>'
             '<c r="B2" t="inlineStr"><is><r><t>nightly</t></r><r><t>_load</t></r></is></c></row>')
    book = read(workbook(sheet))
    assert [(row.number, row.cells) for row in book.rows(book.sheets["Jobs"].sheet)] == [
        (2, {"application": "RMS", "name": "nightly_load"})]
    assert book.warnings == [
        'Sheet "Chart" is not part of the layout and is ignored (known sheets: Applications, Job Types, Jobs, '
        'Dependencies, Schedules).']


def test_it_refuses_a_damaged_sheet():
    with pytest.raises(WorkbookRefused, match='^Sheet "Jobs" could not be read: ParseError'):
        read(workbook('<row r="1"><c r="A1" t="s"><v>0</v></c>'))
