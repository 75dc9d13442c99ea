"""The console on a big history: server time and query count of its pages over 1,000,000
executions and 10,000 flow runs in PostgreSQL (DESIGN.md "The console on a big history").

    .venv/bin/python bench/console_scale.py [--executions 1000000] [--small 100000] [--n 15]

It creates a scratch PostgreSQL database (dropped at the end), migrates it, loads 1,000 jobs in
10 applications, FLOWS (8) small flows of 3 processes and 10 jobs, and a flow of 1,000 jobs (100
processes in 10 layers, each after 2–3 of the layer before, as bench/flow_scale.py builds it) with
one run for today, under way: its first jobs done and some running (a 16 KB log each), the rest
waiting for the flow. Then --small (100,000) executions over the last 30 days and one run of the
small flows per RUNS_PER (100) of them (1,000), spread over the same days, their executions part
of the count (each written by one INSERT … SELECT; a few of today's running, waiting and held,
one with a 1 MB log); it measures every page, grows the history to --executions (and 10,000 flow
runs) and measures again. Each page is requested --n times in this process through Django's test
client as an administrator (the whole request: middleware, view, template, every query; no
network), after a warm-up; it prints p50 and max server time and the query count at both sizes,
beside the target (≤ 300 ms, and the same query count at both sizes).

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
FLOWS = 8  # small flows, their runs spread over the history
RUNS_PER = 100  # executions of the history per flow run
FLOW_PROCESSES = [("Extract", [1, 1, 2]), ("Transform", [1, 1, 2, 2]), ("Load", [1, 2, 3])]  # a chain, 10 jobs
BIG_LAYERS, BIG_WIDTH, BIG_JOBS = 10, 10, 10  # the flow of 1,000 jobs
JOB_LOG_BYTES = 16 * 1024  # the log of each job of that run that ran


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
    flows = build_small_flows(apps)
    return {"admin": admin, "job": job, "big": big, "flow": flows[0], "run": build_big_run(now)}


def build_small_flows(apps: list) -> list:
    """FLOWS flows of three processes in a chain, 10 jobs each: the flows of the history's runs."""
    from apps.catalog.models import Concurrency, Flow, JobDefinition, Process

    flows = Flow.objects.bulk_create([Flow(application=apps[i % APPLICATIONS], name=f"FLOW{i}",
                                           cycle="Hourly" if i % 2 else "Nightly") for i in range(FLOWS)])
    processes = Process.objects.bulk_create([Process(flow=flow, name=name) for flow in flows
                                             for name, _ in FLOW_PROCESSES])
    links = Process.predecessors.through
    links.objects.bulk_create([links(from_process=after, to_process=before)
                               for i in range(FLOWS) for before, after in zip(processes[i * 3:i * 3 + 2],
                                                                              processes[i * 3 + 1:i * 3 + 3])])
    JobDefinition.objects.bulk_create([
        JobDefinition(name=f"{process.flow.name}_{process.name}_{j}", application=process.flow.application,
                      kind="DUMMY", concurrency=Concurrency.ALLOW, process=process, sequence=sequence,
                      average_runtime_seconds=25.0, completed_runs=10)
        for process in processes for j, sequence in enumerate(dict(FLOW_PROCESSES)[process.name])])
    return flows


def build_big_run(now):
    """Today's run of the flow of 1,000 jobs, under way: each job's place in time laid out from its
    predecessors and the jobs before it in its process (seeded durations of 20–90 s); what ended
    before now COMPLETED, what started RUNNING (each with a 16 KB log, or half of it), the rest
    WAITING for the flow."""
    import random
    from datetime import timedelta

    from django.utils import timezone

    from apps.catalog.models import JobDefinition, Process
    from apps.engine.models import Execution, Status, Trigger
    from apps.flows.models import FlowRun
    from bench.flow_scale import build_flow

    flow = build_flow("BIG", BIG_LAYERS, BIG_WIDTH, BIG_JOBS, "pairs", seed=1)
    before: dict[int, set[int]] = {}
    for process, predecessor in Process.predecessors.through.objects.filter(
            from_process__flow=flow).values_list("from_process_id", "to_process_id"):
        before.setdefault(process, set()).add(predecessor)
    jobs = list(JobDefinition.objects.filter(process__flow=flow).order_by("process_id", "sequence", "name"))
    rng = random.Random(1)
    ends: dict[int, float] = {}
    placed = {}  # job id → (start, end), seconds after the run's start
    for process in sorted({job.process_id for job in jobs}):  # created layer by layer: predecessors first
        at = max((ends[p] for p in before.get(process, ())), default=0.0)
        for sequence in sorted({job.sequence for job in jobs if job.process_id == process}):
            group = [job for job in jobs if job.process_id == process and job.sequence == sequence]
            for job in group:
                placed[job.pk] = (at, at + rng.uniform(20, 90))
            at = max(placed[job.pk][1] for job in group)
        ends[process] = at
    cut = 0.7 * max(end for _, end in placed.values())  # now, 70 % of the way through
    line = "step done: rows read, rows written, elapsed in ms, all within bounds\n"
    log = line * (JOB_LOG_BYTES // len(line))  # what a job of the run printed
    started = now - timedelta(seconds=cut)
    run = FlowRun.objects.create(flow=flow, cycle=flow.cycle, business_date=timezone.localdate(now), trigger="schedule",
                                 created_at=started, started_at=started)
    executions = []
    for job in jobs:
        start, end = placed[job.pk]
        fields = {"job": job, "application_id": job.application_id, "flow_run": run, "trigger": Trigger.FLOW,
                  "created_at": started}
        if end <= cut:
            executions.append(Execution(status=Status.COMPLETED, started_at=started + timedelta(seconds=start),
                                        finished_at=started + timedelta(seconds=end), exit_code=0, log=log,
                                        log_bytes=len(log), **fields))
        elif start <= cut:
            executions.append(Execution(status=Status.RUNNING, started_at=started + timedelta(seconds=start),
                                        log=log[:len(log) // 2], log_bytes=len(log) // 2, **fields))
        else:
            executions.append(Execution(status=Status.WAITING, awaits_flow=True,
                                        waiting_reason="waiting for its flow", **fields))
    Execution.objects.bulk_create(executions, batch_size=1000)
    return run


def grow_to(total: int) -> None:
    """Add flow runs of the small flows until there is one per RUNS_PER of `total` executions (their
    executions, one per job, count), then executions until there are `total`: spread over the last
    DAYS days, newest today, one in ten an ERROR (one run in twenty, killed on its last job); then
    ANALYZE, as autovacuum would."""
    from django.db import connection

    from apps.engine.models import Execution

    runs = grow_runs_to(total // RUNS_PER)
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
        cursor.execute("ANALYZE flows_flowrun")
    print(f"history: {total:,} executions, {runs:,} flow runs ({missing:,} executions added in "
          f"{time.perf_counter() - started:.0f} s)", file=sys.stderr)


def grow_runs_to(total: int) -> int:
    """Runs of the small flows until there are `total` (closed: COMPLETED, or one in twenty ERROR),
    spread over the last DAYS days with their business date, and their executions; two INSERTs."""
    from django.conf import settings
    from django.db import connection

    from apps.flows.models import FlowRun

    small = FlowRun.objects.filter(flow__name__startswith="FLOW")
    missing = total - small.count()
    if missing <= 0:
        return small.count()
    last = FlowRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO flows_flowrun (flow_id, cycle, business_date, status, held, trigger, triggered_by,
                parameters, created_at, started_at, finished_at)
            SELECT f.id, f.cycle, (t.at AT TIME ZONE %s)::date,
                   CASE WHEN s.n %% 20 = 0 THEN 'ERROR' ELSE 'COMPLETED' END, false, 'schedule', '', '',
                   t.at, t.at, t.at + interval '5 minutes'
            FROM generate_series(1, %s) AS s(n)
            JOIN (SELECT id, cycle, row_number() OVER (ORDER BY id) - 1 AS k
                  FROM catalog_flow WHERE name LIKE 'FLOW%%') f ON f.k = s.n %% %s
            CROSS JOIN LATERAL (SELECT now() - interval '10 minutes'
                                       - make_interval(secs => (s.n::float / %s) * %s * 86400) AS at) t
            """,
            [settings.TIME_ZONE, missing, FLOWS, missing, DAYS],
        )
        # One execution per job, 30 s apart in the flow's order; a run in ERROR failed on its last job.
        cursor.execute(
            """
            INSERT INTO engine_execution (agent_execution_id, job_id, application_id, flow_run_id, status, trigger,
                triggered_by, parameters, attempt, external_execution_id, execution_info, warning, error,
                created_at, started_at, finished_at, host, log, log_bytes, exclusive, lock_group, waiting_reason,
                poll_failures, kill_requested_by, awaits_flow, skipped_in_flow, exit_code)
            SELECT gen_random_uuid(), j.id, j.application_id, r.id,
                   CASE WHEN r.status = 'ERROR' AND j.k = 9 THEN 'ERROR' ELSE 'COMPLETED' END, 'flow', '', '', 1,
                   '', '', false, CASE WHEN r.status = 'ERROR' AND j.k = 9 THEN 'exit code 1' ELSE '' END,
                   r.created_at, r.started_at + make_interval(secs => j.k * 30),
                   r.started_at + make_interval(secs => j.k * 30 + 25), '', '', 0, false, '', '', 0, '', false, '',
                   CASE WHEN r.status = 'ERROR' AND j.k = 9 THEN 1 ELSE 0 END
            FROM flows_flowrun r
            JOIN (SELECT jd.id, jd.application_id, p.flow_id,
                         row_number() OVER (PARTITION BY p.flow_id ORDER BY p.id, jd.sequence, jd.id) - 1 AS k
                  FROM catalog_jobdefinition jd JOIN catalog_process p ON p.id = jd.process_id) j
              ON j.flow_id = r.flow_id
            WHERE r.id > %s
            """,
            [last],
        )
    return total


def pages(world: dict) -> dict[str, str]:
    from django.urls import reverse

    job, run = world["job"], world["run"]
    changelist = reverse("admin:engine_execution_changelist")
    runs = reverse("admin:flows_flowrun_changelist")
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
        "flow-run list": runs,
        "flow-run list, status=ERROR": runs + "?status__exact=ERROR",
        "flow-run list, one flow": runs + f"?flow__id__exact={world['flow'].pk}",
        "flow run page, 1,000 jobs": reverse("admin:flows_flowrun_change", args=[run.pk]),
        "API flow runs": "/api/v1/flow-runs",
        "API flow run, 1,000 jobs": f"/api/v1/flow-runs/{run.pk}",
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
    print(f"\nConsole on PostgreSQL: {args.small:,} → {args.executions:,} executions, "
          f"{args.small // RUNS_PER:,} → {args.executions // RUNS_PER:,} flow runs; {args.n} requests each "
          f"(load {os.getloadavg()[0]:.1f})\n")
    print(f"| page | p50 / max at {args.executions:,} | queries at {args.small:,} → {args.executions:,} | target |")
    print("|---|---|---|---|")
    for name, figure in large.items():
        met = figure["p50"] <= TARGET_MS and figure["queries"] == small[name]["queries"]
        print(f"| {name} | {figure['p50']:.0f} / {figure['max']:.0f} ms | {small[name]['queries']} → "
              f"{figure['queries']} | {'met' if met else 'MISSED'} |")


if __name__ == "__main__":
    sys.exit(main())
