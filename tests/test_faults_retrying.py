"""apps/faults.py: database work retried through an outage for a bounded time, and rows handled
one by one. The real outages are in test_faults_database.py; these pin the bounds."""

from __future__ import annotations

import time

import pytest
from django.db import IntegrityError, OperationalError

from apps.faults import Backoff, each_row, retry_db

pytestmark = pytest.mark.once


def failing(times: int, error: Exception):
    calls = []

    def fn() -> str:
        calls.append(time.monotonic())
        if len(calls) <= times:
            raise error
        return "done"

    return fn, calls


def test_retry_db_goes_through_transient_errors_with_growing_pauses(db):
    fn, calls = failing(3, OperationalError("database is locked"))
    assert retry_db(fn, what="test") == "done"
    pauses = [later - earlier for earlier, later in zip(calls, calls[1:])]
    assert len(calls) == 4 and pauses == sorted(pauses)


def test_retry_db_gives_up_after_its_bound_and_raises_the_last_error(db):
    fn, calls = failing(1000, OperationalError("the database system is shutting down"))
    began = time.monotonic()
    with pytest.raises(OperationalError, match="shutting down"):
        retry_db(fn, what="test", give_up_after=0.5)
    assert 0.5 <= time.monotonic() - began < 2.5


def test_retry_db_does_not_retry_what_a_retry_cannot_cure(db):
    fn, calls = failing(1, IntegrityError("duplicate key"))
    with pytest.raises(IntegrityError):
        retry_db(fn, what="test")
    assert len(calls) == 1


def test_a_backoff_doubles_up_to_its_cap():
    backoff = Backoff(first=0.25, cap=1.0)
    assert [backoff.failed() for _ in range(5)] == [0.25, 0.5, 1.0, 1.0, 1.0]
    assert not backoff.due
    backoff.succeeded()
    assert backoff.due and backoff.failing_for() == 0.0


def test_each_row_sets_a_bad_row_aside_and_goes_on_but_stops_on_an_outage(db):
    handled, aside = [], []

    def handle(row: int) -> bool:
        if row == 2:
            raise ValueError("bad row")
        handled.append(row)
        return True

    assert each_row([1, 2, 3], handle, what="test", set_aside=lambda row, exc: aside.append((row, str(exc)))) == 2
    assert (handled, aside) == ([1, 3], [(2, "bad row")])

    def outage(row: int) -> None:
        raise OperationalError("server closed the connection unexpectedly")

    with pytest.raises(OperationalError):
        each_row([1, 2], outage, what="test", set_aside=lambda row, exc: aside.append(row))
    assert aside == [(2, "bad row")]  # an outage is nobody's bad row
