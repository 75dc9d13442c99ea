"""Next-fire maths of schedules (SPEC §4, apps/scheduling/timing.py): no database needed.

Times in the tables are UTC ("YYYY-MM-DD HH:MM[:SS]"); local wall times are in comments.
2026 transitions: London 29 Mar 01:00Z (GMT->BST) and 25 Oct 01:00Z (BST->GMT);
New York 8 Mar 07:00Z (EST->EDT) and 1 Nov 06:00Z (EDT->EST).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import time_machine
from django.core.exceptions import ValidationError

from apps.scheduling.timing import (
    CronSpec,
    CronTiming,
    IntervalTiming,
    OnceTiming,
    next_fire,
    next_interval_fire,
    parse_cron,
    slots_between,
    upcoming,
    validate_cron,
)

UTC = timezone.utc
NOW = "2026-01-15 12:00"  # a Thursday


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def utcs(*texts: str) -> list[datetime]:
    return [utc(text) for text in texts]


def case(case_id: str, *values):
    return pytest.param(*values, id=case_id)


END = "no slot after these"


# -- syntax: each expression's next slots after `after`, in UTC ----------------------------------

SYNTAX = [
    case("5-every-minute", "* * * * *", NOW, ["2026-01-15 12:01", "2026-01-15 12:02"]),
    case("5-strictly-after-a-slot", "0 12 * * *", NOW, ["2026-01-16 12:00"]),
    case("5-steps-and-ranges", "*/20 9-10 * * *", NOW, ["2026-01-16 09:00", "2026-01-16 09:20", "2026-01-16 09:40", "2026-01-16 10:00"]),
    case("5-list", "0 8,17 * * *", NOW, ["2026-01-15 17:00", "2026-01-16 08:00"]),
    case("5-start-with-step", "50/5 12 * * *", NOW, ["2026-01-15 12:50", "2026-01-15 12:55", "2026-01-16 12:50"]),
    case("5-month-and-day-names", "30 6 * jan,mar mon-fri", NOW, ["2026-01-16 06:30", "2026-01-19 06:30", "2026-01-20 06:30"]),
    case("5-names-any-case", "0 0 * JaN sUn", NOW, ["2026-01-18 00:00", "2026-01-25 00:00", "2027-01-03 00:00"]),
    case("5-question-mark-as-star", "0 0 ? * MON", NOW, ["2026-01-19 00:00", "2026-01-26 00:00"]),
    case("5-wrapping-hour-range", "0 22-1 * * *", NOW, ["2026-01-15 22:00", "2026-01-15 23:00", "2026-01-16 00:00", "2026-01-16 01:00", "2026-01-16 22:00"]),
    case("5-wrapping-month-range", "0 0 1 nov-feb *", NOW, ["2026-02-01 00:00", "2026-11-01 00:00", "2026-12-01 00:00", "2027-01-01 00:00"]),
    case("5-dom-or-dow-like-cron", "0 0 13 * fri", NOW, ["2026-01-16 00:00", "2026-01-23 00:00", "2026-01-30 00:00", "2026-02-06 00:00", "2026-02-13 00:00", "2026-02-20 00:00"]),
    case("5-spaces-and-tabs", " 0\t12  * * * ", NOW, ["2026-01-16 12:00"]),
    # croniter reads an equal range as the whole field ("1-1" = every day): we do not.
    case("equal-range-dom", "0 0 1-1 * *", NOW, ["2026-02-01 00:00", "2026-03-01 00:00"]),
    case("equal-range-month-names", "0 0 1 jan-jan *", NOW, ["2027-01-01 00:00", "2028-01-01 00:00"]),
    case("equal-range-with-step", "0 0 5-5/2 * *", NOW, ["2026-02-05 00:00", "2026-03-05 00:00"]),
    case("6-seconds-first", "30 * * * * *", NOW, ["2026-01-15 12:00:30", "2026-01-15 12:01:30"]),
    case("6-every-15-seconds", "*/15 * * * * *", NOW, ["2026-01-15 12:00:15", "2026-01-15 12:00:30", "2026-01-15 12:00:45", "2026-01-15 12:01:00"]),
    case("6-quartz-daily", "0 15 10 ? * *", NOW, ["2026-01-16 10:15", "2026-01-17 10:15"]),
    case("6-quartz-weekdays-by-name", "0 0 9 ? * MON-FRI", NOW, ["2026-01-16 09:00", "2026-01-19 09:00"]),
    # month ends
    case("31st-skips-short-months", "0 0 31 * *", NOW, ["2026-01-31 00:00", "2026-03-31 00:00", "2026-05-31 00:00", "2026-07-31 00:00", "2026-08-31 00:00"]),
    case("30th-skips-february", "0 0 30 * *", NOW, ["2026-01-30 00:00", "2026-03-30 00:00", "2026-04-30 00:00"]),
    case("L-last-day-of-each-month", "0 0 L * *", NOW, ["2026-01-31 00:00", "2026-02-28 00:00", "2026-03-31 00:00", "2026-04-30 00:00", "2026-05-31 00:00"]),
    case("L-february-non-leap-then-leap", "0 0 L 2 *", NOW, ["2026-02-28 00:00", "2027-02-28 00:00", "2028-02-29 00:00", "2029-02-28 00:00"]),
    case("L-in-a-list", "0 0 1,L * *", NOW, ["2026-01-31 00:00", "2026-02-01 00:00", "2026-02-28 00:00", "2026-03-01 00:00"]),
    case("L-ends-a-range", "0 0 28-L 2 *", NOW, ["2026-02-28 00:00", "2027-02-28 00:00", "2028-02-28 00:00", "2028-02-29 00:00"]),
    case("29-february-leap-years-only", "0 0 29 2 *", NOW, ["2028-02-29 00:00", "2032-02-29 00:00", "2036-02-29 00:00"]),
    case("29-february-skips-2100", "0 0 29 2 *", "2096-03-01 00:00", ["2104-02-29 00:00"]),
    case("W-nearest-weekday", "0 0 15W * *", NOW, ["2026-02-16 00:00", "2026-03-16 00:00", "2026-04-15 00:00"]),
    case("W-first-saturday-moves-to-monday", "0 0 1W * *", "2026-07-15 00:00", ["2026-08-03 00:00", "2026-09-01 00:00", "2026-10-01 00:00"]),
    case("LW-last-weekday", "0 0 LW * *", NOW, ["2026-01-30 00:00", "2026-02-27 00:00", "2026-03-31 00:00", "2026-04-30 00:00", "2026-05-29 00:00"]),
    case("hash-third-friday", "0 0 * * fri#3", NOW, ["2026-01-16 00:00", "2026-02-20 00:00", "2026-03-20 00:00"]),
    case("hash-fifth-monday-when-any", "0 0 * * mon#5", NOW, ["2026-03-30 00:00", "2026-06-29 00:00"]),
    case("hash-list", "0 0 * * mon#1,fri#3", NOW, ["2026-01-16 00:00", "2026-02-02 00:00", "2026-02-20 00:00"]),
    case("5-last-friday-L5", "0 0 * * L5", NOW, ["2026-01-30 00:00", "2026-02-27 00:00", "2026-03-27 00:00"]),
    case("5-last-friday-5L", "0 0 * * 5L", NOW, ["2026-01-30 00:00", "2026-02-27 00:00", "2026-03-27 00:00"]),
    # 7 fields: year last
    case("year-single", "0 0 0 1 1 ? 2030", NOW, ["2030-01-01 00:00", END]),
    case("year-beyond-croniter-50-year-horizon", "0 0 0 1 1 ? 2090", NOW, ["2090-01-01 00:00", END]),
    case("year-range", "0 0 0 15 6 ? 2026-2027", NOW, ["2026-06-15 00:00", "2027-06-15 00:00", END]),
    case("year-list", "0 0 0 1 1 ? 2026,2028,2031", NOW, ["2028-01-01 00:00", "2031-01-01 00:00", END]),
    case("year-step", "0 0 0 1 1 ? 2024/4", NOW, ["2028-01-01 00:00", "2032-01-01 00:00", "2036-01-01 00:00"]),
    case("year-equal-range", "0 0 0 1 1 ? 2030-2030", NOW, ["2030-01-01 00:00", END]),
    case("year-star", "0 0 0 1 1 ? *", NOW, ["2027-01-01 00:00", "2028-01-01 00:00"]),
    case("year-29-february-in-a-range", "0 0 0 29 2 ? 2026-2030", NOW, ["2028-02-29 00:00", END]),
    case("year-L-february-leap-and-not", "0 0 0 L 2 ? 2027-2029", NOW, ["2027-02-28 00:00", "2028-02-29 00:00", "2029-02-28 00:00", END]),
    case("year-rest-of-this-year", "0 0 0 * * ? 2026", "2026-12-30 12:00", ["2026-12-31 00:00", END]),
    case("year-december-into-next-year", "0 0 0 31 12 ? 2026-2027", NOW, ["2026-12-31 00:00", "2027-12-31 00:00", END]),
    case("year-wrapping-months-in-last-year", "0 0 0 1 11-2 ? 2026", NOW, ["2026-02-01 00:00", "2026-11-01 00:00", "2026-12-01 00:00", END]),
    case("year-L-every-month-of-a-leap-year", "0 0 0 L * ? 2028", NOW, ["2028-01-31 00:00", "2028-02-29 00:00", "2028-03-31 00:00"]),
    case("year-LW-at-year-ends", "0 0 0 LW 12 ? 2026-2027", NOW, ["2026-12-31 00:00", "2027-12-31 00:00", END]),
    case("year-with-quartz-hash", "0 0 0 ? * 2#1 2027", NOW, ["2027-01-04 00:00", "2027-02-01 00:00", "2027-03-01 00:00"]),
    case("year-all-past-gives-nothing", "0 0 0 1 1 ? 2020-2025", NOW, [END]),
    # aliases
    case("alias-yearly", "@yearly", NOW, ["2027-01-01 00:00"]),
    case("alias-annually", "@annually", NOW, ["2027-01-01 00:00"]),
    case("alias-monthly", "@monthly", NOW, ["2026-02-01 00:00"]),
    case("alias-weekly-sunday", "@weekly", NOW, ["2026-01-18 00:00", "2026-01-25 00:00"]),
    case("alias-daily", "@daily", NOW, ["2026-01-16 00:00"]),
    case("alias-midnight", "@midnight", NOW, ["2026-01-16 00:00"]),
    case("alias-hourly", "@hourly", NOW, ["2026-01-15 13:00", "2026-01-15 14:00"]),
    case("alias-any-case", "@Daily", NOW, ["2026-01-16 00:00"]),
]


@pytest.mark.parametrize("expression, after, expected", SYNTAX)
def test_it_computes_the_next_slots(expression, after, expected):
    # With END last, one more slot is asked for than listed, and none must come.
    slots = upcoming(CronTiming(expression, "UTC"), utc(after), count=len(expected))
    assert slots == utcs(*(text for text in expected if text is not END))


# -- day of week: cron numbering for 5 fields, Quartz numbering for 6 and 7 -----------------------

WEEK_DAYS = [
    case("cron-1-5-is-mon-fri", "0 12 * * 1-5", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
    case("cron-0-is-sunday", "0 12 * * 0", {"Sun"}),
    case("cron-7-is-sunday", "0 12 * * 7", {"Sun"}),
    case("cron-0-7-is-every-day", "0 12 * * 0-7", {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
    case("cron-5-7-ends-on-sunday", "0 12 * * 5-7", {"Fri", "Sat", "Sun"}),
    case("cron-steps", "0 12 * * */2", {"Sun", "Tue", "Thu", "Sat"}),
    case("cron-equal-range", "0 12 * * MON-MON", {"Mon"}),
    case("quartz-2-6-is-mon-fri", "0 0 12 ? * 2-6", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
    case("quartz-1-is-sunday", "0 0 12 ? * 1", {"Sun"}),
    case("quartz-7-is-saturday", "0 0 12 ? * 7", {"Sat"}),
    case("quartz-list", "0 0 12 ? * 1,7", {"Sat", "Sun"}),
    case("quartz-wrapping-range", "0 0 12 ? * 7-1", {"Sat", "Sun"}),
    case("quartz-start-with-step", "0 0 12 ? * 2/2", {"Mon", "Wed", "Fri"}),
    case("quartz-star-step", "0 0 12 ? * */2", {"Sun", "Tue", "Thu", "Sat"}),
    case("quartz-names-unchanged", "0 0 12 ? * MON-FRI", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
    case("quartz-L-alone-is-saturday", "0 0 12 ? * L", {"Sat"}),
    case("quartz-7-fields", "0 0 12 ? * 2 2026-2030", {"Mon"}),
]


@pytest.mark.parametrize("expression, days", WEEK_DAYS)
def test_it_reads_day_of_week_numbers_per_form(expression, days):
    slots = upcoming(CronTiming(expression), utc(NOW), count=21)
    assert len(slots) == 21
    assert {slot.strftime("%a") for slot in slots} == days


QUARTZ_SPECIALS = [
    case("6L-last-friday", "0 0 12 ? * 6L", ["2026-01-30 12:00", "2026-02-27 12:00", "2026-03-27 12:00"]),
    case("6#3-third-friday", "0 0 12 ? * 6#3", ["2026-01-16 12:00", "2026-02-20 12:00", "2026-03-20 12:00"]),
    case("FRI#3-by-name", "0 0 12 ? * FRI#3", ["2026-01-16 12:00", "2026-02-20 12:00", "2026-03-20 12:00"]),
    case("2#1-first-monday", "0 0 12 ? * 2#1", ["2026-02-02 12:00", "2026-03-02 12:00"]),
]


@pytest.mark.parametrize("expression, expected", QUARTZ_SPECIALS)
def test_it_reads_quartz_last_and_nth_days(expression, expected):
    assert upcoming(CronTiming(expression), utc(NOW), count=len(expected)) == utcs(*expected)


# -- daylight saving -----------------------------------------------------------------------------

DST = [
    # London: the skipped hour is 01:00-02:00 local, so a daily 02:30 is unaffected.
    case("london-spring-daily-0230-exists", "30 2 * * *", "Europe/London", "2026-03-28 03:00", ["2026-03-29 01:30", "2026-03-30 01:30"]),
    case("london-spring-daily-0130-skipped", "30 1 * * *", "Europe/London", "2026-03-28 03:00", ["2026-03-29 01:00", "2026-03-30 00:30"]),
    case("london-spring-hourly", "0 * * * *", "Europe/London", "2026-03-29 00:00", ["2026-03-29 01:00", "2026-03-29 02:00", "2026-03-29 03:00"]),
    case("london-spring-every-15-minutes", "*/15 * * * *", "Europe/London", "2026-03-29 00:45", ["2026-03-29 01:00", "2026-03-29 01:15", "2026-03-29 01:30"]),
    case("london-spring-every-second", "* * * * * *", "Europe/London", "2026-03-29 00:59:59", ["2026-03-29 01:00:00", "2026-03-29 01:00:01"]),
    case("london-autumn-daily-0130-once", "30 1 * * *", "Europe/London", "2026-10-24 12:00", ["2026-10-25 00:30", "2026-10-26 01:30"]),
    case("london-autumn-daily-0230", "30 2 * * *", "Europe/London", "2026-10-24 12:00", ["2026-10-25 02:30", "2026-10-26 02:30"]),
    case("london-autumn-hourly", "0 * * * *", "Europe/London", "2026-10-24 23:00", ["2026-10-25 00:00", "2026-10-25 02:00", "2026-10-25 03:00"]),
    case("london-autumn-every-15-minutes", "*/15 * * * *", "Europe/London", "2026-10-25 00:30", ["2026-10-25 00:45", "2026-10-25 02:00", "2026-10-25 02:15"]),
    case("london-autumn-every-second", "* * * * * *", "Europe/London", "2026-10-25 00:59:58", ["2026-10-25 00:59:59", "2026-10-25 02:00:00"]),
    case("london-autumn-after-in-second-pass", "*/15 * * * *", "Europe/London", "2026-10-25 01:20", ["2026-10-25 02:00"]),
    case("london-wall-clock-follows-summer-time", "0 9 * * *", "Europe/London", "2026-03-28 12:00", ["2026-03-29 08:00", "2026-03-30 08:00"]),
    # New York: the skipped hour is 02:00-03:00 local; 02:30 fires at 03:00 EDT (07:00Z), not 03:30.
    case("new-york-spring-daily-0230-skipped", "30 2 * * *", "America/New_York", "2026-03-07 12:00", ["2026-03-08 07:00", "2026-03-09 06:30"]),
    case("new-york-spring-6-field-023015-skipped", "15 30 2 ? * *", "America/New_York", "2026-03-07 12:00", ["2026-03-08 07:00:00", "2026-03-09 06:30:15"]),
    case("new-york-spring-hourly", "0 * * * *", "America/New_York", "2026-03-08 06:00", ["2026-03-08 07:00", "2026-03-08 08:00"]),
    case("new-york-spring-every-15-minutes", "*/15 * * * *", "America/New_York", "2026-03-08 06:45", ["2026-03-08 07:00", "2026-03-08 07:15"]),
    case("new-york-spring-every-second", "* * * * * *", "America/New_York", "2026-03-08 06:59:59", ["2026-03-08 07:00:00", "2026-03-08 07:00:01"]),
    case("new-york-autumn-daily-0130-once", "30 1 * * *", "America/New_York", "2026-10-31 12:00", ["2026-11-01 05:30", "2026-11-02 06:30"]),
    case("new-york-autumn-daily-0230", "30 2 * * *", "America/New_York", "2026-10-31 12:00", ["2026-11-01 07:30", "2026-11-02 07:30"]),
    case("new-york-autumn-hourly", "0 * * * *", "America/New_York", "2026-11-01 04:00", ["2026-11-01 05:00", "2026-11-01 07:00", "2026-11-01 08:00"]),
    case("new-york-autumn-every-15-minutes", "*/15 * * * *", "America/New_York", "2026-11-01 05:30", ["2026-11-01 05:45", "2026-11-01 07:00", "2026-11-01 07:15"]),
    case("new-york-autumn-every-second", "* * * * * *", "America/New_York", "2026-11-01 05:59:58", ["2026-11-01 05:59:59", "2026-11-01 07:00:00"]),
    case("new-york-autumn-after-in-second-pass", "*/15 * * * *", "America/New_York", "2026-11-01 06:10", ["2026-11-01 07:00"]),
    case("new-york-autumn-second-pass-fraction", "* * * * * *", "America/New_York", "2026-11-01 06:59:59.500000", ["2026-11-01 07:00:00"]),
    # Lord Howe moves by 30 minutes: 02:00-02:30 local is skipped on 4 October 2026.
    case("lord-howe-half-hour-gap", "*/15 * * * *", "Australia/Lord_Howe", "2026-10-03 15:25", ["2026-10-03 15:30", "2026-10-03 15:45"]),
]


@pytest.mark.parametrize("expression, tz, after, expected", DST)
def test_it_applies_the_daylight_saving_rules(expression, tz, after, expected):
    assert upcoming(CronTiming(expression, tz), utc(after), count=len(expected)) == utcs(*expected)


def test_it_fires_each_slot_of_a_dst_day_once():
    # Midnight EDT to midnight EST: 25 hours of real time, 24 of wall clock, 96 slots.
    timing = CronTiming("*/15 * * * *", "America/New_York")
    day = slots_between(timing, utc("2026-11-01 04:00"), utc("2026-11-02 05:00"), cap=200)
    assert len(day) == len(set(day)) == 96
    assert day == sorted(day)


# -- invalid and never-firing expressions ----------------------------------------------------------

INVALID = [
    case("empty", "", "Enter a cron expression."),
    case("blank", "   ", "Enter a cron expression."),
    case("too-few-fields", "1 2 3", "'1 2 3' has 3."),
    case("too-many-fields", "* * * * * * * *", "has 8."),
    case("minute-range", "60 * * * *", "Minute field: 60 is out of range 0-59."),
    case("hour-range", "0 24 * * *", "Hour field: 24 is out of range 0-23."),
    case("dom-range", "0 0 32 * *", "Day-of-month field: 32 is out of range 1-31."),
    case("dom-zero", "0 0 0 * *", "Day-of-month field: 0 is out of range 1-31."),
    case("month-range", "0 0 1 13 *", "Month field: 13 is out of range 1-12."),
    case("dow-range-cron", "0 0 * * 8", "Day-of-week field: 8 is out of range 0-7."),
    case("dow-zero-quartz", "0 0 0 ? * 0", "Day-of-week field: 0 is out of range 1-7 (6- and 7-field expressions number the days Quartz's way, 1=SUN to 7=SAT"),
    case("second-range", "60 0 0 * * ?", "Second field: 60 is out of range 0-59."),
    case("year-too-early", "0 0 0 1 1 ? 1969", "Year field: 1969 is out of range 1970-2099."),
    case("year-too-late", "0 0 0 1 1 ? 2100", "Year field: 2100 is out of range 1970-2099."),
    case("year-backwards", "0 0 0 1 1 ? 2030-2026", "Year field: range '2030-2026' runs backwards."),
    case("unknown-month-name", "0 0 * foo *", "Month field: 'FOO' is not a valid value."),
    case("unknown-day-name", "0 0 * * funday", "Day-of-week field: 'FUNDAY' is not a valid value."),
    case("hash-syntax-not-ours", "H * * * *", "Minute field: 'H' is not a valid value."),
    case("negative", "-5 * * * *", "Minute field: '-5' is not a valid value or range."),
    case("open-range", "0 0 * * 1-", "Day-of-week field: '1-' is not a valid value or range."),
    case("question-mark-in-minutes", "? * * * *", "Minute field: '?' is only allowed in the day-of-month and day-of-week fields."),
    case("step-zero", "*/0 * * * *", "Minute field: step '0' must be a whole number of at least 1."),
    case("step-not-a-number", "0 0 * * 1/x", "Day-of-week field: step 'x' must be a whole number of at least 1."),
    case("step-too-large", "*/61 * * * *", "Minute field: step 61 is larger than the field's range 0-59."),
    case("empty-list-item", "0 0 1,,2 * *", "Day-of-month field: '1,,2' has an empty list item."),
    case("L-offset-too-large", "0 0 L-31 * *", "Day-of-month field: 'L-31': the offset from the last day must be 0 to 30."),
    case("L-offset-not-a-number", "0 0 L-x * *", "Day-of-month field: 'L-X' is not valid: write L-n or L-nW, such as L-3."),
    case("W-malformed", "0 0 15WW * *", "Day-of-month field: '15WW' is not valid: write a day and W, such as 15W."),
    case("W-out-of-range", "0 0 32W * *", "Day-of-month field: 32 is out of range 1-31."),
    case("hash-mixed-with-plain", "0 0 * * 1,FRI#2", "Day-of-week field: '1,fri#2' mixes plain days with '#' or 'L' items, which is not supported."),
    case("hash-sixth", "0 0 * * FRI#6", "Day-of-week field: 'FRI#6': the number after '#' must be 1 to 5."),
    case("unknown-alias", "@reboot", "Unknown alias '@reboot': use one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly."),
]


@pytest.mark.parametrize("expression, message", INVALID)
def test_it_rejects_invalid_expressions_saying_what_is_wrong(expression, message):
    with pytest.raises(ValidationError) as caught:
        parse_cron(expression)
    assert caught.value.code == "invalid_cron"
    assert message in caught.value.messages[0]


NEVER = [
    case("30-february", "0 0 30 2 *", "Never fires: day 30 does not occur in February."),
    case("31st-of-short-months", "0 0 31 4,6,9,11 *", "Never fires: day 31 does not occur in April, June, September, November."),
    case("6-field-31-february", "0 0 0 31 2 ?", "Never fires: day 31 does not occur in February."),
    case("29-february-no-leap-year", "0 0 0 29 2 ? 2025-2027", "Never fires: 29 February needs a leap year and none of 2025, 2026, 2027 is one."),
    case("29-february-2097-2099", "0 0 0 29 2 ? 2097-2099", "Never fires: 29 February needs a leap year and none of 2097, 2098, 2099 is one."),
    case("no-fifth-monday-in-february-2027", "0 0 0 ? 2 MON#5 2027", "Never fires: no date between 1970 and 2099 matches all of its fields."),
]


@pytest.mark.parametrize("expression, message", NEVER)
def test_it_rejects_expressions_that_never_fire(expression, message):
    with pytest.raises(ValidationError) as caught:
        parse_cron(expression)
    assert caught.value.code == "cron_never_fires"
    assert caught.value.messages == [message]


NEVER_AGAIN = [
    case("years-all-past", "0 0 0 1 1 ? 2020-2025", "UTC", "Never fires: every year in its year field (2020-2025) is in the past."),
    case("last-slot-passed", "0 0 0 1 1 ? 2026", "UTC", "Never fires: no time after 2026-01-15 12:00:00 (UTC) matches it."),
    case("last-slot-passed-local", "0 0 12 31 12 ? 2026", "Europe/Berlin", "Never fires: no time after 2026-12-31 16:00:00 (Europe/Berlin) matches it."),
]


@pytest.mark.parametrize("expression, tz, message", NEVER_AGAIN)
def test_it_rejects_expressions_that_never_fire_again(expression, tz, message):
    now = utc("2026-12-31 15:00") if "12 31 12" in expression else utc(NOW)
    parse_cron(expression)  # a stored schedule may outlive its last slot: only saving rejects it
    with pytest.raises(ValidationError) as caught:
        validate_cron(expression, tz, now=now)
    assert caught.value.code == "cron_never_fires"
    assert caught.value.messages == [message]


def test_it_validates_against_the_schedules_time_zone():
    # 15:00Z is 10:00 in New York: noon local is still ahead.
    spec = validate_cron("0 0 12 31 12 ? 2026", "America/New_York", now=utc("2026-12-31 15:00"))
    assert next_fire(spec, utc("2026-12-31 15:00"), "America/New_York") == utc("2026-12-31 17:00")


@time_machine.travel(utc("2031-06-01 00:00"), tick=False)
def test_it_validates_against_the_current_time_by_default():
    with pytest.raises(ValidationError, match=r"\(2030\) is in the past"):
        validate_cron("0 0 0 1 1 ? 2030")
    assert validate_cron("0 0 0 1 1 ? 2032").years == (2032,)


NORMALIZED = [
    case("5-fields-as-is", "*/5 9-17 * * mon-fri", "*/5 9-17 * * 1-5", False),
    case("quartz-days-to-cron", "0 0 12 ? * 2-6", "0 0 12 * * 1-5", True),
    case("quartz-last-friday", "0 0 12 ? * 6L", "0 0 12 * * l5", True),
    case("7-fields-year", "0 0 12 ? * SUN 2027", "0 0 12 * * 0 2027", True),
    case("alias", "@weekly", "0 0 * * 0", False),
]


@pytest.mark.parametrize("expression, normalized, with_seconds", NORMALIZED)
def test_it_normalizes_for_croniter(expression, normalized, with_seconds):
    spec = parse_cron(expression)
    assert isinstance(spec, CronSpec)
    assert (spec.expression, spec.normalized, spec.with_seconds) == (expression, normalized, with_seconds)


def test_it_accepts_a_spec_or_a_string():
    after = utc(NOW)
    assert next_fire("0 0 9 ? * MON", after, "UTC") == next_fire(parse_cron("0 0 9 ? * MON"), after) == utc("2026-01-19 09:00")


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: next_fire("* * * * *", datetime(2026, 1, 1)), id="next-fire"),
        pytest.param(lambda: next_interval_fire(datetime(2026, 1, 1), 60, utc(NOW)), id="interval-start"),
        pytest.param(lambda: next_interval_fire(utc(NOW), 60, datetime(2026, 1, 1)), id="interval-after"),
    ],
)
def test_it_refuses_naive_datetimes(call):
    with pytest.raises(ValueError, match="must be an aware datetime"):
        call()


def test_it_refuses_an_unknown_time_zone():
    with pytest.raises(ValidationError, match="Unknown time zone 'Mars/Olympus'"):
        next_fire("* * * * *", utc(NOW), "Mars/Olympus")


# -- intervals ---------------------------------------------------------------------------------------

INTERVALS = [
    case("before-start-fires-at-start", "2026-01-15 12:00", 3600, "2026-01-01 00:00", "2026-01-15 12:00"),
    case("just-before-start", "2026-01-15 12:00", 3600, "2026-01-15 11:59:59.999999", "2026-01-15 12:00"),
    case("at-start-is-not-after-it", "2026-01-15 12:00", 3600, "2026-01-15 12:00", "2026-01-15 13:00"),
    case("late-fire-does-not-drift", "2026-01-15 12:00", 3600, "2026-01-15 13:00:07", "2026-01-15 14:00"),
    case("exactly-on-a-later-slot", "2026-01-15 12:00", 90, "2026-01-16 12:00", "2026-01-16 12:01:30"),
    case("odd-interval", "2026-01-15 12:00:00", 7, "2026-01-15 12:01:40", "2026-01-15 12:01:45"),
    case("fractional-start", "2026-01-15 12:00:00.250000", 1, "2026-01-15 12:00:05", "2026-01-15 12:00:05.250000"),
    case("elapsed-time-across-dst", "2026-03-08 05:00", 3600, "2026-03-08 06:30", "2026-03-08 07:00"),
]


@pytest.mark.parametrize("start_at, interval, after, expected", INTERVALS)
def test_it_anchors_interval_slots_to_start_at(start_at, interval, after, expected):
    assert next_interval_fire(utc(start_at), interval, utc(after)) == utc(expected)


def test_it_returns_interval_slots_in_utc():
    start = datetime(2026, 1, 15, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    slot = next_interval_fire(start, 600, utc("2026-01-15 12:05"))
    assert slot == utc("2026-01-15 12:10") and slot.tzinfo is UTC


@pytest.mark.parametrize("interval", [pytest.param(0, id="zero"), pytest.param(-60, id="negative")])
def test_it_refuses_a_non_positive_interval(interval):
    with pytest.raises(ValueError, match="at least 1"):
        next_interval_fire(utc(NOW), interval, utc(NOW))


# -- upcoming (admin and API "next 5 fire times") ------------------------------------------------------

UPCOMING = [
    case("cron-five-by-default", CronTiming("0 9 * * mon-fri", "Europe/London"), NOW,
         ["2026-01-16 09:00", "2026-01-19 09:00", "2026-01-20 09:00", "2026-01-21 09:00", "2026-01-22 09:00"]),
    case("cron-from-start-at-inclusive", CronTiming("0 * * * *", start_at=utc("2026-02-01 00:00")), NOW,
         ["2026-02-01 00:00", "2026-02-01 01:00", "2026-02-01 02:00", "2026-02-01 03:00", "2026-02-01 04:00"]),
    case("cron-until-end-at-inclusive", CronTiming("0 0 * * *", end_at=utc("2026-01-18 00:00")), NOW,
         ["2026-01-16 00:00", "2026-01-17 00:00", "2026-01-18 00:00"]),
    case("cron-7-fields-running-out", CronTiming("0 0 0 1 1 ? 2027-2028"), NOW, ["2027-01-01 00:00", "2028-01-01 00:00"]),
    case("interval-anchored", IntervalTiming(utc("2026-01-15 11:07"), 600), NOW,
         ["2026-01-15 12:07", "2026-01-15 12:17", "2026-01-15 12:27", "2026-01-15 12:37", "2026-01-15 12:47"]),
    case("interval-not-started", IntervalTiming(utc("2026-02-01 00:00"), 86400), NOW,
         ["2026-02-01 00:00", "2026-02-02 00:00", "2026-02-03 00:00", "2026-02-04 00:00", "2026-02-05 00:00"]),
    case("interval-until-end-at", IntervalTiming(utc("2026-01-15 12:00"), 3600, end_at=utc("2026-01-15 14:30")), NOW,
         ["2026-01-15 13:00", "2026-01-15 14:00"]),
    case("once-ahead", OnceTiming(utc("2026-02-01 08:00")), NOW, ["2026-02-01 08:00"]),
    case("once-passed", OnceTiming(utc("2026-01-01 08:00")), NOW, []),
]


@pytest.mark.parametrize("timing, after, expected", UPCOMING)
def test_it_lists_the_next_five_fire_times(timing, after, expected):
    assert upcoming(timing, utc(after)) == utcs(*expected)


# -- missed slots (misfire policies) ---------------------------------------------------------------------

MISSED = [
    case("after-exclusive-until-inclusive", CronTiming("0 * * * *"), "2026-01-15 00:00", "2026-01-15 05:00", 10,
         ["2026-01-15 01:00", "2026-01-15 02:00", "2026-01-15 03:00", "2026-01-15 04:00", "2026-01-15 05:00"]),
    case("capped-oldest-first", CronTiming("0 * * * *"), "2026-01-15 00:00", "2026-01-16 00:00", 3,
         ["2026-01-15 01:00", "2026-01-15 02:00", "2026-01-15 03:00"]),
    case("none-missed", CronTiming("0 0 * * *"), "2026-01-15 00:00", "2026-01-15 23:59:59", 10, []),
    case("catch-up-across-new-york-gap", CronTiming("30 * * * *", "America/New_York"), "2026-03-08 05:00", "2026-03-08 09:00", 10,
         ["2026-03-08 05:30", "2026-03-08 06:30", "2026-03-08 07:00", "2026-03-08 07:30", "2026-03-08 08:30"]),
    case("interval", IntervalTiming(utc("2026-01-15 00:00"), 1800), "2026-01-15 00:00", "2026-01-15 02:00", 10,
         ["2026-01-15 00:30", "2026-01-15 01:00", "2026-01-15 01:30", "2026-01-15 02:00"]),
    case("once", OnceTiming(utc("2026-01-15 01:00")), "2026-01-15 00:00", "2026-01-15 02:00", 10, ["2026-01-15 01:00"]),
]


@pytest.mark.parametrize("timing, after, until, cap, expected", MISSED)
def test_it_lists_missed_slots(timing, after, until, cap, expected):
    assert slots_between(timing, utc(after), utc(until), cap) == utcs(*expected)


def test_it_lists_a_long_outage_of_a_per_second_schedule_quickly():
    slots = slots_between(CronTiming("* * * * * *"), utc("2026-01-01 00:00"), utc("2026-01-02 00:00"), cap=500)
    assert slots[0] == utc("2026-01-01 00:00:01") and slots[-1] == utc("2026-01-01 00:08:20")
