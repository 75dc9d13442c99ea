"""Schedules count what ran: `repeats` counts fired executions (not skipped slots), run_all after
an outage stops at `repeats`, an edit never overwrites the count a concurrent fire wrote, and a
schedule whose fire keeps failing backs off instead of making the dispatcher spin."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
import time_machine

from apps.catalog.models import Concurrency
from apps.engine.models import Execution, Status
from apps.scheduling import services
from apps.scheduling.models import FiredSlot, Kind, Misfire, Outcome, Schedule
from tests.conftest import token_client

UTC = dt_timezone.utc
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)

pytestmark = pytest.mark.django_db


def every_minute(job, **fields) -> Schedule:
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        return Schedule.objects.create(job=job, kind=Kind.CRON, cron="* * * * *", timezone="UTC", **fields)


def test_repeats_count_fired_executions_not_skipped_slots(make_job, handed_out):
    job = make_job("exclusive", command="", job_type="DUMMY", concurrency=Concurrency.FORBID)
    schedule = every_minute(job, repeats=2)
    running = Execution.objects.create(job=job, application=job.application, status=Status.RUNNING, exclusive=True)
    with time_machine.travel(T0, tick=False):
        services.fire_due()  # skipped: the job is still running
    schedule.refresh_from_db()
    assert (schedule.fire_count, schedule.active) == (0, True)
    Execution.objects.filter(pk=running.pk).update(status=Status.COMPLETED)
    for minute in (1, 2):
        with time_machine.travel(T0 + timedelta(minutes=minute), tick=False):
            services.fire_due()
        Execution.objects.filter(job=job).update(status=Status.COMPLETED)
    schedule.refresh_from_db()
    assert (schedule.fire_count, schedule.active) == (2, False)
    assert list(FiredSlot.objects.filter(schedule=schedule).order_by("slot").values_list("outcome", flat=True)) == [
        Outcome.SKIPPED, Outcome.FIRED, Outcome.FIRED]


def test_run_all_after_an_outage_never_fires_past_repeats(make_job, handed_out):
    job = make_job("catch_up", command="", job_type="DUMMY", concurrency=Concurrency.ALLOW)
    schedule = every_minute(job, repeats=3, misfire=Misfire.RUN_ALL)
    Schedule.objects.filter(pk=schedule.pk).update(fire_count=1)
    with time_machine.travel(T0 + timedelta(minutes=10), tick=False):  # ten slots missed
        services.fire_due()
    schedule.refresh_from_db()
    assert schedule.fire_count == 3
    assert Execution.objects.filter(job=job).count() == 2
    assert (schedule.active, schedule.inactive_reason) == (False, "used up its 3 repeats")


def test_an_api_edit_keeps_the_count_of_a_fire_that_happened_meanwhile(make_job, administrator, handed_out,
                                                                          monkeypatch):
    from apps.api import views

    job = make_job("edited", command="", job_type="DUMMY", concurrency=Concurrency.ALLOW)
    schedule = every_minute(job, repeats=5)
    reschedule = views.scheduling.reschedule

    def fire_between_read_and_save(edited: Schedule) -> Schedule:
        with time_machine.travel(T0, tick=False):
            services.fire_due()  # the dispatcher, while the API request holds the row it read
        return reschedule(edited)

    monkeypatch.setattr(views.scheduling, "reschedule", fire_between_read_and_save)
    response = token_client(administrator).patch(f"/api/v1/schedules/{schedule.pk}", {"cron": "*/5 * * * *"},
                                                 format="json")
    assert response.status_code == 200, response.content
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.fire_count) == ("*/5 * * * *", 1)
    assert schedule.last_fired_at is not None


def test_a_schedule_whose_fire_keeps_failing_backs_off(make_job, handed_out, monkeypatch):
    job = make_job("broken", command="", job_type="DUMMY", concurrency=Concurrency.ALLOW)
    schedule = every_minute(job)
    other = every_minute(make_job("fine", command="", job_type="DUMMY", concurrency=Concurrency.ALLOW))
    attempts: list[int] = []

    def trigger(target, **kwargs):
        attempts.append(target.pk)
        if target.pk == job.pk:
            raise RuntimeError("a fire that fails every time")
        return original(target, **kwargs)

    original = services.engine.trigger
    monkeypatch.setattr(services.engine, "trigger", trigger)
    with time_machine.travel(T0 + timedelta(seconds=0.5), tick=False):
        services.fire_due()
        services.fire_due()  # the next tick: the broken one is left alone for now
        # The dispatcher sleeps until the back-off ends rather than 20 ms (50 ticks a second).
        assert services.seconds_until_next_fire() >= 0.5
    assert attempts == [job.pk, other.job_id]
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0  # still due: its slot is not lost
    with time_machine.travel(T0 + timedelta(seconds=5), tick=False):
        services.fire_due()  # the back-off is over: tried again
    assert attempts == [job.pk, other.job_id, job.pk]
