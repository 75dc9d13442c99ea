"""Schedules on the engine: validation, firing, the ledger, misfire policies, pause and resume,
and two dispatchers that never fire a slot twice."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
import time_machine
from django.core.exceptions import ValidationError
from django.db import connection

from apps.catalog.models import Concurrency, Flow
from apps.engine.models import Execution, Status, Trigger
from apps.scheduling import services
from apps.scheduling.models import FiredSlot, Kind, Misfire, Outcome, Schedule
from tests.conftest import wait_for

UTC = dt_timezone.utc
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def job(make_job):
    return make_job("nightly_extract", command="", job_type="DUMMY", concurrency=Concurrency.ALLOW)


def every_minute(job, **fields) -> Schedule:
    with time_machine.travel(T0 - timedelta(seconds=30), tick=False):
        return Schedule.objects.create(job=job, kind=Kind.CRON, cron="* * * * *", timezone="UTC", **fields)


@pytest.mark.parametrize(
    "fields, field, message",
    [
        ({"kind": Kind.CRON, "cron": "61 * * * *"}, "cron", "Minute field"),
        ({"kind": Kind.CRON, "cron": "0 0 30 2 *"}, "cron", "Never fires"),
        ({"kind": Kind.CRON, "cron": "0 0 0 1 1 ? 2001"}, "cron", "in the past"),
        ({"kind": Kind.CRON, "cron": "* * *"}, "cron", "has 3"),
        ({"kind": Kind.INTERVAL}, "interval_seconds", "at least 1"),
        ({"kind": Kind.ONCE}, "start_at", "give it"),
        ({"kind": Kind.ONCE, "start_at": datetime(2001, 1, 1, tzinfo=UTC)}, "start_at", "in the past"),
        ({"kind": Kind.CRON, "cron": "@daily", "timezone": "Mars/Olympus"}, "timezone", "Unknown time zone"),
        ({"kind": Kind.INTERVAL, "interval_seconds": 5, "start_at": T0, "end_at": T0}, "end_at", "after start_at"),
    ],
    ids=["bad-minute", "30-february", "past-year", "three-fields", "no-interval", "once-no-start", "once-past",
         "bad-zone", "end-before-start"],
)
def test_it_rejects_a_schedule_that_cannot_work_with_a_message_naming_the_field(job, fields, field, message):
    schedule = Schedule(job=job, **fields)
    with pytest.raises(ValidationError) as refused:
        schedule.full_clean()
    assert message in " ".join(refused.value.message_dict[field])


def test_a_schedule_has_exactly_one_target(app, job):
    flow = Flow.objects.create(application=app, name="F")
    Schedule(flow=flow, kind=Kind.CRON, cron="@daily").full_clean()
    with pytest.raises(ValidationError) as refused:
        Schedule(flow=flow, job=job, kind=Kind.CRON, cron="@daily").full_clean()
    assert "flow" in refused.value.message_dict
    with pytest.raises(ValidationError) as refused:
        Schedule(kind=Kind.CRON, cron="@daily").full_clean()
    assert "job" in refused.value.message_dict


def test_it_computes_the_next_five_fire_times_in_the_schedules_zone(job):
    with time_machine.travel(datetime(2026, 3, 28, 12, 0, tzinfo=UTC), tick=False):
        schedule = Schedule.objects.create(job=job, kind=Kind.CRON, cron="30 1 * * *", timezone="Europe/London")
        # 29 March 2026: London springs forward at 01:00 GMT, so 01:30 local does not exist.
        assert [t.strftime("%m-%d %H:%M") for t in schedule.upcoming(5)] == [
            "03-29 01:00", "03-30 00:30", "03-31 00:30", "04-01 00:30", "04-02 00:30"]


def test_it_fires_a_due_slot_once_and_moves_to_the_next(job):
    schedule = every_minute(job)
    assert schedule.next_fire_at == T0
    with time_machine.travel(T0 + timedelta(seconds=0.3), tick=False):
        assert services.fire_due() == 1
        assert services.fire_due() == 0
    schedule.refresh_from_db()
    assert (schedule.fire_count, schedule.next_fire_at) == (1, T0 + timedelta(minutes=1))
    fired = FiredSlot.objects.get(schedule=schedule)
    assert (fired.slot, fired.outcome) == (T0, Outcome.FIRED)
    assert fired.execution.trigger == Trigger.SCHEDULE
    assert fired.execution.triggered_by == f"schedule {schedule.pk}"


def test_a_fire_that_meets_a_running_forbid_job_is_recorded_as_skipped(make_job):
    job = make_job("exclusive", command="", job_type="DUMMY", concurrency=Concurrency.FORBID)
    schedule = every_minute(job)
    running = Execution.objects.create(job=job, application=job.application, status=Status.RUNNING, exclusive=True)
    with time_machine.travel(T0, tick=False):
        services.fire_due()
    fired = FiredSlot.objects.get(schedule=schedule)
    assert fired.outcome == Outcome.SKIPPED
    assert fired.reason.startswith("JOB_ALREADY_RUNNING")
    assert list(Execution.objects.filter(job=job)) == [running]


def test_a_schedule_that_used_up_its_repeats_becomes_inactive_and_can_be_reactivated(job):
    schedule = every_minute(job, repeats=2)
    for minute in range(2):
        with time_machine.travel(T0 + timedelta(minutes=minute), tick=False):
            services.fire_due()
    schedule.refresh_from_db()
    assert (schedule.active, schedule.next_fire_at, schedule.inactive_reason) == (False, None, "used up its 2 repeats")
    with time_machine.travel(T0 + timedelta(minutes=10, seconds=5), tick=False):
        resumed = services.resume(schedule, by="ops")
    assert resumed.active and resumed.fire_count == 0
    assert resumed.next_fire_at == T0 + timedelta(minutes=11)


def test_a_one_time_schedule_fires_once_then_is_kept_inactive(job):
    with time_machine.travel(T0 - timedelta(hours=1), tick=False):
        schedule = Schedule.objects.create(job=job, kind=Kind.ONCE, start_at=T0)
    with time_machine.travel(T0 + timedelta(seconds=0.5), tick=False):
        assert services.fire_due() == 1
    schedule.refresh_from_db()
    assert not schedule.active and schedule.fire_count == 1
    assert Schedule.objects.filter(pk=schedule.pk).exists()


def test_an_interval_schedule_is_anchored_to_start_at_and_stops_at_end_at(job):
    start = T0 + timedelta(seconds=7)
    with time_machine.travel(T0, tick=False):
        schedule = Schedule.objects.create(job=job, kind=Kind.INTERVAL, interval_seconds=30, start_at=start,
                                           end_at=start + timedelta(seconds=60))
    assert schedule.next_fire_at == start
    fired_at = []
    for late in (0.4, 30.9, 60.2):  # fired late each time: the slots must not drift
        moment = schedule.next_fire_at + timedelta(seconds=late % 1)
        with time_machine.travel(moment, tick=False):
            services.fire_due()
        schedule.refresh_from_db()
        fired_at.append(FiredSlot.objects.filter(schedule=schedule).order_by("-slot").first().slot)
    assert fired_at == [start, start + timedelta(seconds=30), start + timedelta(seconds=60)]
    assert not schedule.active


def test_an_interval_without_start_at_fires_first_now(job):
    with time_machine.travel(T0, tick=False):
        schedule = Schedule.objects.create(job=job, kind=Kind.INTERVAL, interval_seconds=10)
    assert (schedule.start_at, schedule.next_fire_at) == (T0, T0)


@pytest.mark.parametrize(
    "misfire, fired_slots",
    [
        (Misfire.SKIP, ["10:05"]),
        (Misfire.RUN_ONCE, ["10:04", "10:05"]),
        (Misfire.RUN_ALL, ["10:00", "10:01", "10:02", "10:03", "10:04", "10:05"]),
    ],
)
def test_after_downtime_each_misfire_policy_fires_what_it_promises(job, misfire, fired_slots):
    schedule = every_minute(job, misfire=misfire)
    with time_machine.travel(T0 + timedelta(minutes=5, seconds=10), tick=False):  # down 10:00–10:05:10
        services.fire_due()
    fired = FiredSlot.objects.filter(schedule=schedule, outcome=Outcome.FIRED).order_by("slot")
    assert [f.slot.strftime("%H:%M") for f in fired] == fired_slots
    assert Execution.objects.filter(job=job).count() == len(fired_slots)
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0 + timedelta(minutes=6)
    if misfire != Misfire.RUN_ALL:
        missed = FiredSlot.objects.get(schedule=schedule, outcome=Outcome.MISSED)
        assert f"misfire={misfire}" in missed.reason


def test_run_all_is_capped_after_a_long_outage(job, settings):
    settings.BATCHDESK = {**settings.BATCHDESK, "MISFIRE_RUN_ALL_CAP": 3}
    schedule = every_minute(job, misfire=Misfire.RUN_ALL)
    with time_machine.travel(T0 + timedelta(days=2), tick=False):
        services.fire_due()
    assert Execution.objects.filter(job=job).count() == 3 + 1  # the cap, and the on-time slot
    schedule.refresh_from_db()
    assert schedule.next_fire_at == T0 + timedelta(days=2, minutes=1)


def test_a_paused_schedule_stays_paused_and_resumes_from_the_next_slot(job):
    schedule = every_minute(job)
    services.pause(schedule, by="ops")
    schedule = Schedule.objects.get(pk=schedule.pk)  # as a restarted dispatcher would read it
    assert (schedule.active, schedule.inactive_reason) == (False, "paused by ops")
    with time_machine.travel(T0 + timedelta(minutes=3), tick=False):
        assert services.fire_due() == 0
        assert schedule.upcoming() == []
        resumed = services.resume(schedule, by="ops")
    assert resumed.next_fire_at == T0 + timedelta(minutes=4)
    assert not FiredSlot.objects.exists()


def test_an_edit_reschedules_from_now(job):
    schedule = every_minute(job)
    schedule.cron = "0 12 * * *"
    with time_machine.travel(T0, tick=False):
        services.reschedule(schedule)
    assert schedule.next_fire_at == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_an_edit_that_switches_a_used_up_schedule_on_starts_its_repeats_afresh(job):
    schedule = every_minute(job, repeats=2)
    schedule.finish("used up its 2 repeats")
    schedule.fire_count = 2
    schedule.active = True
    schedule.rearm_after_edit(T0, was_active=False, stop_reason="switched off")
    assert (schedule.fire_count, schedule.inactive_reason) == (0, "")
    assert schedule.next_fire_at == T0 + timedelta(minutes=1)


def test_an_edit_that_switches_a_schedule_off_records_why(job):
    schedule = every_minute(job)
    schedule.active = False
    schedule.rearm_after_edit(T0, was_active=True, stop_reason="switched off")
    assert (schedule.active, schedule.next_fire_at, schedule.inactive_reason) == (False, None, "switched off")


@pytest.mark.django_db(transaction=True)
def test_two_dispatchers_racing_over_300_due_slots_fire_each_exactly_once(job):
    with time_machine.travel(T0 - timedelta(seconds=1), tick=False):
        schedules = [Schedule.objects.create(job=job, kind=Kind.ONCE, start_at=T0) for _ in range(300)]
    barrier = threading.Barrier(2)
    counts = []

    def dispatcher():
        barrier.wait()
        counts.append(services.fire_due(now=T0 + timedelta(seconds=0.5), limit=1000))
        connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(counts) == 300
    assert FiredSlot.objects.filter(outcome=Outcome.FIRED).count() == 300
    assert Execution.objects.filter(trigger=Trigger.SCHEDULE).count() == 300
    assert not Schedule.objects.filter(pk__in=[s.pk for s in schedules], active=True).exists()


@pytest.mark.e2e
@pytest.mark.slow
def test_two_real_dispatchers_fire_every_second_slot_once_with_no_gap(processes, job):
    """At least 200 per-second slots across two dispatcher processes: no duplicate, no miss."""
    schedules = [Schedule.objects.create(job=job, kind=Kind.CRON, cron="* * * * * *", timezone="UTC")
                 for _ in range(10)]
    processes.start("run_dispatcher")
    processes.start("run_dispatcher")
    wait_for(lambda: FiredSlot.objects.count() >= 220, timeout=60, interval=0.5, message="220 fired slots")
    for schedule in schedules:
        services.pause(schedule, by="test")
    processes.stop_all()
    assert not FiredSlot.objects.exclude(outcome=Outcome.FIRED).exists()
    for schedule in schedules:
        slots = list(FiredSlot.objects.filter(schedule=schedule).order_by("slot").values_list("slot", flat=True))
        gaps = [b - a for a, b in zip(slots, slots[1:]) if b - a != timedelta(seconds=1)]
        assert not gaps, f"schedule {schedule.pk} missed slots: {gaps}"
        assert Execution.objects.filter(fired_slots__schedule=schedule).count() == len(slots)
