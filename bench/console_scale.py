"""The console on a big history: server time and query count of its pages over 1,000,000
executions in PostgreSQL (DESIGN.md "The console on a big history").

    .venv/bin/python bench/console_scale.py [--executions 1000000] [--small 10000] [--n 15]

It creates a scratch PostgreSQL database (dropped at the end), migrates it, loads 1,000 jobs in
10 applications and --small (100,000) executions over the last 30 days (written by one INSERT … SELECT;
a few of today's running, waiting and held, one with a 1 MB log), measures every page, grows the
history to --executions and measures again. Each page is requested --n times in this process
through Django's test client as an administrator (the whole request: middleware, view, template,
every query; no network), after a warm-up; it prints p50 and max server time and the query count
at both sizes, beside the target (≤ 300 ms, and the same query count at both sizes).

Not measured yet: the flow run page of 1,000 jobs and the 10,000 flow runs (the flow run pages are
not built yet).

The database is BENCH_POSTGRES_URL / --postgres-url (its name must contain "bench": it is dropped);
never DATABASE_URL.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the script's own directory is bench/

from bench.harness import add_scratch_options, refuse_unless_scratch, scratch_backend, services_unreachable  # noqa: E402

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/batchdesk_console_bench"
TARGET_MS = 300.0
JOBS, APPLICATIONS, DAYS = 1000, 10, 30
LOG_BYTES = 1024 * 1024


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    unreachable = services_unreachable(args.postgres_url, args.redis_url)
    if unreachable:
        print(f"skipped: {unreachable}", file=sys.stderr)
        return 1
    with scratch_backend("postgres", args, name="console_scale", queue_name="batchdesk-console-bench"):
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
        world = build_world()
        rows = {}
        grow_to(args.small)
        rows["small"] = measure(world, args.n, args.small, args.slow)
        grow_to(args.executions)
        rows["large"] = measure(world, args.n, args.executions, args.slow)
    report(rows, args)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000, help="The first, smaller history measured.")
    parser.add_argument("--n", type=int, default=15, help="Requests per page and size.")
    parser.add_argument("--slow", action="store_true", help="Print the slowest queries of the slower pages.")
    add_scratch_options(parser, postgres_url=DEFAULT_POSTGRES_URL, redis_url="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    refuse_unless_scratch(parser, args)
    return args


def build_world() -> dict:
    """Applications, jobs, an administrator; a few of today's executions in every live state and
    one that completed with a 1 MB log."""
    from django.contrib.auth.models import Group, User
    from django.utils import timezone

    from apps.catalog.models import Application, Concurrency, JobDefinition
    from apps.catalog.roles import ADMINISTRATOR
    from apps.engine.models import Execution, Status

    apps = Application.objects.bulk_create([Application(name=f"APP{i:02d}") for i in range(APPLICATIONS)])
    JobDefinition.objects.bulk_create([
        JobDefinition(name=f"job_{i:04d}", application=apps[i % APPLICATIONS], kind="DUMMY",
                      concurrency=Concurrency.ALLOW, average_runtime_seconds=30.0 + i % 50, completed_runs=10)
        for i in range(JOBS)])
    admin = User.objects.create_user("bench", password="bench-password", is_staff=True)
    admin.groups.add(Group.objects.get(name=ADMINISTRATOR))
    job = JobDefinition.objects.get(name="job_0007")
    now = timezone.now()
    line = "".join(f"{i:07d} the quick brown fox jumps over the lazy dog\n" for i in range(20))
    log = (line * (LOG_BYTES // len(line) + 1))[:LOG_BYTES]
    big = Execution.objects.create(job=job, application=job.application, status=Status.COMPLETED, started_at=now,
                                   finished_at=now, log=log, log_bytes=len(log))
    for i, status in enumerate([Status.RUNNING] * 20 + [Status.WAITING] * 20 + [Status.HELD] * 5):
        other = JobDefinition.objects.get(name=f"job_{900 + i:04d}")
        Execution.objects.create(job=other, application=other.application, status=status,
                                 started_at=now if status == Status.RUNNING else None, waiting_reason="bench")
    return {"admin": admin, "job": job, "big": big}


def grow_to(total: int) -> None:
    """Add executions until there are `total`: spread over the last DAYS days, newest today, one in
    ten an ERROR; then ANALYZE, as autovacuum would."""
    from django.db import connection

    from apps.engine.models import Execution

    missing = total - Execution.objects.count()
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO engine_execution (agent_execution_id, job_id, application_id, status, trigger, triggered_by,
                parameters, attempt, external_execution_id, execution_info, warning, error, created_at, started_at,
                finished_at, host, log, log_bytes, exclusive, lock_group, waiting_reason, poll_failures,
                kill_requested_by, awaits_flow, skipped_in_flow, exit_code)
            SELECT gen_random_uuid(), j.id, j.application_id,
                   CASE WHEN s.n %% 10 = 0 THEN 'ERROR' ELSE 'COMPLETED' END, 'schedule', '', '', 1, '', '', false,
                   CASE WHEN s.n %% 10 = 0 THEN 'exit code 1' ELSE '' END,
                   t.at, t.at, t.at + make_interval(secs => 5 + s.n %% 120), '', '', 0, false, '', '', 0, '', false,
                   '', CASE WHEN s.n %% 10 = 0 THEN 1 ELSE 0 END
            FROM generate_series(1, %s) AS s(n)
            JOIN catalog_jobdefinition j ON j.name = 'job_' || lpad((s.n %% %s)::text, 4, '0')
            CROSS JOIN LATERAL (SELECT now() - make_interval(secs => (s.n::float / %s) * %s * 86400) AS at) t
            """,
            [missing, JOBS, max(missing, 1), DAYS],
        )
        cursor.execute("ANALYZE engine_execution")
    print(f"history: {total:,} executions ({missing:,} added in {time.perf_counter() - started:.0f} s)",
          file=sys.stderr)


def pages(world: dict) -> dict[str, str]:
    from django.urls import reverse

    job = world["job"]
    changelist = reverse("admin:engine_execution_changelist")
    return {
        "execution list": changelist,
        "execution list, status=ERROR": changelist + "?status__exact=ERROR",
        "execution list, one job": changelist + f"?job__id__exact={job.pk}",
        "execution list, search by job name": changelist + f"?q={job.name}",
        "execution page, 1 MB log": reverse("admin:engine_execution_change", args=[world["big"].pk]),
        "job page": reverse("admin:catalog_jobdefinition_change", args=[job.pk]),
        "monitoring page": reverse("admin:monitoring"),
        "monitoring refresh": reverse("admin:monitoring_live"),
        "API executions": "/api/v1/executions",
        "API executions, status=ERROR&job": f"/api/v1/executions?status=ERROR&job={job.name}",
    }


def measure(world: dict, n: int, size: int, show_slow: bool = False) -> dict[str, dict]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST="127.0.0.1")
    client.force_login(world["admin"])
    figures = {}
    for name, url in pages(world).items():
        assert client.get(url).status_code == 200, f"{name}: {url}"  # warm-up
        times, queries = [], 0
        for _ in range(n):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, f"{name}: {response.status_code}"
            queries = len(captured.captured_queries)
        figures[name] = {"p50": statistics.median(times), "max": max(times), "queries": queries}
        if show_slow and figures[name]["p50"] > TARGET_MS / 3:
            for query in sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:2]:
                print(f"          {float(query['time']) * 1000:7.1f} ms  {query['sql'][:600]}", file=sys.stderr)
        print(f"{size:>9,} {name:<38} p50 {figures[name]['p50']:7.1f} ms  max {figures[name]['max']:7.1f} ms  "
              f"{queries:3d} queries", file=sys.stderr)
    return figures


def report(rows: dict[str, dict], args: argparse.Namespace) -> None:
    small, large = rows["small"], rows["large"]
    print(f"\nConsole on PostgreSQL: {args.small:,} → {args.executions:,} executions; {args.n} requests each "
          f"(load {os.getloadavg()[0]:.1f})\n")
    print(f"| page | p50 / max at {args.executions:,} | queries at {args.small:,} → {args.executions:,} | target |")
    print("|---|---|---|---|")
    for name, figure in large.items():
        met = figure["p50"] <= TARGET_MS and figure["queries"] == small[name]["queries"]
        print(f"| {name} | {figure['p50']:.0f} / {figure['max']:.0f} ms | {small[name]['queries']} → "
              f"{figure['queries']} | {'met' if met else 'MISSED'} |")
    print("\nNot measured: the flow run page (1,000 jobs) and 10,000 flow runs: the flow run page is not built yet.")


if __name__ == "__main__":
    sys.exit(main())
