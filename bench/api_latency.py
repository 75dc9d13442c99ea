"""Latency of the background-tasks API (SPEC §5.1) through a real server, on PostgreSQL + Redis.

    .venv/bin/python bench/api_latency.py [--jobs 1000] [--n 300] [--workers 2]

It creates a scratch PostgreSQL database (and drops it at the end), migrates it, loads --jobs job
definitions in 10 applications (DUMMY, concurrency=allow; a fifth of them scheduled, five past
executions each) and an administrator with a DRF token, and starts `gunicorn config.wsgi` on it
(gthread workers, so that the client's connection is kept alive). Then, one request at a time
over one requests.Session, after a warm-up:

- list: GET /api/v1/backgroundtasks, the envelope with every job, N times;
- trigger: POST /api/v1/backgroundtasks/trigger/<job>, N times, each a different job in turn
  (the execution is queued on Redis under a queue name of its own, which no cluster reads and
  which is deleted at the end).

It prints p50/p99 of each beside the targets (list p99 ≤ 50 ms, trigger p99 ≤ 100 ms) and exits 0
whether or not they are met; 1 if it could not measure.

The database is BENCH_POSTGRES_URL / --postgres-url (its name must contain "bench": it is dropped),
Redis BENCH_REDIS_URL / --redis-url; never DATABASE_URL / REDIS_URL.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the script's own directory is bench/

from bench.harness import (  # noqa: E402
    VAR,
    Processes,
    add_scratch_options,
    free_port,
    percentile,
    refuse_unless_scratch,
    scratch_backend,
    services_unreachable,
)

DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/batchdesk_api_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
TARGET_P99_MS = {"list": 50.0, "trigger": 100.0}
APPLICATIONS = 10
PAST_EXECUTIONS = 5


def main() -> int:
    args = parse_args()
    # SIGTERM unwinds like Ctrl-C, through the finally blocks that stop the server and drop the database.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    unreachable = services_unreachable(args.postgres_url, args.redis_url)
    if unreachable:
        print(f"cannot measure: {unreachable}", file=sys.stderr)
        return 1
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # the server's "triggered …" lines are not the point
    queue = f"batchdesk-api-bench-{os.getpid()}"
    try:
        with (scratch_backend("postgres", args, name="bench_api", queue_name=queue) as env,
              Processes(env, VAR / "bench-api") as processes):
            try:
                print(f"loading {args.jobs} jobs", file=sys.stderr)
                token, names = prepare(args.jobs)
                start_server(processes, args)
                figures = measure(args, token, names)
            finally:
                delete_queue()
    except KeyboardInterrupt:
        print("interrupted: server stopped, scratch database dropped", file=sys.stderr)
        return 130
    report(figures, args)
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000, help="Job definitions to load (default 1000).")
    parser.add_argument("--n", type=int, default=300, help="Measured requests of each kind (default 300).")
    parser.add_argument("--warmup", type=int, default=30, help="Unmeasured requests of each kind first (default 30).")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2).")
    add_scratch_options(parser, postgres_url=DEFAULT_POSTGRES_URL, redis_url=DEFAULT_REDIS_URL)
    args = parser.parse_args()
    if args.jobs < 1 or args.n < 1 or args.warmup < 0 or args.workers < 1:
        parser.error("--jobs, --n and --workers must be positive, --warmup not negative")
    refuse_unless_scratch(parser, args)
    return args


# --- the scratch installation -------------------------------------------------------------


def prepare(count: int) -> tuple[str, list[str]]:
    """Load the jobs into the migrated scratch database; return an administrator's token and the jobs' names."""
    from datetime import timedelta

    from django.contrib.auth.models import Group, User
    from django.db import connections
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from apps.catalog.models import Application, Concurrency, JobDefinition
    from apps.catalog.roles import ADMINISTRATOR
    from apps.engine.models import Execution, Status
    from apps.scheduling.models import Schedule

    apps = Application.objects.bulk_create(Application(name=f"APP_{i:02d}") for i in range(APPLICATIONS))
    jobs = JobDefinition.objects.bulk_create(
        JobDefinition(name=f"job_{i:05d}", application=apps[i % APPLICATIONS], job_type="DUMMY",
                      description=f"Bench job {i}", concurrency=Concurrency.ALLOW)
        for i in range(count))
    for minute, job in enumerate(jobs[::5]):
        Schedule.objects.create(job=job, kind="cron", cron=f"{minute % 60} 2 * * *")
    finished = timezone.now() - timedelta(hours=1)
    Execution.objects.bulk_create(
        Execution(job=job, application_id=job.application_id, status=Status.COMPLETED, started_at=finished,
                  finished_at=finished)
        for job in jobs for _ in range(PAST_EXECUTIONS))
    user = User.objects.create_user("bench-admin")
    user.groups.add(Group.objects.get(name=ADMINISTRATOR))
    token = Token.objects.create(user=user).key
    connections.close_all()
    return token, [job.name for job in jobs]


def delete_queue() -> None:
    """The queue this run filled: its name is this run's own, and no cluster reads it."""
    from django_q.brokers import get_broker

    get_broker().delete_queue()


def start_server(processes: Processes, args: argparse.Namespace) -> None:
    """gunicorn on a free port, once the API answers (401: no token)."""
    args.port = free_port()
    processes.spawn("gunicorn", [
        sys.executable, "-m", "gunicorn", "config.wsgi", "--workers", str(args.workers),
        "--worker-class", "gthread", "--threads", "2", "--keep-alive", "30", "--bind", f"127.0.0.1:{args.port}",
    ])
    if not processes.wait_until(lambda: answers(args.port), 60, interval=0.2):
        raise RuntimeError(f"gunicorn did not answer within 60 s; see {processes.log_prefix}-gunicorn.log")


def answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/api/v1/backgroundtasks", timeout=10).status_code == 401
    except requests.RequestException:  # not listening yet, or its workers still booting
        return False


# --- measuring ------------------------------------------------------------------------------


def measure(args: argparse.Namespace, token: str, names: list[str]) -> dict[str, list[float]]:
    """Milliseconds per request (until the whole answer is in), one at a time over one kept-alive connection."""
    base = f"http://127.0.0.1:{args.port}/api/v1/backgroundtasks"
    session = requests.Session()
    session.headers["Authorization"] = f"Token {token}"
    listed = session.get(base, timeout=30).json()["result"]["response"]
    assert len(listed) == len(names), f"the list has {len(listed)} tasks, not {len(names)}"

    def list_tasks() -> None:
        response = session.get(base, timeout=30)
        assert response.status_code == 200, response.text[:300]

    next_job = itertools.cycle(names)

    def trigger() -> None:  # each time the next job: no two triggers of one job in a row
        response = session.post(f"{base}/trigger/{next(next_job)}", timeout=30)
        assert response.status_code == 200, response.text[:300]

    figures = {}
    for kind, call in (("list", list_tasks), ("trigger", trigger)):
        print(f"{kind}: {args.warmup} warm-up and {args.n} measured requests", file=sys.stderr)
        for _ in range(args.warmup):
            call()
        figures[kind] = []
        for _ in range(args.n):
            started = time.perf_counter()
            call()
            figures[kind].append((time.perf_counter() - started) * 1000)
    return figures


def report(figures: dict[str, list[float]], args: argparse.Namespace) -> None:
    print(f"\nBackground-tasks API on PostgreSQL + Redis: {args.jobs} jobs, gunicorn {args.workers} workers "
          f"(gthread), {args.n} sequential requests each over one kept-alive connection\n")
    print(f"{'request':<46} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}   target")
    labels = {"list": f"GET /api/v1/backgroundtasks ({args.jobs} tasks)",
              "trigger": "POST /api/v1/backgroundtasks/trigger/<task>"}
    for kind, values in figures.items():
        p99 = percentile(values, 99)
        verdict = "met" if p99 <= TARGET_P99_MS[kind] else "MISSED"
        print(f"{labels[kind]:<46} {percentile(values, 50):>8.1f} {p99:>8.1f} {max(values):>8.1f}   "
              f"p99 ≤ {TARGET_P99_MS[kind]:.0f} ms: {verdict}")


if __name__ == "__main__":
    sys.exit(main())
