"""Batch Monitoring: a business date to choose; running now beside the usual duration; the final
failure of each job (never its retries) with Restart; what waits and why; held work with Release;
operator actions in the activity; a timeline zoomed to the day's activity and grouped; a live
refresh that reads only what is not finished; and no query per row."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps import audit
from apps.catalog.models import Flow, Process
from apps.console import monitoring
from apps.engine.models import Execution, Status, Trigger

pytestmark = pytest.mark.django_db

PAGE = reverse("admin:monitoring")
LIVE = reverse("admin:monitoring_live")


def run(job, status, *, started_min_ago=None, minutes=1, **fields) -> Execution:
    now = timezone.now()
    started = now - timedelta(minutes=started_min_ago) if started_min_ago is not None else None
    finished = started + timedelta(minutes=minutes) if started and status not in (Status.RUNNING,) else None
    return Execution.objects.create(job=job, application=job.application, status=status, started_at=started,
                                    finished_at=finished, created_at=started or now, **fields)


@pytest.fixture
def night(make_job):
    """A job that failed, was retried and failed again; one failed once; one running long; one
    waiting; one held; a few completed."""
    retried = make_job("retried", max_retries=1, concurrency="allow")
    first = run(retried, Status.ERROR, started_min_ago=50, error="exit code 1")
    final = run(retried, Status.ERROR, started_min_ago=40, error="exit code 1", attempt=2, retry_of=first,
                trigger=Trigger.RETRY)
    once = make_job("once", concurrency="allow")
    lonely = run(once, Status.ERROR, started_min_ago=30, error="boom")
    slow = make_job("slow", concurrency="allow")
    slow.average_runtime_seconds, slow.completed_runs = 60.0, 3
    slow.save()
    run(slow, Status.COMPLETED, started_min_ago=45)
    long = run(slow, Status.RUNNING, started_min_ago=10)
    waiting = run(make_job("later"), Status.WAITING, waiting_reason="lock group nightly is busy")
    held = run(make_job("parked"), Status.HELD, waiting_reason="held by ada")
    return {"first": first, "final": final, "lonely": lonely, "long": long, "waiting": waiting, "held": held}


def test_failures_list_the_final_failure_of_each_job_with_its_attempts_and_restart(admin_client_logged, night):
    page = admin_client_logged.get(PAGE)
    failures = [row.execution.pk for row in page.context["failures"]]
    assert failures == [night["lonely"].pk, night["final"].pk]  # the retried attempt is not listed
    text = page.content.decode()
    assert "2 of 2" in text and "1 of 1" in text
    restart = reverse("admin:engine_execution_operate", args=[night["final"].pk, "restart"])
    assert restart in text


def test_a_restarted_failure_no_longer_needs_a_hand(admin_client_logged, night, handed_out):
    admin_client_logged.post(reverse("admin:engine_execution_operate", args=[night["lonely"].pk, "restart"]),
                             {"next": PAGE})
    assert [row.execution.pk for row in admin_client_logged.get(PAGE).context["failures"]] == [night["final"].pk]


def test_running_shows_elapsed_beside_the_usual_duration_and_flags_long_running(admin_client_logged, night):
    [row] = admin_client_logged.get(PAGE).context["running"]
    assert row.execution.pk == night["long"].pk and row.long_running
    assert row.usual == 60.0 and 590 < row.elapsed < 610


def test_waiting_says_why_and_held_work_can_be_released(admin_client_logged, night):
    text = admin_client_logged.get(PAGE).content.decode()
    assert "lock group nightly is busy" in text
    release = reverse("admin:engine_execution_operate", args=[night["held"].pk, "release"])
    assert release in text
    assert admin_client_logged.post(release, {"next": PAGE})["Location"] == PAGE
    assert Execution.objects.get(pk=night["held"].pk).status == Status.WAITING


def test_a_viewer_sees_every_section_and_no_button(client, viewer, night):
    client.force_login(viewer)
    text = client.get(PAGE).content.decode()
    assert "Failures that need a hand" in text and "Held" in text
    assert "operate/" not in text


def test_the_activity_includes_operator_actions(admin_client_logged, night):
    audit.record("ada", "hold", night["held"])
    events = admin_client_logged.get(PAGE).context["activity"]
    assert ("operator", "hold") in [(event.kind, event.text) for event in events]
    assert any(event.kind == "execution" for event in events)


def test_the_timeline_spans_the_days_activity_and_groups_by_application_flow_and_process(make_job, app, night):
    process = Process.objects.create(flow=Flow.objects.create(application=app, name="Close", cycle="Nightly"),
                                     name="Extract")
    run(make_job("in_flow", process=process), Status.COMPLETED, started_min_ago=20)
    drawn = monitoring.timeline(monitoring.Day(timezone.localdate()))
    span = drawn["t1"] - drawn["t0"]
    assert 50 * 60 < span < 60 * 60  # about the 50 minutes of activity, not 24 hours
    assert [group["name"] for group in drawn["groups"]] == ["RMS", "RMS · Close · Extract"]
    retried = next(lane for lane in drawn["lanes"] if lane.label == "retried")
    assert len(retried.bars) == 2  # one lane per job, a bar per attempt
    assert all(0 <= bar["x"] <= drawn["width"] for lane in drawn["lanes"] for bar in lane.bars)


def test_another_business_date_shows_that_day(admin_client_logged, make_job):
    job = make_job("yesterday", concurrency="allow")
    yesterday = timezone.localdate() - timedelta(days=1)
    noon = timezone.make_aware(datetime.combine(yesterday, datetime.min.time())) + timedelta(hours=12)
    Execution.objects.create(job=job, application=job.application, status=Status.ERROR, created_at=noon,
                             started_at=noon, finished_at=noon + timedelta(minutes=5), error="old")
    assert admin_client_logged.get(PAGE).context["failures"] == []
    page = admin_client_logged.get(PAGE, {"date": yesterday.isoformat()})
    assert [row.execution.error for row in page.context["failures"]] == ["old"]
    assert page.context["timeline"]["bars"] == 1


def test_the_live_refresh_reads_only_open_and_new_executions(admin_client_logged, night, make_job):
    since = timezone.now()
    fresh = run(make_job("fresh"), Status.RUNNING, started_min_ago=0)
    answer = admin_client_logged.get(LIVE, {"open": f"{night['long'].pk}", "since": since.timestamp()}).json()
    assert sorted(bar["id"] for bar in answer["bars"]) == sorted([night["long"].pk, fresh.pk])
    assert set(answer["sections"]) == {"flows", "counts", "running", "failures", "waiting", "held", "activity"}
    assert "Running now (2)" in answer["sections"]["running"]
    timeline = admin_client_logged.get(LIVE, {"timeline": 1}).json()["timeline"]
    assert f'data-id="{fresh.pk}"' in timeline


def test_the_page_and_its_refresh_cost_the_same_queries_for_10_or_100_executions(admin_client_logged, make_job):
    def queries(url) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client_logged.get(url).status_code == 200
        return len(captured.captured_queries)

    def add(n: int) -> None:
        for i in range(n):
            job = make_job(f"job_{Execution.objects.count()}_{i}", max_retries=1)
            status = [Status.COMPLETED, Status.ERROR, Status.RUNNING, Status.WAITING, Status.HELD][i % 5]
            run(job, status, started_min_ago=None if status in (Status.WAITING, Status.HELD) else 30 - i % 30)

    add(10)
    queries(PAGE)
    few, few_live = queries(PAGE), queries(LIVE)
    add(90)
    assert (queries(PAGE), queries(LIVE)) == (few, few_live)


def test_the_timeline_draws_coordinates_unlocalized_whatever_the_language(night):
    """An SVG needs 12.5: a language that writes 12,5 must not reach the drawing."""
    import re

    from django.template.loader import render_to_string
    from django.utils import translation

    drawn = monitoring.timeline(monitoring.Day(timezone.localdate()))
    with translation.override("de"):
        html = render_to_string("console/_timeline.html", {"timeline": drawn})
    assert re.search(r' (x|width|data-start)="[0-9]+\.[0-9]+"', html)
    assert not re.search(r' (x|width|data-start)="[0-9.]*,', html)
