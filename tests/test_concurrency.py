"""Races: the database, not luck, keeps forbid jobs single and lock groups exclusive.

They run on SQLite (where IMMEDIATE transactions serialise writers) and on PostgreSQL
(where the partial unique indexes and row locks do the work)."""

from __future__ import annotations

import pytest

from apps.catalog.models import Concurrency
from apps.engine import lifecycle, services
from apps.engine.models import Execution, Status
from apps.errors import BatchError, ErrorCode
from tests.conftest import race, wait_for


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("count", [2, 20])
def test_it_admits_one_execution_of_simultaneous_forbid_triggers(make_job, count):
    job = make_job("exclusive", concurrency=Concurrency.FORBID)
    results = race(count, lambda i: services.trigger(job))
    executions = [r for r in results if isinstance(r, Execution)]
    refused = [r for r in results if isinstance(r, BatchError)]
    assert len(executions) == 1, results
    assert len(refused) == count - 1
    assert {(e.code, e.message) for e in refused} == {("JOB_ALREADY_RUNNING", ErrorCode.JOB_ALREADY_RUNNING.message)}
    assert Execution.objects.filter(job=job).count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_starts_one_of_many_simultaneous_claims_in_a_lock_group(make_job):
    jobs = [make_job(f"ledger_{i}", lock_group="ledger", concurrency=Concurrency.ALLOW) for i in range(8)]
    pending = [services.trigger(job) for job in jobs]
    results = race(len(pending), lambda i: lifecycle.claim(pending[i].pk, None))
    assert len([r for r in results if isinstance(r, Execution)]) == 1, results
    assert Execution.objects.filter(status=Status.RUNNING).count() == 1
    waiting = Execution.objects.filter(status=Status.WAITING)
    assert waiting.count() == 7
    assert all("lock group ledger is busy" in e.waiting_reason for e in waiting)


@pytest.mark.e2e
def test_jobs_in_one_lock_group_never_overlap_on_a_real_cluster(engine_up, make_job):
    jobs = [make_job(f"close_{name}", command="sleep 0.5", lock_group="ledger", concurrency=Concurrency.ALLOW)
            for name in "abc"]
    triggered = [services.trigger(job) for job in jobs for _ in range(2)]
    wait_for(lambda: Execution.objects.filter(pk__in=[e.pk for e in triggered], status=Status.COMPLETED).count() == 6,
             timeout=40, message="six lock-group runs to complete")
    runs = sorted(Execution.objects.filter(pk__in=[e.pk for e in triggered]).values_list("started_at", "finished_at"))
    for (_, previous_end), (next_start, _) in zip(runs, runs[1:]):
        assert next_start >= previous_end, runs
