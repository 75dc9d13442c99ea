""""Long running" (SPEC §1): the job's threshold, else its average completed runtime × the
multiplier. The job keeps that average as runs complete, so no list pays a query per row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.engine import lifecycle
from apps.engine.models import Execution, Status
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


def ran_for(job, seconds: float, status: str = Status.COMPLETED) -> Execution:
    execution = Execution.objects.create(job=job, application=job.application, status=Status.RUNNING,
                                         started_at=timezone.now() - timedelta(seconds=seconds))
    lifecycle.finish(execution, status, retry=False)
    return execution


def running_for(job, seconds: float) -> Execution:
    return Execution.objects.create(job=job, application=job.application, status=Status.RUNNING,
                                    started_at=timezone.now() - timedelta(seconds=seconds))


def test_completed_runs_keep_the_jobs_average_and_failures_do_not_count(make_job):
    job = make_job("nightly")
    ran_for(job, 10)
    ran_for(job, 20)
    ran_for(job, 500, Status.ERROR)
    job.refresh_from_db()
    assert job.completed_runs == 2
    assert job.average_runtime_seconds == pytest.approx(15, abs=0.5)


def test_a_run_past_the_average_times_the_multiplier_is_long_running(make_job, settings):
    settings.BATCHDESK = {**settings.BATCHDESK, "LONG_RUNNING_MULTIPLIER": 2.0}
    job = make_job("nightly", concurrency="allow")
    ran_for(job, 10)
    assert not Execution.objects.select_related("job").get(pk=running_for(job, 15).pk).long_running
    assert Execution.objects.select_related("job").get(pk=running_for(job, 25).pk).long_running


def test_the_jobs_threshold_wins_over_the_average(make_job):
    job = make_job("nightly", concurrency="allow", threshold_runtime_seconds=100)
    ran_for(job, 1)
    assert not Execution.objects.select_related("job").get(pk=running_for(job, 50).pk).long_running


def test_without_history_or_threshold_nothing_is_long_running(make_job):
    assert not Execution.objects.select_related("job").get(pk=running_for(make_job("new"), 10_000).pk).long_running


def test_the_api_execution_list_costs_the_same_queries_for_5_or_50_rows(make_job, administrator):
    client = token_client(administrator)
    for i in range(5):
        running_for(make_job(f"job_{i}"), 60)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get("/api/v1/executions?page_size=100").status_code == 200
        return len(captured.captured_queries)

    few = queries()
    for i in range(5, 50):
        running_for(make_job(f"job_{i}"), 60)
    assert queries() == few
