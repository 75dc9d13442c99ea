"""Poll lag and CPU with N external executions RUNNING at once, and the naive design's ceiling.

    .venv/bin/python bench/poll_scale.py [--n 1000,5000,10000] [--interval 5] [--warmup 20] [--window 40]

Set-up, as in production on one machine: PostgreSQL + Redis, one `manage.py run_dispatcher`,
one `manage.py qcluster` with Q_WORKERS=2 (--workers), and bench/fake_external.py: a fast
asyncio HTTP/1.1 keep-alive server speaking the token endpoint and Status (always RUNNING).
The script makes its own database (batchdesk_pollbench, dropped at the end), its own Redis
database and queue name, and for each N:

1. starts the dispatcher and the cluster, and inserts N RUNNING executions of a custom job type
   "POLLBENCH" (poll interval --interval) with external ids and next polls spread evenly over
   one interval;
2. after --warmup seconds, measures for --window seconds:
   - poll lag: for every poll that fell due in the window, the arrival of its Status call at the
     external system minus its due time. A trigger in the scratch database notes each claim of
     the dispatcher with the due time (next_check_at) it replaced; the fake system notes the
     arrival of every Status call per executionId; a poll is the first call after its claim.
     Polls due in the window and not made --grace seconds after it (claimed or not) count with
     the lag they had then, a lower bound ("late" says how many), so starvation is not hidden.
     The period between two calls of one execution is shown too;
   - CPU: user + system seconds of the dispatcher and the whole cluster (sentinel, pusher,
     monitor, workers, and workers recycled meanwhile), from psutil, per wall second, i.e. in
     cores; beside it the fake system's own CPU and the whole machine's.

Then the naive design, where a task holds its worker while the external job runs
(bench/naive.py): --naive-jobs such tasks, each polling one external execution every interval
until it completes (after --naive-runtime s), on the same two workers; it reports how many were
tracked at once (their first-to-last Status calls overlapping) and how long the others waited.

It prints a table and exits 0 whether or not the target (p99 lag <= 1 s at N = 5,000) is met.
Other load on the machine moves the figures: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the script's own directory is bench/, not the project

from bench.harness import (  # noqa: E402
    ROOT,
    VAR,
    Processes,
    add_scratch_options,
    free_port,
    percentile,
    refuse_unless_scratch,
    scratch_backend,
    services_unreachable,
)

LOG_PREFIX = VAR / "bench_poll"

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/batchdesk_pollbench"
# A Redis database and queue name of its own: a `make run` cluster or another bench on the same
# Redis would otherwise take (and fail) this bench's tasks.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
QUEUE_NAME = "batchdesk-pollbench"
JOB_TYPE = "POLLBENCH"
TARGET_N, TARGET_P99 = 5000, 1.0


def main() -> int:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C, through the finally blocks that stop processes and drop the database;
    # SIGINT raises KeyboardInterrupt even when started in the background (which ignores it).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Before Django and django_q are imported: both read the environment once, at import.
    os.environ.update(Q_WORKERS=str(args.workers), OAUTH_ALLOW_INSECURE_TRANSPORT="true")
    os.environ.setdefault("LOG_LEVEL", "WARNING")

    unreachable = services_unreachable(args.postgres_url, args.redis_url)
    if unreachable:
        print(f"skipped: {unreachable}", file=sys.stderr)
        return 0
    results, naive = [], None
    try:
        with (scratch_backend("postgres", args, name="bench_poll", queue_name=QUEUE_NAME) as env,
              Processes(env, LOG_PREFIX) as services):
            note_claims()
            external = FakeExternal(services, args)
            make_job_type(args, external.port)
            for n in args.n:
                results.append(run_scale(n, args, env, external))
            if args.naive_jobs:
                naive = run_naive(args, env, external)
    except KeyboardInterrupt:
        print("interrupted: processes stopped, scratch database dropped", file=sys.stderr)
        return 130
    print_report(results, naive, args)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", default="1000,5000,10000", help="Comma-separated counts of RUNNING executions.")
    parser.add_argument("--interval", type=int, default=5, help="Poll interval, seconds (default 5).")
    parser.add_argument("--warmup", type=float, default=20.0, help="Seconds before measuring (default 20).")
    parser.add_argument("--window", type=float, default=40.0, help="Seconds measured (default 40).")
    parser.add_argument("--grace", type=float, default=5.0, help="Seconds to wait for calls due in the window.")
    parser.add_argument("--workers", type=int, default=2, help="Q_WORKERS of the cluster (default 2).")
    parser.add_argument("--naive-jobs", type=int, default=4, help="Jobs for the naive design; 0 skips it.")
    parser.add_argument("--naive-runtime", type=float, default=10.0, help="Seconds each naive job runs.")
    add_scratch_options(parser, postgres_url=DEFAULT_POSTGRES_URL, redis_url=DEFAULT_REDIS_URL)
    args = parser.parse_args()
    try:
        args.n = [int(n) for n in args.n.split(",")]
    except ValueError:
        parser.error("--n takes comma-separated integers, e.g. 1000,5000")
    if min(args.n) < 1 or args.interval < 1 or args.window <= 0 or args.workers < 1:
        parser.error("--n, --interval, --window and --workers must be positive")
    refuse_unless_scratch(parser, args)
    return args


# --- the runs -----------------------------------------------------------------------------


def make_job_type(args: argparse.Namespace, port: int) -> None:
    from apps.catalog.models import Application, JobType

    base = f"http://127.0.0.1:{port}"
    job_type = JobType(name=JOB_TYPE, url=f"{base}/pom", start_path="/start", status_path="/status",
                       poll_interval_seconds=args.interval, token_url=f"{base}/oauth/token", client_id="bench")
    job_type.set_client_secret("bench-secret")
    job_type.save()
    Application.objects.create(name="BENCH")


def note_claims() -> None:
    """A trigger, in the scratch database only, that notes every poll claim with the due time it had.

    The dispatcher's claim moves next_check_at from the due time to a lease a minute ahead; a
    write-back moves it back to the next due time. Only the jump forward fires the trigger.
    """
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("""
            CREATE TABLE bench_claim (execution_id bigint, due timestamptz, claimed timestamptz);
            CREATE FUNCTION bench_note_claim() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO bench_claim VALUES (OLD.id, OLD.next_check_at, clock_timestamp());
                RETURN NULL;
            END $$;
            CREATE TRIGGER bench_claim AFTER UPDATE OF next_check_at ON engine_execution FOR EACH ROW
                WHEN (NEW.next_check_at > OLD.next_check_at + interval '30 seconds')
                EXECUTE FUNCTION bench_note_claim();
        """)


def run_scale(n: int, args: argparse.Namespace, env: dict, external: FakeExternal) -> dict:
    from django.db import connection

    from apps.catalog.models import Application, JobDefinition
    from apps.engine.models import Execution, Status

    print(f"N={n}: starting the dispatcher and the cluster", file=sys.stderr)
    Execution.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE bench_claim")
    external.reset()
    application = Application.objects.get(name="BENCH")
    # A few jobs, as many executions each: rows look like production's, the job count is not measured.
    jobs = [JobDefinition.objects.get_or_create(name=f"bench_ext_{i}", defaults={
        "application": application, "job_type": JOB_TYPE, "command": ""})[0] for i in range(20)]
    with Processes(env, Path(f"{LOG_PREFIX}-{n}")) as processes:
        dispatcher = processes.start("run_dispatcher")
        cluster = processes.start("qcluster")
        processes.wait_for_agents(dispatcher, cluster)
        processes.sleep(1)  # the cluster forks its workers just after registering
        now = time.time()
        # Next polls spread evenly over one interval, starting a second from now: a steady load.
        created = Execution.objects.bulk_create(
            [Execution(job=jobs[i % len(jobs)], application=application, status=Status.RUNNING,
                       external_execution_id=f"ext-{i}", started_at=datetime.fromtimestamp(now, timezone.utc),
                       next_check_at=datetime.fromtimestamp(now + 1 + i * args.interval / n, timezone.utc))
             for i in range(n)],
            batch_size=2000,
        )
        external_ids = {execution.pk: execution.external_execution_id for execution in created}
        print(f"N={n}: {n} executions RUNNING; warming up {args.warmup:g} s", file=sys.stderr)
        processes.sleep(args.warmup)
        load_before = os.getloadavg()[0]
        cpu_before = cpu_snapshot(dispatcher, cluster, external.process)
        t0 = time.time()
        print(f"N={n}: measuring {args.window:g} s", file=sys.stderr)
        processes.sleep(args.window)
        t1 = time.time()
        cpu_after = cpu_snapshot(dispatcher, cluster, external.process)
        processes.sleep(args.grace)
        t_report = time.time()
        arrivals = external.report(since=t0 - 2 * args.interval)["arrivals"]
        with connection.cursor() as cursor:
            cursor.execute("SELECT execution_id, extract(epoch FROM due), extract(epoch FROM claimed) FROM bench_claim"
                           " WHERE due >= to_timestamp(%s) AND due < to_timestamp(%s)", [t0, t1])
            claims = [(external_ids[pk], float(due), float(claimed)) for pk, due, claimed in cursor.fetchall()]
        # Due before the window's end and still not handed out by the report: the dispatcher is behind.
        unclaimed = [row.timestamp() for row in Execution.objects.filter(
            status=Status.RUNNING, next_check_at__lt=datetime.fromtimestamp(t1, timezone.utc)
        ).values_list("next_check_at", flat=True)]
        token_calls = external.report(since=time.time())["token_calls"]
        still_running = Execution.objects.filter(status=Status.RUNNING).count()
    lags, late = poll_lags(claims, unclaimed, arrivals, t_report)
    wall = t1 - t0
    calls = sum(1 for times in arrivals.values() for arrival in times if t0 <= arrival < t1)
    periods = [b - a for times in arrivals.values() for a, b in zip(times, times[1:]) if t0 <= b < t1]
    used = {key: (cpu_after[key] - cpu_before[key]) / wall for key in cpu_before}
    return {
        "n": n, "lags": lags, "late": late, "periods": periods, "calls_per_s": calls / wall,
        "ended": n - still_running, "cpu": used,
        "cpu_ms_per_call": 1000 * (used["dispatcher"] + used["cluster"]) * wall / max(calls, 1),
        "load": (load_before, os.getloadavg()[0]), "token_calls": token_calls,
    }


def poll_lags(claims: list[tuple[str, float, float]], unclaimed: list[float], arrivals: dict[str, list[float]],
              t_report: float) -> tuple[list[float], int]:
    """Lag of every poll due in the window: the first Status call after its claim minus its due time.

    A poll not made by the report counts with the lag it had then (a lower bound), and so does
    one overdue and not even claimed: "late" counts both.
    """
    lags, late = [], 0
    for external_id, due, claimed in claims:
        times = arrivals.get(external_id, [])
        made = bisect.bisect_left(times, claimed)
        if made < len(times):
            lags.append(times[made] - due)
        else:
            lags.append(t_report - due)
            late += 1
    lags += [t_report - due for due in unclaimed]
    return lags, late + len(unclaimed)


def run_naive(args: argparse.Namespace, env: dict, external: FakeExternal) -> dict:
    """A cluster whose tasks each hold a worker until their external job ends."""
    from django_q.tasks import async_task

    print(f"naive design: {args.naive_jobs} jobs of {args.naive_runtime:g} s on {args.workers} workers",
          file=sys.stderr)
    external.reset()
    ids = [f"naive-{i}" for i in range(args.naive_jobs)]
    with Processes(env, Path(f"{LOG_PREFIX}-naive")) as processes:
        # No dispatcher: the naive design has no use for one.
        processes.wait_for_agents(processes.start("qcluster"))
        processes.sleep(1)  # the cluster forks its workers just after registering
        enqueued = time.time()
        for external_id in ids:
            async_task("bench.naive.track_until_done", JOB_TYPE, external_id, args.interval)
        # Each job runs --naive-runtime s once a worker takes it; the workers take them in turns.
        turns = math.ceil(args.naive_jobs / args.workers)
        deadline = time.monotonic() + turns * (args.naive_runtime + args.interval) + 60
        while time.monotonic() < deadline:
            arrivals = external.report(since=0)["arrivals"]
            if all(i in arrivals and arrivals[i][-1] - arrivals[i][0] >= args.naive_runtime for i in ids):
                break
            processes.sleep(0.5)
    spans = sorted((arrivals[i][0], arrivals[i][-1]) for i in ids if i in arrivals)
    # Most executions tracked at once: the largest overlap of first-to-last Status call spans.
    events = sorted([(first, 1) for first, _ in spans] + [(last, -1) for _, last in spans])
    tracked = most = 0
    for _, step in events:
        tracked += step
        most = max(most, tracked)
    return {"jobs": args.naive_jobs, "done": len(spans), "concurrent": most,
            "waits": [first - enqueued for first, _ in spans], "wall": max((last for _, last in spans), default=enqueued) - enqueued}


# --- the fake external system ---------------------------------------------------------------


class FakeExternal:
    """bench/fake_external.py on a free loopback port, one of `processes`."""

    def __init__(self, processes: Processes, args: argparse.Namespace) -> None:
        self.port = free_port()
        self.process = processes.spawn("fake_external", [
            sys.executable, str(ROOT / "bench" / "fake_external.py"), "--port", str(self.port),
            "--finish-after", str(args.naive_runtime),
        ])
        if not processes.wait_until(self.answers, 30):
            raise RuntimeError(f"fake_external did not answer within 30 s; see {processes.log_prefix}-fake_external.log")

    def _call(self, method: str, path: str) -> bytes:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def answers(self) -> bool:
        try:
            self.reset()
        except OSError:  # not listening yet
            return False
        return True

    def reset(self) -> None:
        self._call("POST", "/_bench/reset")

    def report(self, since: float) -> dict:
        return json.loads(self._call("GET", f"/_bench/report?since={since!r}"))


def cpu_snapshot(dispatcher: subprocess.Popen, cluster: subprocess.Popen, external: subprocess.Popen) -> dict:
    """CPU seconds so far: of each process tree (children that ended and were reaped included), and
    of the machine (busy time, all cores)."""
    machine = psutil.cpu_times()
    return {"dispatcher": tree_cpu(dispatcher.pid), "cluster": tree_cpu(cluster.pid),
            "external": tree_cpu(external.pid),
            "machine": machine.user + machine.nice + machine.system + machine.irq + machine.softirq + machine.steal}


def tree_cpu(pid: int) -> float:
    total = 0.0
    try:
        root = psutil.Process(pid)
        members = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    for member in members:
        try:
            t = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


# --- the report ---------------------------------------------------------------------------


def print_report(results: list[dict], naive: dict | None, args: argparse.Namespace) -> None:
    print()
    print(f"Poll lag and CPU: interval {args.interval} s, 1 dispatcher + 1 cluster of {args.workers} workers, "
          f"PostgreSQL + Redis, {os.cpu_count()} CPUs; warm-up {args.warmup:g} s, window {args.window:g} s")
    print(f"{'N':>6}{'polls/s':>9}{'needed':>8}{'lag p50':>9}{'lag p99':>9}{'lag max':>9}{'late':>6}"
          f"{'period p99':>11}{'CPU app':>9}{'ms/poll':>9}{'CPU ext':>9}{'machine':>9}{'load':>11}")
    for r in results:
        lags = r["lags"]
        print(f"{r['n']:>6}{r['calls_per_s']:>9.0f}{r['n'] / args.interval:>8.0f}"
              f"{percentile(lags, 50):>8.2f}s{percentile(lags, 99):>8.2f}s{max(lags, default=math.nan):>8.2f}s"
              f"{r['late']:>6}{percentile(r['periods'], 99):>10.2f}s"
              f"{r['cpu']['dispatcher'] + r['cpu']['cluster']:>9.2f}{r['cpu_ms_per_call']:>9.2f}"
              f"{r['cpu']['external']:>9.2f}{r['cpu']['machine']:>9.2f}{r['load'][0]:>6.1f}→{r['load'][1]:<4.1f}")
    print("  lag: Status call's arrival at the external system minus the poll's due time (its next_check_at when")
    print("  the dispatcher claimed it), over the polls due in the window; negative = early (claims round to the")
    print("  nearest tick). late: due in the window, not yet made at the report, counted with the lag they had then.")
    print("  period: time between two Status calls of one execution. CPU in cores (CPU s per wall s): app =")
    print("  dispatcher + whole cluster; ms/poll = app CPU per Status call; ext = the fake external system;")
    print("  machine = everything on the box, other users included; load = 1-min load average before → after.")
    for r in results:
        print(f"  N={r['n']}: CPU dispatcher {r['cpu']['dispatcher']:.2f} + cluster {r['cpu']['cluster']:.2f} cores; "
              f"lag min {min(r['lags'], default=math.nan):.2f} s; {r['token_calls']} token fetches")
    for r in results:
        if r["ended"]:
            print(f"  N={r['n']}: {r['ended']} executions ended (status polling failed); see {LOG_PREFIX}-{r['n']}-*.log")
    if naive:
        waits = ", ".join(f"{w:.1f}" for w in naive["waits"])
        print()
        print(f"Naive design (a task holds its worker until its external job ends), {args.workers} workers:")
        print(f"  {naive['jobs']} external jobs of {args.naive_runtime:g} s, polled every {args.interval} s: "
              f"at most {naive['concurrent']} tracked at once; first Status call after {waits} s; "
              f"all done in {naive['wall']:.1f} s")
        print(f"  ceiling: {naive['concurrent']} executions tracked concurrently by {args.workers} workers "
              f"(N executions would need N workers)")
    target = next((r for r in results if r["n"] == TARGET_N), None)
    if target:
        p99 = percentile(target["lags"], 99)
        print(f"\nTarget N={TARGET_N}: p99 lag {p99:.2f} s <= {TARGET_P99:g} s: {'met' if p99 <= TARGET_P99 else 'MISSED'}")


if __name__ == "__main__":
    sys.exit(main())
