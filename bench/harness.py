"""What the bench scripts share: real manage.py commands in the background, scratch databases,
one child process per backend, percentiles.

Nothing here imports Django: a script sets DATABASE_URL / REDIS_URL for its backend first (Django
and django_q read the environment once, at import), which is also why each backend runs in a
child process of its own (`run_child`).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


# --- one child process per backend ---------------------------------------------------------


def run_child(command: list[str], cleanup: Callable[[], None], prefix: str = "bench-") -> tuple[int, dict | None]:
    """Run `command` plus `--result-file PATH` and return (its exit code, the JSON it left there or None).

    The child gets a session of its own: Ctrl-C reaches it once, through us, and it tidies up in
    order instead of racing its own manage.py commands for the same signal. Whatever it leaves
    behind is swept afterwards; `cleanup` (drop its scratch database) runs if it exited non-zero.
    """
    fd, result_path = tempfile.mkstemp(prefix=prefix, suffix=".json")
    os.close(fd)
    child = subprocess.Popen([*command, "--result-file", result_path], start_new_session=True)
    try:
        try:
            child.wait()
        except BaseException:  # Ctrl-C, or SIGTERM turned into SystemExit
            # SIGTERM, not SIGINT: a shell that starts us in the background makes us (and so
            # the child) ignore SIGINT, while the scripts always handle SIGTERM.
            child.terminate()
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass  # the sweep below kills it
            raise
    finally:
        sweep(child, cleanup)
        result = _read_json(Path(result_path))
        # Here, not after the try: an interrupted run must not leave its temporary file behind.
        Path(result_path).unlink(missing_ok=True)
    return child.returncode, result


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # the child died before writing it
        return None


def sweep(child: subprocess.Popen, cleanup: Callable[[], None]) -> None:
    """Whatever a child that died untidily left: the processes of its group, and `cleanup`."""
    try:
        # The manage.py commands it started (and what they forked) stay in its process group.
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()
    if child.returncode != 0:
        cleanup()


# --- manage.py commands --------------------------------------------------------------------


class Processes:
    """manage.py commands in the background, stopped with everything they forked on exit."""

    def __init__(self, env: dict[str, str], log_prefix: Path) -> None:
        self.env = env
        self.log_prefix = log_prefix
        self.started: list[tuple[str, subprocess.Popen]] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_all()

    def start(self, *command: str) -> subprocess.Popen:
        log = open(f"{self.log_prefix}-{command[0]}.log", "wb")
        # No new session: they stay in our process group, which whoever started us can sweep.
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), *command],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        self.started.append((command[0], process))
        return process

    def wait_until(self, predicate: Callable[[], object], timeout: float) -> bool:
        """Poll until predicate() holds (True) or the timeout passes (False); fail if a command died."""
        deadline = time.monotonic() + timeout
        while not predicate():
            for name, process in self.started:
                if process.poll() is not None:
                    raise RuntimeError(f"manage.py {name} exited ({process.returncode}); see {self.log_prefix}-{name}.log")
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop_all(self) -> None:
        # Noted before the signal: once a cluster's main process is gone, its sentinel and
        # workers can no longer be found through it.
        forked = []
        for _, process in self.started:
            try:
                forked += psutil.Process(process.pid).children(recursive=True)
            except psutil.NoSuchProcess:
                pass
            if process.poll() is None:
                process.terminate()  # both commands stop what they started on SIGTERM
        for _, process in self.started:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        _, alive = psutil.wait_procs(forked, timeout=10)
        for leftover in alive:
            leftover.kill()


# --- scratch databases ---------------------------------------------------------------------


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def maintenance_url(url: str) -> str:
    """The same server, database `postgres`: a database cannot be created or dropped from inside."""
    return urlunsplit(urlsplit(url)._replace(path="/postgres"))


def services_unreachable(postgres_url: str, redis_url: str) -> str:
    """Empty when PostgreSQL (its server) and Redis answer, else why not."""
    import psycopg
    import redis

    try:
        psycopg.connect(maintenance_url(postgres_url), connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {urlsplit(postgres_url).netloc} is unreachable ({str(exc).strip().splitlines()[0]})"
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        return f"Redis at {urlsplit(redis_url).netloc} is unreachable ({exc})"
    return ""


def create_postgres(url: str) -> None:
    """An empty database; one left by an interrupted earlier run is dropped first."""
    drop_postgres(url)
    postgres(url, "CREATE DATABASE {}")


def drop_postgres(url: str) -> None:
    # FORCE: a worker killed mid-task may leave a session behind for a moment.
    postgres(url, "DROP DATABASE IF EXISTS {} WITH (FORCE)")


def drop_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def postgres(url: str, statement: str) -> None:
    """Run `statement`, with {} standing for the database `url` names, from the maintenance database."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(maintenance_url(url), autocommit=True, connect_timeout=3) as connection:
        connection.execute(sql.SQL(statement).format(sql.Identifier(database_name(url))))


# --- figures -------------------------------------------------------------------------------


def percentile(values: list[float], percent: float) -> float:
    """Nearest rank: a value that was measured, with no interpolation."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


# --- a backend with a real dispatcher and cluster -------------------------------------------

BACKENDS = {"sqlite": "SQLite + ORM broker", "postgres": "PostgreSQL + Redis broker"}


def run_with_engine(backend: str, args, *, name: str, measure: Callable, queue_name: str | None = None) -> dict:
    """`measure(backend, args, processes)` against a scratch database of `backend` (dropped
    afterwards), with a real `run_dispatcher` and `qcluster` running. `args` carries
    postgres_url and redis_url; `name` names the SQLite file and the process logs."""
    label = BACKENDS[backend]
    sqlite_path = VAR / f"{name}.sqlite3"
    unreachable = "" if backend == "sqlite" else services_unreachable(args.postgres_url, args.redis_url)
    if unreachable:
        print(f"{label}: skipped: {unreachable}", file=sys.stderr)
        return {"backend": backend, "skipped": unreachable}

    # Before Django and django_q are imported: both read the environment once, at import.
    if backend == "sqlite":
        # Empty rather than unset, so that a REDIS_URL in .env cannot switch the broker.
        os.environ.update(DATABASE_URL=f"sqlite:///{sqlite_path}", REDIS_URL="")
    else:
        os.environ.update(DATABASE_URL=args.postgres_url, REDIS_URL=args.redis_url)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    if queue_name:  # other benches share Redis databases, with queue names of their own
        os.environ["BATCHDESK_QUEUE_NAME"] = queue_name
    command_env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # one "triggered …" line per run would bury the report

    print(f"{label}: preparing a scratch database", file=sys.stderr)
    if backend == "postgres":
        create_postgres(args.postgres_url)
    else:
        drop_sqlite(sqlite_path)  # one left by an interrupted earlier run
    try:
        import django

        django.setup()
        from django.core.management import call_command
        from django_q.brokers import get_broker

        call_command("migrate", verbosity=0, interactive=False)
        get_broker().purge_queue()  # a Redis queue outlives databases: drop an earlier run's leftovers
        with Processes(command_env, VAR / f"{name}-{backend}") as processes:
            processes.start("run_dispatcher")
            processes.start("qcluster")
            figures = measure(backend, args, processes)
        return {"backend": backend, **figures}
    finally:
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        drop_scratch(backend, args.postgres_url, sqlite_path)


def drop_scratch(backend: str, postgres_url: str, sqlite_path: Path) -> None:
    if backend == "sqlite":
        drop_sqlite(sqlite_path)
    else:
        drop_postgres(postgres_url)
