"""The example batch schedule, fixtures/batch_schedule_example.xlsx, that `make run` loads.

Regenerate it with (openpyxl only, no database):

    .venv/bin/python -m apps.spreadsheet.example fixtures/batch_schedule_example.xlsx

Two applications (RMS, merchandising; WMS, warehouse), three custom job types served by the
bundled reference external system (apps/extsys, at the demo's http://127.0.0.1:8000), 60 jobs
in flows and processes with dependencies between the processes, and schedules of every kind:
5-, 6- and 7-field cron, @-aliases, `L`, intervals with and without a start, repeats, an end,
one-time schedules, a paused one, several time zones and misfire policies.

The workbook is written deterministically (fixed document dates), so regenerating it from an
unchanged generator gives the same cells. One-time schedules must lie in the future when the
workbook is loaded: if one has passed, move it here and regenerate.
"""

from __future__ import annotations

import sys
from datetime import datetime

from openpyxl import Workbook
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

from apps.spreadsheet.layout import APPLICATIONS, DEPENDENCIES, JOB_TYPES, JOBS, SCHEDULES, Sheet

EXTSYS = "http://127.0.0.1:8000/extsys"

APPLICATION_ROWS = [
    ["RMS", "Retail Merchandising: foundation data, stock, pricing, sales audit and replenishment.", 6, "Yes"],
    ["WMS", "Warehouse Management: inbound, outbound, inventory control and day end.", 4, "Yes"],
]

# Job Type, Description, URL, Job Start, Job Status, Job Restart, Job Kill, Job Logs, Validation, Scope, Poll Interval
JOB_TYPE_ROWS = [
    ["RMS_BATCH", "RMS batch server (Generic ReST)", EXTSYS, "/jobs/start", "/jobs/status", "/jobs/restart",
     "/jobs/kill", "/jobs/log", "/health", "rms.batch", 2],
    ["WMS_API", "WMS job API: restarts start afresh", EXTSYS, "/jobs/start", "/jobs/status", "", "/jobs/kill",
     "/jobs/log", "/health", "wms.jobs", 3],
    ["FILE_XFER", "Managed file transfer: transfers cannot be killed", EXTSYS, "/jobs/start", "/jobs/status",
     "/jobs/restart", "", "/jobs/log", "/health", "", 2],
]


def _job(app, cycle, flow, process, seq, name, job_type, command="", parameters="", description="", **more):
    """One Jobs row; `more` sets Enabled, Retries, Timeout, Concurrency, Lock Group, Skip On Error, Threshold."""
    return [app, cycle, flow, process, seq, name, job_type, command, parameters, description,
            more.get("enabled", "Yes"), more.get("retries", 0), more.get("timeout", 0),
            more.get("concurrency", "forbid"), more.get("lock_group", ""), more.get("skip_on_error", "No"),
            more.get("threshold", 0)]


def _ext(duration: int, lines: int = 10, extra: str = "") -> str:
    """Parameters for a custom-type job: the extsys dials (duration, lines) and the job's own keys."""
    return f"duration={duration}||lines={lines}" + (f"||{extra}" if extra else "")


def _sh(text: str, seconds: int = 2) -> str:
    return f'echo "{text}"; sleep {seconds}; echo done'


JOB_ROWS = [
    # RMS / Nightly -------------------------------------------------------------------------
    _job("RMS", "Nightly", "Nightly", "Foundation", 10, "rms_fnd_extract_items", "RMS_BATCH", "",
         _ext(4, 20, "source=ITEM_MASTER"), "Extract the item master delta."),
    _job("RMS", "Nightly", "Nightly", "Foundation", 20, "rms_fnd_extract_suppliers", "RMS_BATCH", "",
         _ext(3, 10, "source=SUPPLIERS"), "Extract suppliers and their sites."),
    _job("RMS", "Nightly", "Nightly", "Foundation", 30, "rms_fnd_extract_stores", "RMS_BATCH", "",
         _ext(2, 8, "source=LOCATIONS"), "Extract stores and warehouses."),
    _job("RMS", "Nightly", "Nightly", "Foundation", 40, "rms_fnd_load_hierarchy", "EXEC",
         'echo "Loading merchandise hierarchy for region $BATCH_PARAM_REGION"; sleep 3; echo "1,284 nodes loaded"',
         "region=EU", "Rebuild the merchandise hierarchy.", threshold=120),
    _job("RMS", "Nightly", "Nightly", "Foundation", 50, "rms_fnd_done", "DUMMY", "", "",
         "Checkpoint: foundation data is ready."),
    _job("RMS", "Nightly", "Nightly", "Stock", 10, "rms_stk_receipts", "RMS_BATCH", "",
         _ext(5, 30, "doc_type=RECEIPT"), "Post goods receipts.", retries=2),
    _job("RMS", "Nightly", "Nightly", "Stock", 20, "rms_stk_transfers", "RMS_BATCH", "",
         _ext(4, 20, "doc_type=TRANSFER"), "Post store and warehouse transfers.", retries=2),
    _job("RMS", "Nightly", "Nightly", "Stock", 30, "rms_stk_adjustments", "EXEC",
         _sh("Applying inventory adjustments", 3), "", "Apply inventory adjustments and shrink."),
    _job("RMS", "Nightly", "Nightly", "Stock", 40, "rms_stk_snapshot", "RMS_BATCH", "",
         _ext(6, 40, "snapshot=EOD"), "End-of-day stock position snapshot.", lock_group="stock_ledger",
         timeout=1800),
    _job("RMS", "Nightly", "Nightly", "Pricing", 10, "rms_prc_promotions", "RMS_BATCH", "",
         _ext(3, 15, "event=PROMO"), "Activate and end promotions."),
    _job("RMS", "Nightly", "Nightly", "Pricing", 20, "rms_prc_clearances", "RMS_BATCH", "",
         _ext(3, 15, "event=CLEARANCE||outcome=ERROR||restart_outcome=COMPLETED"),
         "Clearance price changes (fails first: restart it from the console)."),
    _job("RMS", "Nightly", "Nightly", "Pricing", 30, "rms_prc_regular", "RMS_BATCH", "",
         _ext(4, 20, "event=REGULAR"), "Regular price changes."),
    _job("RMS", "Nightly", "Nightly", "Pricing", 40, "rms_prc_push", "FILE_XFER", "",
         _ext(3, 5, "target=POS_PRICES"), "Send the price file to the stores' POS."),
    _job("RMS", "Nightly", "Nightly", "Sales", 10, "rms_sls_upload", "FILE_XFER", "",
         _ext(3, 5, "source=POS_TLOG"), "Receive the stores' transaction logs."),
    _job("RMS", "Nightly", "Nightly", "Sales", 20, "rms_sls_audit", "RMS_BATCH", "",
         _ext(6, 50, "audit=FULL"), "Sales audit: balance tills and flag errors.", threshold=300),
    _job("RMS", "Nightly", "Nightly", "Sales", 30, "rms_sls_tax", "RMS_BATCH", "",
         _ext(2, 10, "jurisdiction=ALL"), "Compute sales tax by jurisdiction."),
    _job("RMS", "Nightly", "Nightly", "Sales", 40, "rms_sls_post", "RMS_BATCH", "",
         _ext(4, 20, "ledger=SALES"), "Post audited sales to the stock ledger.", lock_group="stock_ledger"),
    _job("RMS", "Nightly", "Nightly", "Sales", 50, "rms_sls_totals", "PYTHON", "sleep_seconds", "seconds=3",
         "Roll up sales totals."),
    _job("RMS", "Nightly", "Nightly", "Replenishment", 10, "rms_rpl_calc", "RMS_BATCH", "",
         _ext(8, 40, "method=MIN_MAX"), "Calculate replenishment needs.", timeout=3600, threshold=600),
    _job("RMS", "Nightly", "Nightly", "Replenishment", 20, "rms_rpl_orders", "RMS_BATCH", "",
         _ext(4, 20), "Create purchase orders."),
    _job("RMS", "Nightly", "Nightly", "Replenishment", 30, "rms_rpl_transfers", "RMS_BATCH", "",
         _ext(3, 15), "Create warehouse-to-store transfers."),
    _job("RMS", "Nightly", "Nightly", "Replenishment", 40, "rms_rpl_approve", "EXEC",
         _sh("Auto-approving orders under the buyer limit", 2), "limit=25000", "Approve orders under the limit."),
    _job("RMS", "Nightly", "Nightly", "Reports", 10, "rms_rpt_stock_ledger", "EXEC",
         _sh("Stock ledger report", 4), "", "Stock ledger report.", lock_group="stock_ledger"),
    _job("RMS", "Nightly", "Nightly", "Reports", 20, "rms_rpt_margin", "EXEC",
         'echo "Margin report"; sleep 2; echo "cost data missing for 3 items" >&2; exit 1', "",
         "Margin report; its failure does not stop the flow.", skip_on_error="Yes"),
    _job("RMS", "Nightly", "Nightly", "Reports", 30, "rms_rpt_shrink", "EXEC",
         _sh("Shrink report", 2), "", "Shrink by store and department."),
    _job("RMS", "Nightly", "Nightly", "Reports", 40, "rms_rpt_publish", "FILE_XFER", "",
         _ext(2, 5, "target=BI_SHARE"), "Publish the reports to the BI share."),
    # RMS / Hourly ---------------------------------------------------------------------------
    _job("RMS", "Hourly_1", "Hourly", "Feeds", 10, "rms_hr_pos_trickle", "RMS_BATCH", "",
         _ext(2, 5, "feed=POS"), "Trickle-poll POS sales.", concurrency="allow"),
    _job("RMS", "Hourly_1", "Hourly", "Feeds", 20, "rms_hr_price_changes", "RMS_BATCH", "",
         _ext(2, 5, "feed=PRICE"), "Emergency price changes."),
    _job("RMS", "Hourly_1", "Hourly", "Feeds", 30, "rms_hr_inventory_delta", "EXEC",
         _sh("Inventory delta", 1), "", "Inventory delta for the web shop."),
    _job("RMS", "Hourly_1", "Hourly", "Publish", 10, "rms_hr_publish", "FILE_XFER", "",
         _ext(1, 3, "target=WEBSHOP"), "Send the deltas to the web shop.", concurrency="replace"),
    # RMS / Weekly ---------------------------------------------------------------------------
    _job("RMS", "Weekly", "Weekly", "Archive", 10, "rms_wk_archive_sales", "EXEC",
         _sh("Archiving sales older than 400 days", 3), "days=400", "Archive old sales."),
    _job("RMS", "Weekly", "Weekly", "Archive", 20, "rms_wk_archive_stock", "EXEC",
         _sh("Archiving stock history", 3), "days=400", "Archive old stock history."),
    _job("RMS", "Weekly", "Weekly", "Archive", 30, "rms_wk_rebuild_stats", "RMS_BATCH", "",
         _ext(5, 10), "Rebuild database statistics."),
    _job("RMS", "Weekly", "Weekly", "Forecast", 10, "rms_wk_forecast_export", "FILE_XFER", "",
         _ext(3, 5, "target=FORECASTING"), "Send sales history to forecasting."),
    _job("RMS", "Weekly", "Weekly", "Forecast", 20, "rms_wk_forecast_import", "FILE_XFER", "",
         _ext(3, 5, "source=FORECASTING"), "Receive the weekly forecast."),
    # RMS / ad hoc ---------------------------------------------------------------------------
    _job("RMS", "", "", "", 0, "rms_adhoc_reindex", "EXEC", _sh("Rebuilding search index", 5), "",
         "Rebuild the item search index.", timeout=900),
    _job("RMS", "", "", "", 0, "rms_adhoc_purge_staging", "EXEC", _sh("Purging staging tables", 2), "",
         "Purge staging tables (disabled until the DBA signs off).", enabled="No"),
    _job("RMS", "", "", "", 0, "rms_adhoc_checkpoint", "DUMMY", "", "", "A heartbeat checkpoint."),
    # WMS / Daily ----------------------------------------------------------------------------
    _job("WMS", "Nightly", "Daily", "Inbound", 10, "wms_in_asn_import", "WMS_API", "",
         _ext(3, 10, "doc=ASN"), "Import advance shipping notices."),
    _job("WMS", "Nightly", "Daily", "Inbound", 20, "wms_in_vendor_compliance", "WMS_API", "",
         _ext(2, 8), "Vendor compliance checks."),
    _job("WMS", "Nightly", "Daily", "Inbound", 30, "wms_in_receiving_close", "WMS_API", "",
         _ext(3, 10), "Close received appointments.", retries=1),
    _job("WMS", "Nightly", "Daily", "Inbound", 40, "wms_in_putaway", "WMS_API", "",
         _ext(4, 15), "Generate putaway tasks."),
    _job("WMS", "Nightly", "Daily", "Outbound", 10, "wms_out_wave_plan", "WMS_API", "",
         _ext(4, 15, "waves=AUTO"), "Plan the day's picking waves."),
    _job("WMS", "Nightly", "Daily", "Outbound", 20, "wms_out_pick_release", "WMS_API", "",
         _ext(3, 10), "Release picks to the floor."),
    _job("WMS", "Nightly", "Daily", "Outbound", 30, "wms_out_ship_confirm", "WMS_API", "",
         _ext(3, 10), "Confirm shipped orders."),
    _job("WMS", "Nightly", "Daily", "Outbound", 40, "wms_out_manifest", "FILE_XFER", "",
         _ext(2, 5, "carrier=ALL"), "Send manifests to the carriers."),
    _job("WMS", "Nightly", "Daily", "Inventory", 10, "wms_inv_cycle_count", "WMS_API", "",
         _ext(5, 20), "Create the day's cycle counts."),
    _job("WMS", "Nightly", "Daily", "Inventory", 20, "wms_inv_reconcile", "EXEC",
         _sh("Reconciling WMS and RMS stock", 4), "tolerance=0.5", "Reconcile stock with RMS.", threshold=240),
    _job("WMS", "Nightly", "Daily", "Inventory", 30, "wms_inv_variance_report", "EXEC",
         _sh("Variance report", 2), "", "Stock variance report."),
    _job("WMS", "Nightly", "Daily", "Inventory", 40, "wms_inv_snapshot_export", "FILE_XFER", "",
         _ext(2, 5, "target=RMS"), "Send the stock snapshot to RMS."),
    _job("WMS", "Nightly", "Daily", "Close", 10, "wms_cls_day_end", "WMS_API", "",
         _ext(4, 10), "Warehouse day end.", retries=3, timeout=1200),
    _job("WMS", "Nightly", "Daily", "Close", 20, "wms_cls_kpi_extract", "FILE_XFER", "",
         _ext(2, 5, "target=BI_SHARE"), "Extract warehouse KPIs."),
    _job("WMS", "Nightly", "Daily", "Close", 30, "wms_cls_archive", "EXEC",
         _sh("Archiving closed tasks", 2), "days=90", "Archive closed tasks."),
    # WMS / Intraday -------------------------------------------------------------------------
    _job("WMS", "Hourly_1", "Intraday", "Replen", 10, "wms_id_replen_tasks", "WMS_API", "",
         _ext(2, 5), "Create pick-face replenishment tasks."),
    _job("WMS", "Hourly_1", "Intraday", "Replen", 20, "wms_id_replen_release", "WMS_API", "",
         _ext(1, 3), "Release replenishment tasks."),
    _job("WMS", "Hourly_1", "Intraday", "Labels", 10, "wms_id_label_print", "EXEC",
         _sh("Printing carton labels", 1), "printer=DOCK_1", "Print carton labels."),
    _job("WMS", "Hourly_1", "Intraday", "Labels", 20, "wms_id_label_reprint", "EXEC",
         _sh("Reprinting failed labels", 1), "printer=DOCK_1", "Reprint labels that failed."),
    # WMS / ad hoc ---------------------------------------------------------------------------
    _job("WMS", "", "", "", 0, "wms_adhoc_resync_items", "WMS_API", "", _ext(6, 30, "scope=ALL"),
         "Resynchronise the item master from RMS."),
    _job("WMS", "", "", "", 0, "wms_adhoc_health_probe", "DUMMY", "", "", "Probe: completes at once."),
    _job("WMS", "", "", "", 0, "wms_adhoc_sleep", "PYTHON", "sleep_seconds", "seconds=5", "Sleep five seconds."),
]

# Application, Flow, Process, Predecessor Process, Enabled
DEPENDENCY_ROWS = [
    ["RMS", "Nightly", "Stock", "Foundation", "Yes"],
    ["RMS", "Nightly", "Pricing", "Foundation", "Yes"],
    ["RMS", "Nightly", "Sales", "Stock", "Yes"],
    ["RMS", "Nightly", "Replenishment", "Stock", "Yes"],
    ["RMS", "Nightly", "Replenishment", "Sales", "Yes"],
    ["RMS", "Nightly", "Reports", "Pricing", "Yes"],
    ["RMS", "Nightly", "Reports", "Replenishment", "Yes"],
    ["RMS", "Hourly", "Publish", "Feeds", "Yes"],
    ["RMS", "Weekly", "Forecast", "Archive", "Yes"],
    ["WMS", "Daily", "Outbound", "Inbound", "Yes"],
    ["WMS", "Daily", "Inventory", "Inbound", "Yes"],
    ["WMS", "Daily", "Inventory", "Outbound", "Yes"],
    ["WMS", "Daily", "Close", "Inventory", "Yes"],
    ["WMS", "Intraday", "Labels", "Replen", "Yes"],
]


def _schedule(job, kind, cron="", interval=None, start=None, end=None, repeats=0, tz="UTC", misfire="skip",
              active="Yes", extra=""):
    return [job, "", "", kind, cron, interval, start, end, repeats, tz, misfire, active, extra]


SCHEDULE_ROWS = [
    _schedule("rms_fnd_extract_items", "cron", "0 1 * * *", tz="Europe/London", misfire="run_once",
              extra="Nightly start: the rest of the flow follows its dependencies."),
    _schedule("rms_sls_upload", "cron", "30 2 * * MON-SAT", tz="America/New_York"),
    _schedule("rms_rpt_publish", "cron", "0 6 L * *", tz="Europe/London", extra="Month-end publication."),
    _schedule("rms_hr_pos_trickle", "cron", "@hourly"),
    _schedule("rms_hr_price_changes", "cron", "0 15 * * * ?", tz="Europe/Paris", misfire="run_all"),
    _schedule("rms_hr_inventory_delta", "interval", interval=300, start=datetime(2026, 1, 1, 0, 0),
              tz="Europe/Paris"),
    _schedule("rms_wk_archive_sales", "cron", "0 0 3 ? * SUN *", tz="Europe/London"),
    _schedule("rms_wk_rebuild_stats", "cron", "0 30 4 1 * ? *", tz="Europe/London", active="No",
              extra="Paused while the DBA tunes the statistics job."),
    _schedule("rms_adhoc_reindex", "once", start=datetime(2032, 1, 1, 5, 0), tz="Europe/London",
              extra="One-off reindex after the 2031 year-end freeze."),
    _schedule("rms_adhoc_checkpoint", "interval", interval=60, repeats=10, extra="Ten heartbeats, then done."),
    _schedule("wms_in_asn_import", "interval", interval=900, start=datetime(2026, 1, 5, 6, 0),
              end=datetime(2030, 12, 31, 22, 0), tz="Europe/Berlin"),
    _schedule("wms_id_replen_tasks", "interval", interval=1800, tz="Europe/Berlin", misfire="run_once"),
    _schedule("wms_cls_day_end", "cron", "0 22 * * 1-5", tz="Europe/Berlin", end=datetime(2030, 12, 31, 23, 59)),
    _schedule("wms_inv_cycle_count", "cron", "@daily", tz="Asia/Kolkata"),
    _schedule("wms_adhoc_resync_items", "once", start=datetime(2025, 3, 1, 6, 0), tz="Europe/Berlin",
              active="No", extra="Ran once after the item master migration."),
]


def build() -> Workbook:
    workbook = Workbook()
    workbook.remove(workbook.active)
    for sheet, rows in ((APPLICATIONS, APPLICATION_ROWS), (JOB_TYPES, JOB_TYPE_ROWS), (JOBS, JOB_ROWS),
                        (DEPENDENCIES, DEPENDENCY_ROWS), (SCHEDULES, SCHEDULE_ROWS)):
        _sheet(workbook, sheet, rows)
    workbook.properties.creator = "Batchdesk example"
    workbook.properties.created = workbook.properties.modified = datetime(2026, 1, 1)
    return workbook


def _sheet(workbook: Workbook, sheet: Sheet, rows: list[list]) -> None:
    worksheet = workbook.create_sheet(sheet.name)
    worksheet.append([column.header for column in sheet.columns])
    for cell in worksheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        assert len(row) == len(sheet.columns), (sheet.name, row)
        worksheet.append([None if value == "" else value for value in row])
    worksheet.freeze_panes = "A2"
    for index, column in enumerate(sheet.columns, start=1):
        longest = max(len(str(value if value is not None else "")) for value in
                      [column.header, *(row[index - 1] for row in rows)])
        worksheet.column_dimensions[get_column_letter(index)].width = min(max(longest + 2, 10), 60)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1].strip(), file=sys.stderr)
        return 2
    build().save(argv[1])
    print(f"Wrote {argv[1]}: {len(JOB_ROWS)} jobs, {len(SCHEDULE_ROWS)} schedules.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
