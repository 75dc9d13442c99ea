"""The cast and the machinery of the suite: jobs built in code, a synchronous queue for unit
tests, and real dispatcher and cluster processes for end-to-end tests."""

from __future__ import annotations

import os
import threading
import time
from typing import Callable

import pytest
from django.contrib.auth.models import Group, User
from django.db import connection
from django_q.conf import Conf
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.catalog.models import Application, JobDefinition
from apps.catalog.roles import ADMINISTRATOR, VIEWER
from apps.connectors.client import forget_systems
from apps.connectors.oauth import tokens
from bench.harness import Processes

ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith(("postgres", "pgsql"))


def pytest_collection_modifyitems(config, items) -> None:
    """Two markers run once, on the SQLite pass of `make test` (which always runs, so no test is
    skipped everywhere), where the backend does not matter:
    - `browser`: what a browser sees does not depend on the backend, and they are the slowest tests.
      BROWSER_TESTS=always runs them on any backend, BROWSER_TESTS=never skips them; without
      /usr/bin/chromium they are skipped with the command that installs it (`make test` does).
    - `once`: an HTTP fault or pure logic; the PostgreSQL + Redis pass would only repeat it."""
    choice = os.environ.get("BROWSER_TESTS", "")
    browser_skip = None
    if choice == "never":
        browser_skip = "BROWSER_TESTS=never"
    elif ON_POSTGRES and choice != "always":
        browser_skip = "browser tests run on the SQLite pass only (BROWSER_TESTS=always to run them here)"
    elif not os.path.exists("/usr/bin/chromium"):
        browser_skip = "no /usr/bin/chromium: apt-get install -y chromium (make test does)"
    once_skip = "backend-independent (@pytest.mark.once): runs in the SQLite pass" if ON_POSTGRES else None
    for item in items:
        if browser_skip and "browser" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=browser_skip))
        elif once_skip and item.get_closest_marker("once"):
            item.add_marker(pytest.mark.skip(reason=once_skip))


def wait_for(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.1, message: str = ""):
    """Poll until predicate() is truthy and return its value; fail with `message` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {message or predicate}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def fresh_process_state():
    """What a process remembers is not carried from one test to the next: OAuth tokens, what was
    learnt of each external system's answers, the schedules whose fire failed."""
    from apps.scheduling import services as scheduling

    def forget() -> None:
        tokens.clear()
        forget_systems()
        scheduling._failing.clear()

    forget()
    yield
    forget()


@pytest.fixture(autouse=True)
def fast_passwords(settings) -> None:
    """The cast's passwords hashed cheaply: PBKDF2's cost (a second or more a user on a busy
    machine) is for production."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def token_client(user: User) -> APIClient:
    """A client that sends `Authorization: Token <key>` for `user`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    return client


@pytest.fixture
def app(db) -> Application:
    return Application.objects.create(name="RMS", description="Retail merchandising")


@pytest.fixture
def make_job(app) -> Callable[..., JobDefinition]:
    def make(name: str = "job", command: str = "echo hello", job_type: str = "EXEC", **fields) -> JobDefinition:
        fields.setdefault("application", app)
        return JobDefinition.objects.create(name=name, command=command, job_type=job_type, **fields)

    return make


@pytest.fixture
def sync_queue(monkeypatch):
    """django-q2 runs each queued task at once, in this process (its exceptions propagate)."""
    monkeypatch.setattr(Conf, "SYNC", True)


@pytest.fixture
def administrator(db) -> User:
    user = User.objects.create_user("ada", password="pw-ada-123", is_staff=True)
    user.groups.add(Group.objects.get(name=ADMINISTRATOR))
    return user


@pytest.fixture
def viewer(db) -> User:
    user = User.objects.create_user("vic", password="pw-vic-123", is_staff=True)
    user.groups.add(Group.objects.get(name=VIEWER))
    return user


@pytest.fixture
def admin_client_logged(client, administrator):
    client.force_login(administrator)
    return client


def race(count: int, action) -> list[object]:
    """Run `action(i)` in `count` threads released at once, each with its own database
    connection; return what each returned or raised."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = action(i)
        except Exception as exc:  # collected and asserted on by the test
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def group_alive(pgid: int) -> bool:
    """Whether any live (not zombie) process remains in the process group."""
    import psutil

    for process in psutil.process_iter(["status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


# --- real processes ----------------------------------------------------------------------


def database_url() -> str:
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER']}:{s['PASSWORD']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def engine_env() -> dict[str, str]:
    """The test database, and heartbeats and leases short enough for a test to see them lapse."""
    return {
        **os.environ,
        "DATABASE_URL": database_url(),
        "BATCHDESK_AGENT_HEARTBEAT_SECONDS": "0.5",
        "BATCHDESK_AGENT_LOST_SECONDS": "3",
        "BATCHDESK_RUN_LEASE_SECONDS": "6",
        "BATCHDESK_DISPATCH_LEASE_SECONDS": "3",
        "BATCHDESK_KILL_GRACE_SECONDS": "1",
        "Q_WORKERS": "3",
    }


@pytest.fixture
def processes(transactional_db, tmp_path):
    """Real manage.py commands against the test database, stopped at teardown; their logs are
    printed when a test fails."""
    from django_q.brokers import get_broker

    get_broker().purge_queue()  # nothing left over from an earlier run
    procs = Processes(engine_env(), tmp_path / "manage", grace=10)
    yield procs
    procs.stop_all()
    print(procs.logs())


@pytest.fixture
def engine_up(processes):
    """A dispatcher and a cluster running, their agents registered."""
    processes.wait_for_agents(processes.start("run_dispatcher"), processes.start("qcluster"), timeout=30)
    return processes


@pytest.fixture
def handed_out(monkeypatch) -> list[int]:
    """The execution ids the engine hands to the queue, recorded instead of queued: a test then
    runs them itself with `apps.engine.tasks.start_execution`."""
    from apps.engine import lifecycle

    ids: list[int] = []
    monkeypatch.setattr(lifecycle, "hand_out", lambda execution_ids: ids.extend(execution_ids))
    return ids
