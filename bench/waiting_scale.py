"""WAITING at scale: a throttled application's nightly batch, and what its waiting costs.

    .venv/bin/python bench/waiting_scale.py [--backend both|sqlite|postgres] [--n 2000] [--limit 10]
                                            [--seconds 1] [--kind exec|python|dummy]

N executions of one job (concurrency=allow, an EXEC `sleep SECONDS` by default) in an application
whose throttle_limit is LIMIT, triggered all at once against a real dispatcher and a cluster of
LIMIT + 2 workers, on a scratch database (a SQLite file under var/, or a PostgreSQL database it
creates and drops). The engine runs through bench/counted.py, which counts every task queued by
any of its processes (and by this one). It reports:

- tasks queued per completed execution: the trigger's start task, the wake-ups, the dispatcher's
  re-hand-outs and safety rechecks (target: at most 3);
- the idle gap between a slot freeing and the next start: the k-th slot to free (the k-th finish)
  is filled by the (LIMIT + k)-th start, and the gap is the time between the two (target: p99 at
  most 0.5 s on PostgreSQL + Redis);
- the makespan beside the ideal N x SECONDS / LIMIT, and the most executions ever RUNNING at once
  (never more than LIMIT).

The PostgreSQL half uses BENCH_POSTGRES_URL / BENCH_REDIS_URL (or --postgres-url / --redis-url),
never DATABASE_URL / REDIS_URL: it drops the database it names.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the script's own directory is bench/, not the project

from bench.counted import count_tasks, read_counts  # noqa: E402
from bench.harness import (  # noqa: E402
    BACKENDS,
    VAR,
    Processes,
    add_scratch_options,
    measured,
    percentile,
    refuse_unless_scratch,
    run_per_backend,
)

TASKS_TARGET = 3.0
GAP_P99_TARGET = 0.5  # seconds, on PostgreSQL + Redis
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/batchdesk_bench_waiting"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
START_TASK = "apps.engine.tasks.start_execution"


def main() -> int:
    args = parse_args()
    if args.backend != "both":
        # Read by the engine's processes (started with this environment) and by this one.
        os.environ["BENCH_TASK_LOG"] = str(VAR / f"bench_waiting-{args.backend}-tasks.log")
        Path(os.environ["BENCH_TASK_LOG"]).unlink(missing_ok=True)
        os.environ.setdefault("Q_WORKERS", str(args.limit + 2))  # each EXEC run holds a worker
    return run_per_backend(args, name="bench_waiting", measure=measure, report=lambda results: report(results, args),
                           manage=[sys.executable, str(Path(__file__).resolve().parent / "counted.py")])


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["both", *BACKENDS], default="both")
    parser.add_argument("--n", type=int, default=2000, help="Executions in the batch (default 2000).")
    parser.add_argument("--limit", type=int, default=10, help="The application's throttle limit (default 10).")
    parser.add_argument("--seconds", type=float, default=1.0, help="How long each job runs (default 1).")
    parser.add_argument("--kind", choices=["exec", "python", "dummy"], default="exec",
                        help="EXEC `sleep`, the PYTHON sleep_seconds task, or DUMMY (instant) (default exec).")
    add_scratch_options(parser, postgres_url=DEFAULT_POSTGRES_URL, redis_url=DEFAULT_REDIS_URL, per_backend=True)
    args = parser.parse_args()
    if args.n <= args.limit or args.limit < 1 or args.seconds < 0:
        parser.error("--n must exceed --limit, --limit be positive and --seconds not negative")
    refuse_unless_scratch(parser, args)
    return args


def measure(backend: str, args: argparse.Namespace, processes: Processes) -> dict:
    from apps.catalog.models import Application, Concurrency, JobDefinition
    from apps.engine import services
    from apps.engine.models import TERMINAL, Execution, Status

    label = BACKENDS[backend]
    task_log = os.environ["BENCH_TASK_LOG"]
    count_tasks(task_log)  # the triggers queue their start tasks from here
    application = Application.objects.create(name="NIGHTLY", throttle_limit=args.limit)
    command = {"exec": f"sleep {args.seconds:g}", "python": "sleep_seconds", "dummy": ""}[args.kind]
    job = JobDefinition.objects.create(name="nightly-step", application=application, job_type=args.kind.upper(),
                                       command=command, concurrency=Concurrency.ALLOW,
                                       parameters=f"seconds={args.seconds:g}" if args.kind == "python" else "")

    def batch(count: int, timeout: float) -> list[int]:
        ids = [services.trigger(job, triggered_by="bench").pk for _ in range(count)]
        done = Execution.objects.filter(pk__in=ids, status__in=TERMINAL)
        if not processes.wait_until(lambda: done.count() == count, timeout, interval=1):
            raise RuntimeError(f"{count - done.count()} of {count} executions had not ended after {timeout:g} s")
        return ids

    print(f"{label}: warm-up ({args.limit} executions)", file=sys.stderr)
    batch(args.limit, 120)  # every worker's first task imports the engine: not what is measured
    before = read_counts(task_log)
    ideal = args.n * args.seconds / args.limit
    print(f"{label}: {args.n} executions, throttle limit {args.limit}, {args.kind} {args.seconds:g} s "
          f"(ideal makespan {ideal:.0f} s)", file=sys.stderr)
    load_before = os.getloadavg()[0]
    began = time.time()
    ids = batch(args.n, 3 * ideal + 300)
    after = read_counts(task_log)
    rows = list(Execution.objects.filter(pk__in=ids).values_list("status", "started_at", "finished_at"))
    starts = sorted(started.timestamp() for _, started, _ in rows if started)
    finishes = sorted(finished.timestamp() for _, started, finished in rows if started and finished)
    # The k-th slot to free is filled by the (limit + k)-th start.
    gaps = [starts[args.limit + k] - finishes[k] for k in range(min(len(starts) - args.limit, len(finishes)))]
    return {
        "n": args.n, "limit": args.limit,
        "completed": sum(1 for status, _, _ in rows if status == Status.COMPLETED),
        "tasks": {func: after.get(func, 0) - before.get(func, 0) for func in after},
        "gaps": gaps, "makespan": max(finishes) - min(starts), "ideal": ideal, "wall": time.time() - began,
        "most_running": most_running(rows), "load": [load_before, os.getloadavg()[0]],
    }


def most_running(rows: list[tuple]) -> int:
    """The most executions RUNNING at once, from their start and finish times."""
    events = sorted([(started, 1) for _, started, finished in rows if started]
                    + [(finished, -1) for _, started, finished in rows if started and finished])
    running = most = 0
    for _, change in events:
        running += change
        most = max(most, running)
    return most


def report(results: list[dict], args: argparse.Namespace) -> None:
    print()
    print(f"WAITING at scale: {args.n} executions of a {args.kind} {args.seconds:g} s job, throttle limit {args.limit}, "
          f"{os.environ.get('Q_WORKERS', args.limit + 2)} workers, {os.cpu_count()} CPUs")
    print(f"{'backend':<27}{'done':>6}{'tasks/exec':>11}{'start tasks':>12}{'gap p50':>9}{'gap p99':>9}{'gap max':>9}"
          f"{'makespan':>10}{'ideal':>7}{'max run':>8}")
    verdicts = []
    for label, result in measured(results):
        total = sum(result["tasks"].values())
        per = total / max(result["completed"], 1)
        gaps = result["gaps"]
        p99 = percentile(gaps, 99)
        print(f"{label:<27}{result['completed']:>6}{per:>11.2f}{result['tasks'].get(START_TASK, 0):>12}"
              f"{percentile(gaps, 50):>8.3f}s{p99:>8.3f}s{max(gaps):>8.3f}s{result['makespan']:>9.1f}s"
              f"{result['ideal']:>6.0f}s{result['most_running']:>8}")
        verdicts.append(f"  {label:<27}tasks per completed execution {per:.2f} <= {TASKS_TARGET:g}: "
                        f"{'met' if per <= TASKS_TARGET else 'MISSED'}; idle gap p99 {p99:.3f} s"
                        + (f" <= {GAP_P99_TARGET} s: {'met' if p99 <= GAP_P99_TARGET else 'MISSED'}"
                           if result["backend"] == "postgres" else " (target on PostgreSQL + Redis only)")
                        + f"; load {result['load'][0]:.2f} before, {result['load'][1]:.2f} after")
        others = {func: count for func, count in result["tasks"].items() if func != START_TASK and count}
        if others:
            verdicts.append(f"  {label:<27}other tasks: {others}")
        if result["most_running"] > result["limit"]:
            verdicts.append(f"  {label:<27}THROTTLE EXCEEDED: {result['most_running']} running at once")
    print()
    print("\n".join(verdicts))


if __name__ == "__main__":
    sys.exit(main())
