"""Schedules stored before the 6/7-field cron rules followed Quartz: the system check names
them, and the dispatcher finishes them with the reason instead of crashing or firing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone as dt_timezone

import pytest
import time_machine
from django.core import checks
from django.core.exceptions import ValidationError
from django.core.management import call_command

from apps.catalog.models import Concurrency
from apps.engine.models import Execution
from apps.scheduling import services
from apps.scheduling.checks import check_stored_cron_expressions
from apps.scheduling.models import FiredSlot, Kind, Schedule

UTC = dt_timezone.utc
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
BOTH_DAYS = "Day-of-month (13) and day-of-week (FRI) are both restricted: put ? in one of them."

pytestmark = pytest.mark.django_db


@pytest.fixture
def job(make_job):
    return make_job("month_end", command="", job_type="DUMMY", concurrency=Concurrency.ALLOW)


def stored(job, cron: str, **fields) -> Schedule:
    """A schedule as an older version saved it: active, due at T0, with `cron` as it was then."""
    with time_machine.travel(T0 - timedelta(hours=1), tick=False):
        schedule = Schedule.objects.create(job=job, kind=Kind.CRON, cron="0 0 0 13 * ?", timezone="UTC", **fields)
    Schedule.objects.filter(pk=schedule.pk).update(cron=cron, active=True, next_fire_at=T0, inactive_reason="")
    schedule.refresh_from_db()
    return schedule


def test_the_check_names_each_stored_schedule_that_no_longer_parses_and_the_fix(job):
    bad = stored(job, "0 0 0 13 * FRI")
    stored(job, "0 0 0 13 * ?")
    stored(job, "0 0 13 * fri")  # 5 fields: Unix cron's either-day rule, still valid
    other = stored(job, "0/60 * * * * ?")
    found = check_stored_cron_expressions(databases=["default"])
    assert [(w.id, w.level, w.obj) for w in found] == [
        ("scheduling.W001", checks.WARNING, bad), ("scheduling.W001", checks.WARNING, other)]
    first = found[0]
    assert first.msg == (f"Schedule {bad.pk} (month_end): its cron expression '0 0 0 13 * FRI' is no longer valid: "
                         f"{BOTH_DAYS} 6- and 7-field expressions follow Quartz, which does not combine the two "
                         f"(5-field expressions fire on a day matching either).")
    assert first.hint.startswith("Put ? in the day-of-month or the day-of-week field")
    assert "Second field: step 60 must be less than 60" in found[1].msg
    assert found[1].hint.startswith("Edit the schedule's cron expression")


def test_the_check_is_a_database_check_registered_by_the_app(job):
    stored(job, "0 0 0 13 * FRI")
    assert checks.run_checks(tags=[checks.Tags.database]) == []  # no database named: nothing read
    found = checks.run_checks(tags=[checks.Tags.database], databases=["default"])
    assert [w.id for w in found] == ["scheduling.W001"]


def test_manage_py_check_with_the_database_prints_the_warning(job, capsys):
    bad = stored(job, "0 0 0 13 * FRI")
    call_command("check", "--database", "default")
    err = capsys.readouterr().err
    assert "scheduling.W001" in err and f"Schedule {bad.pk} (month_end)" in err and "put ? in one of them" in err


def test_the_check_is_quiet_when_every_stored_expression_parses(job):
    stored(job, "0 0 0 ? * FRI")
    assert check_stored_cron_expressions(databases=["default"]) == []


def test_the_dispatcher_finishes_an_invalid_stored_schedule_with_the_reason(job):
    schedule = stored(job, "0 0 0 13 * FRI")
    with time_machine.travel(T0 + timedelta(seconds=0.5), tick=False):
        assert services.fire_due() == 0
    schedule.refresh_from_db()
    assert (schedule.active, schedule.next_fire_at) == (False, None)
    assert schedule.inactive_reason.startswith(f"invalid cron: {BOTH_DAYS}")
    assert not FiredSlot.objects.exists() and not Execution.objects.exists()


def test_an_invalid_stored_schedule_has_no_upcoming_times_and_resuming_finishes_it_again(job):
    schedule = stored(job, "0 0 0 13 * FRI")
    assert schedule.upcoming(5) == []
    with time_machine.travel(T0, tick=False):
        resumed = services.resume(schedule, by="ops")
    assert not resumed.active and resumed.inactive_reason.startswith("invalid cron: Day-of-month (13)")


def test_the_fix_makes_it_fire_again(job):
    schedule = stored(job, "0 0 0 13 * FRI")
    with time_machine.travel(T0, tick=False):
        services.fire_due()
        schedule.refresh_from_db()
        schedule.cron = "0 0 0 13 * ?"
        schedule.full_clean()
        schedule.save()
        resumed = services.resume(schedule, by="ops")
    assert resumed.active and resumed.next_fire_at == datetime(2026, 3, 13, tzinfo=UTC)


def test_a_new_schedule_restricting_both_day_fields_is_refused_naming_the_fix(job):
    schedule = Schedule(job=job, kind=Kind.CRON, cron="0 0 0 13 * FRI", timezone="UTC")
    with pytest.raises(ValidationError) as refused:
        schedule.full_clean()
    assert BOTH_DAYS in " ".join(refused.value.message_dict["cron"])
