"""Batch schedule spreadsheet at scale: a generated workbook of 10,000 jobs.

    .venv/bin/python bench/spreadsheet_scale.py [--jobs 10000]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/batchdesk .venv/bin/python bench/spreadsheet_scale.py

It makes a scratch database the way the test suite does (Django's test-database creation:
a fresh SQLite file under var/, or test_<name>_<run> on PostgreSQL, dropped at the end),
generates the workbook in a child process (so its memory does not count), then measures in
this process, one after the other:

- dry run: read + plan, nothing written;
- apply: `load()` of the same file into the empty database (read + plan + write, one transaction);
- peak RSS of this process (ru_maxrss) after both, beside its size before them;
- a second, unchanged apply, with the INSERT/UPDATE/DELETE statements it ran (must be 0);
- export, and whether export → load → export gives the same cells.

Targets: dry run + apply <= 15 s, peak RSS <= 500 MB, unchanged re-apply <= 5 s with zero
writes. It prints the figures and exits 0 whether or not they are met.

The workbook: 10 applications × 5 flows × 20 processes × 10 jobs; in each flow every process
waits for the one before (950 dependencies); one schedule per five jobs, cron, interval and
once in turn, across four time zones; two custom job types; the four kinds of job.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_SECONDS, TARGET_RSS_MB, TARGET_REAPPLY_SECONDS = 15.0, 500.0, 5.0
ZONES = ["UTC", "Europe/London", "America/New_York", "Asia/Kolkata"]


def generate(path: Path, jobs: int) -> None:
    """Write the workbook (write-only mode: rows stream to disk)."""
    from datetime import datetime

    from openpyxl import Workbook

    from apps.spreadsheet.layout import APPLICATIONS, DEPENDENCIES, JOB_TYPES, JOBS, SCHEDULES

    per_process, processes, flows = 10, 20, 5
    apps = max(jobs // (per_process * processes * flows), 1)
    workbook = Workbook(write_only=True)
    sheets = {sheet.name: workbook.create_sheet(sheet.name) for sheet in (APPLICATIONS, JOB_TYPES, JOBS, DEPENDENCIES,
                                                                           SCHEDULES)}
    for sheet in (APPLICATIONS, JOB_TYPES, JOBS, DEPENDENCIES, SCHEDULES):
        sheets[sheet.name].append([column.header for column in sheet.columns])
    for name in ("ERP_BATCH", "FILE_XFER"):
        sheets["Job Types"].append([name, f"{name} system", "https://ext.example.com/api", "/jobs/start",
                                    "/jobs/status", "/jobs/restart", "/jobs/kill", "/jobs/log", "/health", "", 5])
    kinds = ["EXEC", "ERP_BATCH", "DUMMY", "FILE_XFER", "PYTHON"]
    count = 0
    for a in range(apps):
        app = f"APP{a:02d}"
        sheets["Applications"].append([app, f"Application {a}", 10, "Yes"])
        for f in range(flows):
            flow = f"Flow{f}"
            for p in range(processes):
                process = f"P{p:02d}"
                if p:
                    sheets["Dependencies"].append([app, flow, process, f"P{p - 1:02d}", "Yes"])
                for j in range(per_process):
                    name = f"{app.lower()}_f{f}_p{p:02d}_j{j}"
                    kind = kinds[count % len(kinds)]
                    command = {"EXEC": f"echo {name}; sleep 1", "PYTHON": "sleep_seconds"}.get(kind, "")
                    sheets["Jobs"].append([app, "Nightly" if f < 3 else "Hourly_1", flow, process, (j + 1) * 10, name,
                                           kind, command, f"batch={count}||region=EU", f"Job {count}", "Yes",
                                           count % 3, 3600 if j == 0 else 0, "forbid", "", "No", 0])
                    if count % 5 == 0:
                        zone = ZONES[(count // 5) % len(ZONES)]
                        shape = (count // 5) % 3
                        if shape == 0:
                            row = [name, None, None, "cron", f"{count % 60} {count % 24} * * *", None, None, None]
                        elif shape == 1:
                            row = [name, None, None, "interval", None, 300 + count % 600, datetime(2026, 1, 1), None]
                        else:
                            row = [name, None, None, "once", None, None, datetime(2031, 1 + count % 12, 1, 6), None]
                        sheets["Schedules"].append(row + [0, zone, "skip", "Yes", ""])
                    count += 1
    workbook.save(path)


def timed(function, *args) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--generate", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(Path(args.generate), args.jobs)
        return 0

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ["BATCHDESK_TEST_RUN"] = f"bench-spreadsheet-{os.getpid()}"
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    path = Path(settings.VAR_DIR) / f"bench-spreadsheet-{os.getpid()}.xlsx"
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--jobs", str(args.jobs), "--generate", str(path)], check=True)
    generated = time.perf_counter() - started
    data = path.read_bytes()
    settings.SPREADSHEET_MAX_ROWS = max(settings.SPREADSHEET_MAX_ROWS, args.jobs * 2)

    connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        from apps.spreadsheet import exporter, loader
        from tests.spreadsheets import cells_of

        engine = connection.vendor
        load_average = os.getloadavg()[0]
        before = rss_mb()
        (plan, dry, dry_cpu) = timed(loader.dry_run, data)
        assert plan.ok, plan.problems[:5]
        (applied, apply, apply_cpu) = timed(loader.load, data)
        peak = rss_mb()
        assert applied.applied
        with CaptureQueriesContext(connection) as queries:
            (again, reapply, reapply_cpu) = timed(loader.load, data)
        writes = [q for q in queries.captured_queries
                  if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
        t0 = time.perf_counter()
        exported = exporter.export_bytes()
        export = time.perf_counter() - t0
        loader.load(exported)
        same = cells_of(exporter.export_bytes()) == cells_of(exported)
    finally:
        connection.creation.destroy_test_db(connection.settings_dict["NAME"], verbosity=0)
        path.unlink(missing_ok=True)

    totals = plan.totals()
    ok = lambda met: "ok" if met else "MISSED"  # noqa: E731
    print(f"Batch schedule spreadsheet, {args.jobs:,} jobs, {engine} "
          f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average {load_average:.1f} at the start)")
    print(f"  workbook            {len(data) / 1024 / 1024:.1f} MB, {sum(totals.values()):,} rows planned "
          f"({', '.join(f'{n:,} {a}' for a, n in totals.items())}); generated in {generated:.1f} s")
    print(f"  dry run             {dry:6.2f} s   (CPU {dry_cpu:.2f} s)")
    print(f"  apply               {apply:6.2f} s   (CPU {apply_cpu:.2f} s; {applied.writes:,} rows written)")
    print(f"  dry run + apply     {dry + apply:6.2f} s   "
          f"target <= {TARGET_SECONDS:.0f} s: {ok(dry + apply <= TARGET_SECONDS)}")
    print(f"  peak RSS            {peak:6.0f} MB  (before the dry run: {before:.0f} MB)   "
          f"target <= {TARGET_RSS_MB:.0f} MB: {ok(peak <= TARGET_RSS_MB)}")
    print(f"  unchanged re-apply  {reapply:6.2f} s   (CPU {reapply_cpu:.2f} s) writes: {len(writes)} statements, "
          f"{again.writes} rows   "
          f"target <= {TARGET_REAPPLY_SECONDS:.0f} s, 0 writes: {ok(reapply <= TARGET_REAPPLY_SECONDS and not writes)}")
    print(f"  export              {export:6.2f} s   export → load → export identical: {same}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
