"""How Batchdesk meets faults: two mechanisms that every long-lived loop and every step shares.

- A database outage (a PostgreSQL restart or failover, a connection reset by a pooler, SQLite's
  "database is locked" during someone's long write) is transient. Work that must not be lost is
  retried through it with back-off (`retry_db`); loops take a failed pass as a missed pass and go
  on (`attempt`); a loop that must not block pauses its database work with a `Backoff`.
- One row that cannot be processed is set aside without holding back the others (`each_row`).

Nothing here knows an execution or an agent: the callers say what a row is and how to set it aside.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable, TypeVar

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection, transaction

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

# What a retry may cure: the connection broke or the database could not answer (locked, shutting
# down, refusing connections, a deadlock victim). Integrity and data errors are the row's own.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, TRANSIENT_DB_ERRORS)


def describe(exc: BaseException) -> str:
    """The error's type and first line, for a log line or an execution's `error`."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def reset_connection() -> None:
    """Drop this thread's connection after a transient error, so that the next query opens a new
    one. Inside a transaction, the transaction's own exit deals with it."""
    if connection.in_atomic_block:
        return
    try:
        connection.close()
    except Exception:  # closing a broken connection may fail too; it is dropped all the same
        pass


def retry_pause_cap() -> float:
    """The longest pause between two attempts: short enough that a worker tries at least three
    times within the grace the dispatcher gives everyone after an outage (AGENT_LOST_SECONDS)."""
    return max(min(10.0, settings.BATCHDESK["AGENT_LOST_SECONDS"] / 3), 0.1)


class Backoff:
    """Pauses between attempts at something that keeps failing: `first` seconds, doubling up to the cap."""

    def __init__(self, first: float = 0.25, cap: float | None = None) -> None:
        self.first = first
        self.cap = cap if cap is not None else retry_pause_cap()
        self.failures = 0
        self.failing_since: float | None = None
        self.next_attempt = 0.0

    def failed(self) -> float:
        """Count a failure; returns the pause before the next attempt."""
        now = time.monotonic()
        if self.failing_since is None:
            self.failing_since = now
        pause = min(self.first * 2 ** self.failures, self.cap)
        self.failures += 1
        self.next_attempt = now + pause
        return pause

    def succeeded(self) -> None:
        self.failures, self.failing_since, self.next_attempt = 0, None, 0.0

    @property
    def due(self) -> bool:
        """Whether the pause after the last failure is over."""
        return time.monotonic() >= self.next_attempt

    def failing_for(self) -> float:
        return 0.0 if self.failing_since is None else time.monotonic() - self.failing_since


def retry_db(fn: Callable[[], T], *, what: str, give_up_after: float | None = None) -> T:
    """fn(), tried again through transient database errors with back-off until it goes through.

    After `give_up_after` seconds of failures (BATCHDESK_DB_RETRY_SECONDS by default) the last
    error is raised. `fn` must be safe to run again after a failure: a transaction that rolled
    back, a conditional update (one that committed before its answer was lost finds nothing to do).
    """
    limit = settings.BATCHDESK["DB_RETRY_SECONDS"] if give_up_after is None else give_up_after
    backoff = Backoff()
    while True:
        try:
            result = fn()
        except TRANSIENT_DB_ERRORS as exc:
            reset_connection()
            if backoff.failing_for() >= limit:
                log.error("%s: the database has not answered for %.0f s; giving up: %s", what,
                          backoff.failing_for(), describe(exc))
                raise
            pause = backoff.failed()
            log.warning("%s: the database did not answer (%s); trying again in %.2g s", what, describe(exc), pause)
            time.sleep(pause)
            continue
        if backoff.failures:
            log.info("%s: done after %d failed attempts over %.1f s", what, backoff.failures, backoff.failing_for())
        return result


def attempt(fn: Callable[[], object], *, what: str, quiet: bool = False) -> BaseException | None:
    """One pass of a loop that must outlive any fault in it; returns the error it swallowed, or None.

    A transient database error is logged on one line (the loop simply tries again on its next
    pass; `quiet` when the loop already said the database is away); anything else with its
    traceback. Either way the loop goes on.
    """
    try:
        fn()
    except TRANSIENT_DB_ERRORS as exc:
        reset_connection()
        log.log(logging.DEBUG if quiet else logging.WARNING,
                "%s: the database did not answer (%s); trying again on the next pass", what, describe(exc))
        return exc
    except Exception as exc:
        log.exception("%s failed; trying again on the next pass", what)
        return exc
    return None


def each_row(rows: Iterable[R], handle: Callable[[R], object], *, what: str,
             set_aside: Callable[[R, Exception], object] | None = None) -> int:
    """Handle each row on its own, in a transaction (or savepoint) of its own; returns how many
    `handle` calls returned a true value.

    A row whose handling raises is logged with the traceback and handed to `set_aside` (in a
    transaction of its own too; if that fails as well it is only logged), and the next row goes on.
    A transient database error is no fault of the row: it is raised, so that the caller's step is
    tried again whole on its next pass.
    """
    done = 0
    for row in rows:
        try:
            with transaction.atomic():
                done += bool(handle(row))
        except TRANSIENT_DB_ERRORS:
            raise
        except Exception as exc:
            log.exception("%s: %s could not be processed; set aside", what, row)
            if set_aside is None:
                continue
            try:
                with transaction.atomic():
                    set_aside(row, exc)
            except TRANSIENT_DB_ERRORS:
                raise
            except Exception:
                log.exception("%s: %s could not even be set aside", what, row)
    return done
