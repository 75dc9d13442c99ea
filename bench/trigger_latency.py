"""Trigger → RUNNING latency of Batchdesk beside plain django-q2, on the same broker and database.

    .venv/bin/python bench/trigger_latency.py [--backend both|sqlite|postgres] [--n 200] [--spacing-ms 50]

For each backend it makes a scratch database (a fresh SQLite file under var/, or a PostgreSQL
database it creates and drops), starts `manage.py run_dispatcher` and `manage.py qcluster`
against it, and after a warm-up measures, one after the other:

- ours: `apps.engine.services.trigger()` of a DUMMY job (concurrency=allow), N times, each
  execution's started_at - created_at as the database holds them;
- plain django-q2: `async_task()` of `bench.probe.record_start`, which notes when a worker began
  it, against the time taken just before `async_task()`.

Both are paced at a fixed rate so that the queue is not saturated: this is latency, not throughput.
It prints p50/p99 beside the targets and exits 0 whether or not they are met.

The PostgreSQL half uses PostgreSQL + Redis at BENCH_POSTGRES_URL / BENCH_REDIS_URL (or
--postgres-url / --redis-url), never DATABASE_URL / REDIS_URL: it drops the database it names.
Q_WORKERS and the other settings reach the processes from the environment as usual.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Iterable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the script's own directory is bench/, not the project

from bench.harness import (  # noqa: E402
    BACKENDS,
    VAR,
    Processes,
    add_scratch_options,
    dummy_job,
    measured,
    percentile,
    refuse_unless_scratch,
    run_per_backend,
)

P50_TARGET_MS = {"sqlite": 150.0, "postgres": 20.0}
RATIO_TARGET = 1.5

# A Redis database of its own: a `make run` cluster on the same Redis would otherwise share the
# queue key django_q:batchdesk:q and take (and fail) the bench's tasks.
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/batchdesk_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"


def main() -> int:
    args = parse_args()
    return run_per_backend(args, name="bench_trigger", measure=measure, report=lambda results: print_report(results, args))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["both", *BACKENDS], default="both")
    parser.add_argument("--n", type=int, default=200, help="Measured triggers of each kind (default 200).")
    parser.add_argument("--spacing-ms", type=float, default=50.0, help="Between two triggers (default 50).")
    parser.add_argument("--warmup", type=int, default=20, help="Unmeasured triggers of each kind first (default 20).")
    parser.add_argument("--timeout", type=float, default=60.0, help="Seconds to wait for stragglers (default 60).")
    add_scratch_options(parser, postgres_url=DEFAULT_POSTGRES_URL, redis_url=DEFAULT_REDIS_URL, per_backend=True)
    args = parser.parse_args()
    if args.n < 1 or args.warmup < 0 or args.spacing_ms < 0:
        parser.error("--n must be positive, --warmup and --spacing-ms not negative")
    refuse_unless_scratch(parser, args)
    return args


# --- one backend, with a real dispatcher and cluster --------------------------------------


def measure(backend: str, args: argparse.Namespace, processes: Processes) -> dict:
    from django_q.conf import Conf
    from django_q.tasks import async_task

    from apps.engine import services
    from apps.engine.models import TERMINAL, Execution
    from bench.probe import read_starts

    label = BACKENDS[backend]
    probe_file = VAR / f"bench_trigger-{backend}-probes.txt"
    probe_file.unlink(missing_ok=True)
    job = dummy_job("bench-dummy")

    def ours(count: int, spacing: float) -> tuple[list[float], int]:
        ids = [services.trigger(job, triggered_by="bench").pk for _ in paced(range(count), spacing)]
        executions = Execution.objects.filter(pk__in=ids)
        # Until all have ended, so that the next phase finds idle workers.
        processes.wait_until(lambda: executions.filter(status__in=TERMINAL).count() == count, args.timeout)
        rows = executions.filter(started_at__isnull=False).values_list("created_at", "started_at")
        return [(started - created).total_seconds() * 1000 for created, started in rows], count - len(rows)

    probe_ids = itertools.count(1)  # 0 is the readiness probe

    def plain(count: int, spacing: float) -> tuple[list[float], int]:
        enqueued = {}
        for probe_id in paced(list(itertools.islice(probe_ids, count)), spacing):
            enqueued[probe_id] = time.time()
            async_task("bench.probe.record_start", probe_id, str(probe_file))
        processes.wait_until(lambda: enqueued.keys() <= read_starts(probe_file).keys(), args.timeout)
        starts = read_starts(probe_file)
        latencies = [(starts[i] - enqueued[i]) * 1000 for i in enqueued if i in starts]
        return latencies, count - len(latencies)

    print(f"{label}: waiting for the cluster to take work", file=sys.stderr)
    async_task("bench.probe.record_start", 0, str(probe_file))
    if not processes.wait_until(lambda: 0 in read_starts(probe_file), 120):
        raise RuntimeError(f"the cluster ran no task within 120 s; see {processes.log_prefix}-qcluster.log")
    # Every worker's first task of a kind imports that task's modules, which is not latency.
    # A burst reaches every worker; paced triggers could keep landing on the same idle one.
    ours(args.warmup, 0)
    plain(args.warmup, 0)
    print(f"{label}: {args.n} triggers of each kind, one every {args.spacing_ms:g} ms", file=sys.stderr)
    # Other work on the machine moves these figures more than anything measured here.
    load_before = os.getloadavg()[0]
    ours_ms, ours_missing = ours(args.n, args.spacing_ms / 1000)
    plain_ms, plain_missing = plain(args.n, args.spacing_ms / 1000)
    return {"workers": Conf.WORKERS, "load": [load_before, os.getloadavg()[0]],
            "ours": ours_ms, "ours_missing": ours_missing, "plain": plain_ms, "plain_missing": plain_missing}


def paced(items: Iterable, spacing: float) -> Iterator:
    """Yield items on a fixed schedule: a slow call does not push the later ones back."""
    start = time.monotonic()
    for index, item in enumerate(items):
        delay = start + index * spacing - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        yield item


# --- the report ---------------------------------------------------------------------------


def print_report(results: list[dict], args: argparse.Namespace) -> None:
    workers = next((result["workers"] for result in results if "workers" in result), "?")
    print()
    print(f"Trigger → RUNNING latency, ms: N={args.n} of each, one every {args.spacing_ms:g} ms, "
          f"after {args.warmup} warm-up; {workers} workers, {os.cpu_count()} CPUs")
    print(f"{'backend':<27}{'ours p50':>10}{'ours p99':>10}{'django-q2 p50':>15}{'django-q2 p99':>15}{'p50 ratio':>11}")
    verdicts, notes = [], []
    for label, result in measured(results):
        backend = result["backend"]
        if not result["ours"] or not result["plain"]:
            print(f"{label:<27}FAILED: nothing started within {args.timeout:g} s")
            continue
        ours_p50, ours_p99 = percentile(result["ours"], 50), percentile(result["ours"], 99)
        plain_p50, plain_p99 = percentile(result["plain"], 50), percentile(result["plain"], 99)
        ratio = ours_p50 / plain_p50
        print(f"{label:<27}{ours_p50:>10.1f}{ours_p99:>10.1f}{plain_p50:>15.1f}{plain_p99:>15.1f}{ratio:>10.2f}x")
        target = P50_TARGET_MS[backend]
        verdicts.append(
            f"  {label:<27}p50 ratio {ratio:.2f}x <= {RATIO_TARGET}x: {'met' if ratio <= RATIO_TARGET else 'MISSED'};"
            f"  ours p50 {ours_p50:.1f} ms <= {target:g} ms: {'met' if ours_p50 <= target else 'MISSED'}"
        )
        notes.append(f"  {label}: load average (1 min) {result['load'][0]:.2f} before, {result['load'][1]:.2f} after")
        for kind, name in (("ours", "ours"), ("plain", "django-q2")):
            if result[f"{kind}_missing"]:
                notes.append(f"  {label}: {result[f'{kind}_missing']} of {name} did not start within {args.timeout:g} s"
                             " and are left out of its percentiles")
    print()
    print(f"Targets (reported, not enforced): ours p50 within {RATIO_TARGET}x of plain django-q2's;"
          f" ours p50 <= {P50_TARGET_MS['sqlite']:g} ms on the ORM broker, <= {P50_TARGET_MS['postgres']:g} ms on Redis.")
    print("\n".join(verdicts + notes))


if __name__ == "__main__":
    sys.exit(main())
