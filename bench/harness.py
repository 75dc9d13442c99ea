"""Real processes for the end-to-end tests and the benches: manage.py commands (and other programs)
in the background, a scratch database, one child process per backend, percentiles.

Nothing here imports Django at module level: a bench sets DATABASE_URL / REDIS_URL for its backend
first (Django and django_q read the environment once, at import), which is also why each backend
runs in a child process of its own (`run_child`). The tests import `Processes` from here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator
from urllib.parse import urlsplit, urlunsplit

import psutil

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


# --- commands in the background ------------------------------------------------------------


class CommandDied(RuntimeError):
    """A command exited while something waited on it, and nobody had asked it to stop."""


@dataclass
class Command:
    name: str
    process: subprocess.Popen
    log: Path
    stopped: bool = False  # asked to stop (or killed): its exit is not a death


class Processes:
    """Commands in the background, each in a process group of its own and logging to a file;
    stopped, with everything they forked, by `stop_all` or at the end of a `with` block.

    A group of its own: Ctrl-C in a terminal reaches whoever started them, not them, and that one
    stops them in order; and a command is killed with its sentinel and workers in one `killpg`.
    They stay in our session, where `run_child` finds them if we die untidily.
    """

    def __init__(self, env: dict[str, str], log_prefix: Path, grace: float = 15.0,
                 manage: list[str] | None = None) -> None:
        self.env = env  # read at each start: a caller may add to it between starts
        self.log_prefix = log_prefix
        self.grace = grace
        # What runs a manage.py command: a bench may name a script that instruments it first.
        self.manage = manage or [sys.executable, str(ROOT / "manage.py")]
        self.commands: list[Command] = []

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop_all()

    @property
    def started(self) -> list[subprocess.Popen]:
        return [command.process for command in self.commands]

    def start(self, *command: str) -> subprocess.Popen:
        """`manage.py <command>`, logging to <log_prefix>-<command>.log."""
        return self.spawn(command[0], [*self.manage, *command])

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen:
        """Any program, from the project's directory, logging to <log_prefix>-<name>.log."""
        again = sum(1 for command in self.commands if command.name == name)
        log = Path(f"{self.log_prefix}-{name}{f'-{again + 1}' if again else ''}.log")
        with open(log, "wb") as out:
            process = subprocess.Popen(
                argv, cwd=ROOT, env={**self.env, "PYTHONUNBUFFERED": "1"}, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT, process_group=0,
            )
        self.commands.append(Command(name, process, log))
        return process

    def check(self) -> None:
        """Raise CommandDied if a command has exited that was not asked to stop."""
        for command in self.commands:
            if not command.stopped and command.process.poll() is not None:
                raise CommandDied(f"{command.name} exited ({command.process.returncode}); see {command.log}")

    def wait_until(self, predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
        """Poll until predicate() holds (True) or `timeout` seconds pass (False); a command that
        dies meanwhile raises CommandDied at once rather than at the timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            self.check()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            time.sleep(min(interval, left))
        return True

    def sleep(self, seconds: float) -> None:
        """A nap that notices a command that died."""
        self.wait_until(lambda: False, seconds, interval=0.5)

    def wait_for_agents(self, *processes: subprocess.Popen, timeout: float = 60) -> None:
        """Until each of `processes` (run_dispatcher, qcluster) has registered its agent as READY."""
        from apps.agents.models import Agent, AgentStatus

        pids = [process.pid for process in processes]
        ready = Agent.objects.filter(pid__in=pids, status=AgentStatus.READY)
        if not self.wait_until(lambda: ready.count() >= len(pids), timeout, interval=0.2):
            raise TimeoutError(f"the commands did not register within {timeout:g} s; see {self.log_prefix}-*.log")

    def stop(self, *processes: subprocess.Popen) -> None:
        """SIGTERM to each, then, after the grace, SIGKILL to whatever is left of their groups.

        SIGTERM to the command only: it stops what it started in order. Sent to the whole group
        it reaches a cluster's sentinel and workers as well, and that cluster never exits.
        """
        for command in self._commands(processes):
            command.stopped = True
            if command.process.poll() is None:
                command.process.terminate()
        deadline = time.monotonic() + self.grace
        for process in processes:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
        for process in processes:
            self.kill_hard(process)

    def kill_hard(self, process: subprocess.Popen) -> None:
        """SIGKILL the process and its whole group (a cluster's sentinel and workers too)."""
        for command in self._commands([process]):
            command.stopped = True
        try:
            # The group outlives its leader while members live.
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait(timeout=10)

    def stop_all(self) -> None:
        """Stop every command not stopped yet."""
        self.stop(*[command.process for command in self.commands if not command.stopped])

    def logs(self, tail: int = 3000) -> str:
        """The end of each command's log, under its file name."""
        return "\n".join(
            f"--- {command.log.name}\n{command.log.read_text(errors='replace')[-tail:]}" for command in self.commands
        )

    def _commands(self, processes: Iterable[subprocess.Popen]) -> list[Command]:
        return [command for command in self.commands if command.process in processes]


def free_port() -> int:
    """A loopback TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- one child process per backend ---------------------------------------------------------


def run_child(command: list[str], cleanup: Callable[[], None], prefix: str = "bench-") -> tuple[int, dict | None]:
    """Run `command` plus `--result-file PATH` and return (its exit code, the JSON it left there or None).

    The child gets a session of its own: Ctrl-C reaches it once, through us, and it tidies up in
    order instead of racing its own commands for the same signal. Whatever it leaves behind is
    swept afterwards; `cleanup` (drop its scratch database) runs if it exited non-zero.
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
    """Whatever a child that died untidily left: the processes of its session, and `cleanup`."""
    # Its commands are process groups of their own, but in its session, with what they forked.
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == child.pid:
                process.kill()
        except (OSError, psutil.Error):  # gone meanwhile
            pass
    child.wait()
    if child.returncode != 0:
        cleanup()


BACKENDS = {"sqlite": "SQLite + ORM broker", "postgres": "PostgreSQL + Redis broker"}


def run_per_backend(args: argparse.Namespace, *, name: str, measure: Callable, report: Callable[[list[dict]], None],
                    queue_name: str | None = None, manage: list[str] | None = None) -> int:
    """The main() of a bench measured on one backend or, with --backend both, on each in a child
    process of its own (the same command line, --backend named). A child hands its figures back
    through --result-file; the parent prints `report(results)`. See `run_with_engine` for the rest."""
    # SIGTERM unwinds like Ctrl-C, through the finally blocks that stop processes and drop databases.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        if args.backend == "both":
            results = [_measure_in_child(backend, args, name) for backend in BACKENDS]
        else:
            results = [run_with_engine(args.backend, args, name=name, measure=measure, queue_name=queue_name,
                                       manage=manage)]
            if args.result_file:
                Path(args.result_file).write_text(json.dumps(results[0]))
                return 0
    except KeyboardInterrupt:
        print("interrupted: processes stopped, scratch databases removed", file=sys.stderr)
        return 130
    report(results)
    return 1 if any("failed" in result for result in results) else 0


def _measure_in_child(backend: str, args: argparse.Namespace, name: str) -> dict:
    # The same options: argparse keeps the last --backend.
    command = [sys.executable, sys.argv[0], *sys.argv[1:], "--backend", backend]

    def cleanup() -> None:
        try:
            drop_scratch(backend, args.postgres_url, VAR / f"{name}.sqlite3")
        except Exception as exc:  # unreachable PostgreSQL: then nothing was made there either
            print(f"{BACKENDS[backend]}: could not check for a scratch database to drop: {exc}", file=sys.stderr)

    returncode, result = run_child(command, cleanup, prefix=f"{name}-{backend}-")
    return result if result is not None else {"backend": backend, "failed": f"exit code {returncode}; see its output above"}


def measured(results: list[dict]):
    """(its backend's label, result) for each result with figures, in order; a backend without them
    is printed in its row with why (skipped, or failed) and left out."""
    for result in results:
        label = BACKENDS[result["backend"]]
        if why := not_measured(result):
            print(f"{label:<27}{why}")
            continue
        yield label, result


def not_measured(result: dict) -> str:
    """Why a backend has no figures ("skipped: …" or "FAILED: …"), or empty if it has them."""
    if "skipped" in result:
        return f"skipped: {result['skipped']}"
    if "failed" in result:
        return f"FAILED: {result['failed']}"
    return ""


# --- scratch databases ---------------------------------------------------------------------


def add_scratch_options(parser: argparse.ArgumentParser, *, postgres_url: str, redis_url: str,
                        env_prefix: str = "BENCH", per_backend: bool = False) -> None:
    """--postgres-url and --redis-url, defaulting to <env_prefix>_POSTGRES_URL / _REDIS_URL, never
    DATABASE_URL / REDIS_URL: the database is dropped. `per_backend` adds the child's --result-file."""
    parser.add_argument("--postgres-url", default=os.environ.get(f"{env_prefix}_POSTGRES_URL", postgres_url),
                        help="Scratch database to create and drop; its name must contain 'bench'.")
    parser.add_argument("--redis-url", default=os.environ.get(f"{env_prefix}_REDIS_URL", redis_url))
    if per_backend:
        parser.add_argument("--result-file", help=argparse.SUPPRESS)  # how a child hands its figures back


def refuse_unless_scratch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if "bench" not in database_name(args.postgres_url):
        parser.error(f"refusing to drop {database_name(args.postgres_url)!r}: name a database containing 'bench'")


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


@contextmanager
def scratch_backend(backend: str, args: argparse.Namespace, *, name: str,
                    queue_name: str | None = None) -> Iterator[dict[str, str]]:
    """Django set up in this process on an empty, migrated database of `backend`, dropped
    afterwards; yields the environment for the commands that are to share it.

    Once a process: Django and django_q read the environment once, at import. `args` carries
    postgres_url and redis_url; `name` names the SQLite file under var/.
    """
    sqlite_path = VAR / f"{name}.sqlite3"
    if backend == "sqlite":
        # Empty rather than unset, so that a REDIS_URL in .env cannot switch the broker.
        os.environ.update(DATABASE_URL=f"sqlite:///{sqlite_path}", REDIS_URL="")
    else:
        os.environ.update(DATABASE_URL=args.postgres_url, REDIS_URL=args.redis_url)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    if queue_name:  # other benches share Redis databases, with queue names of their own
        os.environ["BATCHDESK_QUEUE_NAME"] = queue_name
    command_env = dict(os.environ)
    os.environ.setdefault("LOG_LEVEL", "WARNING")  # one "triggered …" line per run would bury the report

    print(f"{BACKENDS[backend]}: preparing a scratch database", file=sys.stderr)
    VAR.mkdir(exist_ok=True)
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
        yield command_env
    finally:
        if "django.db" in sys.modules:
            from django.db import connections

            connections.close_all()
        drop_scratch(backend, args.postgres_url, sqlite_path)


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


def drop_scratch(backend: str, postgres_url: str, sqlite_path: Path) -> None:
    if backend == "sqlite":
        drop_sqlite(sqlite_path)
    else:
        drop_postgres(postgres_url)


def postgres(url: str, statement: str) -> None:
    """Run `statement`, with {} standing for the database `url` names, from the maintenance database."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(maintenance_url(url), autocommit=True, connect_timeout=3) as connection:
        connection.execute(sql.SQL(statement).format(sql.Identifier(database_name(url))))


# --- a backend with a real dispatcher and cluster -------------------------------------------


def run_with_engine(backend: str, args: argparse.Namespace, *, name: str, measure: Callable,
                    queue_name: str | None = None, manage: list[str] | None = None) -> dict:
    """`measure(backend, args, processes)` against a scratch database of `backend` (dropped
    afterwards), with a real `run_dispatcher` and `qcluster` running and registered. `args`
    carries postgres_url and redis_url; `name` names the SQLite file and the process logs;
    `manage` what runs the commands (default `python manage.py`, see `Processes`)."""
    unreachable = "" if backend == "sqlite" else services_unreachable(args.postgres_url, args.redis_url)
    if unreachable:
        print(f"{BACKENDS[backend]}: skipped: {unreachable}", file=sys.stderr)
        return {"backend": backend, "skipped": unreachable}
    with (scratch_backend(backend, args, name=name, queue_name=queue_name) as env,
          Processes(env, VAR / f"{name}-{backend}", manage=manage) as processes):
        print(f"{BACKENDS[backend]}: waiting for the dispatcher and the cluster", file=sys.stderr)
        processes.wait_for_agents(processes.start("run_dispatcher"), processes.start("qcluster"), timeout=120)
        return {"backend": backend, **measure(backend, args, processes)}


def dummy_job(name: str):
    """A DUMMY job, in an application BENCH, that may run alongside itself (concurrency=allow)."""
    from apps.catalog.models import Application, Concurrency, JobDefinition

    application, _ = Application.objects.get_or_create(name="BENCH")
    return JobDefinition.objects.create(name=name, application=application, job_type="DUMMY",
                                        concurrency=Concurrency.ALLOW)


# --- figures -------------------------------------------------------------------------------


def percentile(values: list[float], percent: float) -> float:
    """Nearest rank: a value that was measured, with no interpolation; NaN of no values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)] if ordered else math.nan
