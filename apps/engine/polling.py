"""Polling custom-type executions: the dispatcher claims due polls (`claim_due_polls`), a worker
polls a batch of them concurrently (`poll_batch`), and the answers of still-running jobs book
their next polls in a few UPDATEs (`book_next_polls`). The Status call itself and what follows
from its answer belong to the custom kind (apps/engine/kinds/custom.py)."""

from __future__ import annotations

import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone

from django.db import connection, transaction
from django.db.models import Case, F, TextField, Value, When
from django.utils import timezone
from django_q.tasks import async_task

from apps.connectors.client import Endpoint, describe
from apps.engine import lifecycle
from apps.engine.kinds.custom import CustomKind, endpoint_of, note_unknown_status
from apps.engine.leases import LeaseKeeper
from apps.engine.models import Execution, Status
from apps.faults import TRANSIENT_DB_ERRORS, each_row
from apps.faults import describe as describe_error

log = logging.getLogger(__name__)

# Answers of one poll batch that came within this long of each other are booked by one UPDATE.
BOOKING_STEP_SECONDS = 0.25
custom = CustomKind()


def claim_due_polls(limit: int = 5000, batch_size: int | None = None) -> int:
    """The dispatcher's step: lease due polls and hand them out in batches.

    It claims what falls due before the middle of the next tick too: the dispatcher ticks about
    once a second, so rounding each due time to the nearest tick (up to half a tick early)
    halves the worst lag that rounding always up would add, and a poll early by half a second
    harms nothing: the next one is booked from when this one is answered.
    """
    now = timezone.now()
    horizon = now + timedelta(seconds=lifecycle.setting("DISPATCHER_TICK_SECONDS") / 2)
    lease = timedelta(seconds=lifecycle.setting("POLL_LEASE_SECONDS"))
    with transaction.atomic():
        due = list(
            Execution.objects.select_for_update(skip_locked=True)
            .filter(status=Status.RUNNING, next_check_at__lte=horizon)
            .exclude(external_execution_id="")
            .order_by("next_check_at")
            .values_list("pk", flat=True)[:limit]
        )
        if not due:
            return 0
        Execution.objects.filter(pk__in=due).update(next_check_at=now + lease)
    # Batches of at most POLL_BATCH_SIZE, of even sizes, so that the workers finish together.
    batches = math.ceil(len(due) / (batch_size or lifecycle.setting("POLL_BATCH_SIZE")))
    broker = lifecycle.queue_broker()
    for index in range(batches):
        async_task("apps.engine.tasks.poll_batch", due[index * len(due) // batches:(index + 1) * len(due) // batches],
                   broker=broker)
    return len(due)


def poll_batch(execution_ids: list[int]) -> int:
    """Poll each execution once, concurrently; returns how many were polled.

    The threads only make the Status calls; this thread then books the executions still RUNNING
    for their next poll together, in a few UPDATEs (book_next_polls). Only the rare outcomes
    (ended, failed, timed out) touch the database from a poll thread.
    """
    executions = list(
        Execution.objects.select_related("job__process__flow", "job__custom_type", "application")
        .filter(pk__in=execution_ids, status=Status.RUNNING)
        .exclude(external_execution_id="")
    )
    if not executions:
        return 0
    endpoints: dict[tuple[int | None, int], Endpoint] = {}
    polled: list[tuple[Execution, Endpoint]] = []

    def prepare(execution: Execution) -> None:
        key = (execution.job.custom_type_id, execution.application_id)
        if key not in endpoints:
            endpoints[key] = endpoint_of(execution)
        polled.append((execution, endpoints[key]))

    # One that cannot be polled (its job's type edited, a secret that no longer decrypts) ends in
    # ERROR with the reason; the rest of the batch is polled as usual.
    each_row(executions, prepare, what="polling", set_aside=unpollable)
    # A batch of slow systems may outlive its lease: the keeper renews it while calls are in flight.
    with LeaseKeeper([execution.pk for execution, _ in polled], lifecycle.setting("POLL_LEASE_SECONDS")) as keeper:
        def poll_one(execution: Execution, endpoint: Endpoint) -> tuple[dict, datetime] | None:
            try:
                return _poll_in_thread(execution, endpoint)
            finally:
                keeper.done(execution.pk)

        answers = list(_poll_pool().map(lambda pair: poll_one(*pair), polled))
    book_next_polls([(execution, endpoint, *answered)
                     for (execution, endpoint), answered in zip(polled, answers) if answered is not None])
    return len(executions)


def unpollable(execution: Execution, exc: Exception) -> None:
    lifecycle.set_aside(execution, exc, "could not be polled")


_pool: ThreadPoolExecutor | None = None
_pool_pid = 0


def _poll_pool() -> ThreadPoolExecutor:
    """This process's poll threads, kept between batches (a django-q2 worker is a forked process:
    threads do not survive a fork, hence the pid check)."""
    global _pool, _pool_pid
    if _pool is None or _pool_pid != os.getpid():
        _pool = ThreadPoolExecutor(max_workers=lifecycle.setting("POLL_THREADS"), thread_name_prefix="poll")
        _pool_pid = os.getpid()
    return _pool


def _poll_in_thread(execution: Execution, endpoint: Endpoint) -> tuple[dict, datetime] | None:
    """The answer of a still-running job and when it came, or None (see CustomKind.poll)."""
    try:
        answer = custom.poll(execution, endpoint)
        return None if answer is None else (answer, timezone.now())
    except TRANSIENT_DB_ERRORS as exc:  # its lease brings it back
        log.warning("polling execution %s: the database did not answer (%s)", execution.pk, describe_error(exc))
        return None
    except Exception as exc:
        log.exception("polling execution %s failed; it ends in ERROR", execution.pk)
        each_row([execution], lambda row: unpollable(row, exc), what="polling")
        return None
    finally:
        connection.close()  # only the rare outcomes open one; the pool's threads outlive this batch


def book_next_polls(running: list[tuple[Execution, Endpoint, dict, datetime]]) -> None:
    """Record the answers of still-running jobs, each with the time it came, and book their next polls.

    Each next poll is due one poll interval after its answer, as if booked one by one, except
    that answers within one BOOKING_STEP_SECONDS step share one UPDATE, booked from the start of
    that step: a batch costs a few UPDATEs, not one per execution, and a poll comes at most a
    step early.
    """
    groups: dict[tuple[float, float], list[int]] = {}
    infos: dict[int, str] = {}
    for execution, endpoint, answer, answered_at in running:
        step = answered_at.timestamp() // BOOKING_STEP_SECONDS * BOOKING_STEP_SECONDS
        groups.setdefault((endpoint.poll_interval, step), []).append(execution.pk)
        info = describe(answer.get("executionInfo"))
        if info and info != execution.execution_info:  # most polls repeat the info they had: no write
            infos[execution.pk] = info
    for (interval, step), pks in groups.items():
        next_poll = datetime.fromtimestamp(step + interval, tz=dt_timezone.utc)
        try:
            _book(pks, next_poll, infos)
        except TRANSIENT_DB_ERRORS:
            raise
        except Exception:  # one row the database refuses: book them one by one, and set that one aside
            log.exception("booking %d polls together failed; booking them one by one", len(pks))
            rows = [execution for execution, *_ in running if execution.pk in set(pks)]
            each_row(rows, lambda execution: _book([execution.pk], next_poll, infos), what="booking polls",
                     set_aside=unpollable)
    for execution, _, answer, _ in running:
        note_unknown_status(execution, answer)


def _book(pks: list[int], next_poll: datetime, infos: dict[int, str]) -> None:
    updates = {"poll_failures": 0, "next_check_at": next_poll}
    changed = [When(pk=pk, then=Value(infos[pk])) for pk in pks if pk in infos]
    if changed:
        updates["execution_info"] = Case(*changed, default=F("execution_info"), output_field=TextField())
    Execution.objects.filter(pk__in=pks, status=Status.RUNNING).update(**updates)
