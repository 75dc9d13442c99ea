"""The job page: the last 30 runs drawn with their durations and outcomes, their figures, and the
next five fires over the job's schedules."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.console.reports import job_report, nearest_rank
from apps.engine.models import Execution, Status
from apps.scheduling import services as scheduling
from apps.scheduling.models import Schedule

pytestmark = pytest.mark.django_db


def ran(job, seconds: float, status: str = Status.COMPLETED, ago: int = 0) -> Execution:
    end = timezone.now() - timedelta(minutes=ago)
    return Execution.objects.create(job=job, application=job.application, status=status,
                                    created_at=end - timedelta(seconds=seconds), started_at=end - timedelta(seconds=seconds),
                                    finished_at=end)


def test_it_reports_the_last_30_runs_their_success_rate_average_and_p90(make_job):
    job = make_job("nightly", concurrency="allow")
    for i in range(35):  # the five oldest fall outside the 30
        ran(job, 1000 if i < 5 else 10 + i, ago=100 - i)
    ran(job, 5, Status.ERROR)
    report = job_report(job)
    assert len(report["runs"]) == len(report["bars"]) == 30
    assert report["runs"][-1].status == Status.ERROR  # oldest first, newest last
    completed = [10 + i for i in range(6, 35)]
    assert report["success_rate"] == pytest.approx(100 * 29 / 30)
    assert report["average_seconds"] == pytest.approx(sum(completed) / 29, abs=0.01)
    assert report["p90_seconds"] == pytest.approx(nearest_rank(completed, 90), abs=0.01)
    assert report["failures"] == 1
    tallest = max(report["bars"], key=lambda bar: bar.height)
    assert tallest.seconds == pytest.approx(44, abs=0.01) and tallest.y == report["chart"]["top"]


def test_it_lists_the_next_five_fires_over_every_active_schedule(make_job):
    job = make_job("nightly")
    scheduling.reschedule(Schedule(job=job, kind="cron", cron="0 2 * * *", timezone="UTC"))
    scheduling.reschedule(Schedule(job=job, kind="cron", cron="0 14 * * *", timezone="UTC"))
    scheduling.reschedule(Schedule(job=job, kind="cron", cron="0 8 * * *", timezone="UTC", active=False))
    fires = [moment for moment, _ in job_report(job)["next_fires"]]
    assert len(fires) == 5 and fires == sorted(fires)
    assert {moment.hour for moment in fires} == {2, 14}


def test_the_job_page_draws_the_chart_for_a_viewer_in_a_bounded_number_of_queries(client, viewer, make_job):
    job = make_job("nightly", concurrency="allow")
    client.force_login(viewer)
    url = reverse("admin:catalog_jobdefinition_change", args=[job.pk])

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured.captured_queries)

    ran(job, 3)
    queries()  # the first request of a session writes it
    few = queries()
    for i in range(40):
        ran(job, 3 + i, Status.ERROR if i % 4 == 0 else Status.COMPLETED)
    assert queries() == few
    text = client.get(url).content.decode()
    assert text.count('class="bd-run bd-run-') == 30
    assert "Success rate" in text and "p90" in text and "No active schedule." in text


def test_the_job_form_lists_processes_in_the_same_queries_whatever_their_number(admin_client_logged, make_job, app):
    """Each process in the form's choice reads as application/flow/process: read with its flow and
    application, not two queries a process."""
    from apps.catalog.models import Flow, Process

    job = make_job("nightly", concurrency="allow")
    url = reverse("admin:catalog_jobdefinition_change", args=[job.pk])

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client_logged.get(url).status_code == 200
        return len(captured.captured_queries)

    def add_flows(n: int) -> None:
        for i in range(n):
            flow = Flow.objects.create(application=app, name=f"Flow{Flow.objects.count()}")
            Process.objects.bulk_create([Process(flow=flow, name=f"P{k}") for k in range(3)])

    add_flows(1)
    queries()  # the first request of a session writes it
    few = queries()
    add_flows(5)
    assert queries() == few
    assert admin_client_logged.get(url).content.decode().count("RMS/Flow5/P2") == 1
