"""WAITING is woken by the events that free it, in order, with a slow safety recheck: the cost of
waiting is proportional to the work that ends, not to the time spent waiting."""

from __future__ import annotations

from collections import deque
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.catalog.models import Concurrency
from apps.engine import leases, lifecycle, services
from apps.engine.models import Execution, Status

pytestmark = pytest.mark.django_db(transaction=True)  # wake-ups are handed out when a finish commits


@pytest.fixture
def throttled(app):
    app.throttle_limit = 3
    app.save(update_fields=["throttle_limit"])
    return app


def run_queue(handed_out: list[int], running: list[Execution]) -> int:
    """Claim every handed-out id, as the workers would; returns how many tasks that took."""
    queue, tasks = deque(handed_out), 0
    handed_out.clear()
    while queue:
        tasks += 1
        claimed = lifecycle.claim(queue.popleft(), None)
        if claimed is not None:
            running.append(claimed)
        queue.extend(handed_out)
        handed_out.clear()
    return tasks


def test_a_throttled_batch_costs_a_few_tasks_per_execution_and_runs_in_order(throttled, make_job, handed_out):
    job = make_job("nightly", concurrency=Concurrency.ALLOW)
    triggered = [services.trigger(job) for _ in range(40)]
    running: list[Execution] = []
    tasks = run_queue(handed_out, running)
    started = [execution.pk for execution in running]
    assert len(running) == 3
    while running:
        lifecycle.finish(running.pop(0), Status.COMPLETED)
        tasks += run_queue(handed_out, running)
        started += [execution.pk for execution in running if execution.pk not in started]
        assert len(running) == min(3, 40 - Execution.objects.filter(status=Status.COMPLETED).count())
    assert Execution.objects.filter(job=job, status=Status.COMPLETED).count() == 40
    assert started == [execution.pk for execution in triggered]  # first come, first started
    assert tasks / 40 <= 2.5, f"{tasks} tasks for 40 executions"


def test_a_waiting_execution_is_rechecked_slowly_and_not_every_few_seconds(throttled, make_job, handed_out, settings):
    job = make_job("nightly", concurrency=Concurrency.ALLOW)
    for _ in range(10):
        services.trigger(job)
    run_queue(handed_out, [])
    waiting = Execution.objects.filter(status=Status.WAITING)
    assert waiting.count() == 7
    recheck = settings.BATCHDESK["WAIT_RECHECK_SECONDS"]
    assert recheck >= 60
    assert all(e.next_check_at >= timezone.now() + timedelta(seconds=recheck - 5) for e in waiting)
    with time_machine.travel(timezone.now() + timedelta(seconds=30), tick=True):
        assert leases.hand_out_due() == 0


def test_a_freed_lock_wakes_the_oldest_waiter_of_its_group_only(make_job, handed_out):
    holder = services.trigger(make_job("ledger_a", lock_group="ledger"))
    waiters = [services.trigger(make_job(f"ledger_{name}", lock_group="ledger")) for name in "bcd"]
    running: list[Execution] = []
    run_queue(handed_out, running)
    assert [e.pk for e in running] == [holder.pk]
    lifecycle.finish(running.pop(), Status.COMPLETED)
    assert handed_out == [waiters[0].pk]
