"""The day rules of cron expressions (SPEC §4): Quartz's for the 6- and 7-field forms, Unix
cron's either-day rule for the 5-field form, and `preview`. No database needed.

Times are UTC ("YYYY-MM-DD HH:MM[:SS]"). 2026: 1 January is a Thursday; the 31sts fall on
Sat 31 Jan, Tue 31 Mar, Sun 31 May, Fri 31 Jul, Mon 31 Aug, Sat 31 Oct, Thu 31 Dec.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from django.core.exceptions import ValidationError

from apps.scheduling.timing import CronTiming, next_fire, parse_cron, preview, upcoming

UTC = timezone.utc
NOW = "2026-01-15 12:00"  # a Thursday


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def case(case_id: str, *values):
    return pytest.param(*values, id=case_id)


FIRES = [
    # Offsets from the last day of the month (Quartz L-n, L-nW)
    case("L-3", "0 0 0 L-3 * ?", ["2026-01-28", "2026-02-25", "2026-03-28", "2026-04-27"]),
    case("L-0-is-L", "0 0 0 L-0 2 ?", ["2026-02-28", "2027-02-28", "2028-02-29"]),
    case("L-3-in-5-fields", "0 0 L-3 * *", ["2026-01-28", "2026-02-25", "2026-03-28"]),
    case("L-30-only-in-31-day-months", "0 0 0 L-30 * ?", ["2026-03-01", "2026-05-01", "2026-07-01", "2026-08-01"]),
    # 28 March 2026 is a Saturday: the weekday nearest is Friday the 27th
    case("L-3W", "0 0 0 L-3W * ?", ["2026-01-28", "2026-02-25", "2026-03-27", "2026-04-27"]),
    case("L-1W-and-L-1-in-a-list", "0 0 0 L-1W,L-1 * ?", ["2026-01-30", "2026-02-27", "2026-03-30", "2026-04-29"]),
    # nW skips the months without day n; a Sunday that is the last day moves back to Friday
    case("31W-skips-short-months", "0 0 0 31W * ?",
         ["2026-01-30", "2026-03-31", "2026-05-29", "2026-07-31", "2026-08-31", "2026-10-30", "2026-12-31"]),
    case("30W-skips-february", "0 0 0 30W * ?", ["2026-01-30", "2026-03-30", "2026-04-30"]),
    case("31W-5-fields", "0 0 31W * *", ["2026-01-30", "2026-03-31", "2026-05-29"]),
    case("W-items-in-a-list", "0 0 0 1W,15,LW * ?", ["2026-01-30", "2026-02-02", "2026-02-15", "2026-02-27", "2026-03-02"]),
    case("2W-and-16", "0 0 0 2W,16 * ?", ["2026-01-16", "2026-02-02", "2026-02-16", "2026-03-02"]),
    # One day field or the other: `?` or `*` in the other one
    case("quartz-star-beside-day-of-week", "0 0 0 * * FRI", ["2026-01-16", "2026-01-23", "2026-01-30"]),
    case("quartz-star-beside-day-of-month", "0 0 0 13 * *", ["2026-02-13", "2026-03-13"]),
    case("quartz-question-marks-in-both", "0 0 0 ? * ?", ["2026-01-16", "2026-01-17"]),
    # Unix cron (5 fields): both day fields restricted, a day matching either fires
    case("5-either-day", "0 0 13 * fri", ["2026-01-16", "2026-01-23", "2026-01-30", "2026-02-06", "2026-02-13"]),
    case("5-either-day-with-hash", "0 0 1,15 * sat#1", ["2026-02-01", "2026-02-07", "2026-02-15", "2026-03-01", "2026-03-07"]),
    case("5-either-day-with-last-friday", "0 0 13 * 5L", ["2026-01-30", "2026-02-13", "2026-02-27", "2026-03-13", "2026-03-27"]),
    case("5-either-day-with-L", "0 0 L * mon", ["2026-01-19", "2026-01-26", "2026-01-31", "2026-02-02"]),
    case("5-either-day-with-W", "0 0 1W * sun", ["2026-01-18", "2026-01-25", "2026-02-01", "2026-02-02", "2026-02-08"]),
    # The 5-field form keeps its croniter spellings and steps
    case("5-W-after-day", "0 0 W15 * *", ["2026-02-16", "2026-03-16"]),
    case("5-minute-step-60", "*/60 0 * * *", ["2026-01-16", "2026-01-17"]),
]


@pytest.mark.parametrize("expression, expected", FIRES)
def test_it_fires_on_the_days_of_the_rules(expression, expected):
    slots = upcoming(CronTiming(expression), utc(NOW), count=len(expected))
    assert [slot.strftime("%Y-%m-%d") for slot in slots] == expected
    assert all(slot.strftime("%H:%M:%S") == "00:00:00" for slot in slots)


BOTH_DAYS = "are both restricted: put ? in one of them."

REFUSED = [
    case("both-days", "0 0 0 13 * FRI", f"Day-of-month (13) and day-of-week (FRI) {BOTH_DAYS}"),
    case("both-days-hash", "0 0 0 1,15 * SAT#1", f"Day-of-month (1,15) and day-of-week (SAT#1) {BOTH_DAYS}"),
    case("both-days-last-friday", "0 0 0 13 * FRIL", f"Day-of-month (13) and day-of-week (FRIL) {BOTH_DAYS}"),
    case("both-days-L", "0 0 0 L * 6L", f"Day-of-month (L) and day-of-week (6L) {BOTH_DAYS}"),
    case("both-days-7-fields", "0 0 0 1W * MON-FRI 2027", f"Day-of-month (1W) and day-of-week (MON-FRI) {BOTH_DAYS}"),
    case("both-days-steps", "0 15 12 */10 1-8 5", f"Day-of-month (*/10) and day-of-week (5) {BOTH_DAYS}"),
    case("L-listed-with-days", "0 43 9 ? * SAT,SUN,L", "Day-of-week field: 'SAT,SUN,L': L alone means Saturday"),
    case("L-listed-with-numbers", "0 43 9 ? * 6,7,L", "Day-of-week field: '6,7,L': L alone means Saturday"),
    case("L-listed-5-fields", "0 0 * * 6,l", "Day-of-week field: '6,L': L alone means Saturday"),
    case("W-before-the-day", "0 0 0 W1 * ?", "Day-of-month field: 'W1' is not valid: write a day and W, such as 15W."),
    case("L-before-the-day", "0 0 0 ? * L1", "Day-of-week field: 'L1' is not valid: write the day before L"),
    case("second-step-60", "0/60 * * * * ?", "Second field: step 60 must be less than 60 in a 6- or 7-field (Quartz) expression."),
    case("second-step-120", "/120 0 8-18 ? * 2-6", "Second field: step 120 must be less than 60"),
    case("minute-step-60", "0 */60 * * * ?", "Minute field: step 60 must be less than 60"),
    case("hour-step-24", "0 0 0/24 * * ?", "Hour field: step 24 must be less than 24"),
    case("hour-step-24-7-fields", "0 0 */24 * * ? 2027", "Hour field: step 24 must be less than 24"),
    case("month-step-13", "0 0 0 ? /13 2-6", "Month field: step 13 is larger than the field's range 1-12."),
    case("day-of-week-step-8", "0 0 0 ? * */8", "Day-of-week field: step 8 is larger than the field's range 1-7."),
    case("W-in-a-range", "0 0 0 1-15W * ?", "Day-of-month field: '1-15W' is not valid: write a day and W, such as 15W."),
]


@pytest.mark.parametrize("expression, message", REFUSED)
def test_it_refuses_what_quartz_refuses_naming_the_field_and_value(expression, message):
    with pytest.raises(ValidationError) as caught:
        parse_cron(expression)
    assert caught.value.code == "invalid_cron"
    assert message in caught.value.messages[0]


def test_the_both_days_message_says_which_form_combines_them():
    with pytest.raises(ValidationError) as caught:
        parse_cron("0 0 0 13 * FRI")
    assert caught.value.messages == [
        "Day-of-month (13) and day-of-week (FRI) are both restricted: put ? in one of them. 6- and 7-field "
        "expressions follow Quartz, which does not combine the two (5-field expressions fire on a day matching either)."]


@pytest.mark.parametrize(
    "expression, message",
    [
        case("31W-in-february", "0 0 0 31W 2 ?", "Never fires: day 31 does not occur in February."),
        case("30W-in-february-5-fields", "0 0 30W 2 *", "Never fires: day 30 does not occur in February."),
        case("L-30-in-30-day-months", "0 0 0 L-30 4,6,9,11 ?", "Never fires: no date between 1970 and 2099 matches all of its fields."),
    ],
)
def test_a_W_or_L_day_that_never_occurs_never_fires(expression, message):
    with pytest.raises(ValidationError) as caught:
        parse_cron(expression)
    assert (caught.value.code, caught.value.messages) == ("cron_never_fires", [message])


def test_a_per_second_schedule_stays_cheap():
    timing = CronTiming("* * * * * *")
    slots = upcoming(timing, utc(NOW), count=3000)
    assert slots[-1] == utc("2026-01-15 12:50:00")
    assert len(set(slots)) == 3000


def test_the_search_for_a_rare_day_reaches_years_ahead():
    # The next Friday 29 February after 2026 is in 2036.
    assert next_fire("0 0 0 29 2 ?", utc(NOW)) == utc("2028-02-29 00:00")
    assert next_fire("0 0 0 ? 2 FRI#5", utc(NOW)) == utc("2036-02-29 00:00")


# -- preview (the API and admin widget will call it) --------------------------------------------------

def test_preview_lists_the_next_fire_times_in_utc():
    slots = preview("0 0 9 ? * MON-FRI", "Europe/London", utc(NOW), 3)
    assert slots == [utc("2026-01-16 09:00"), utc("2026-01-19 09:00"), utc("2026-01-20 09:00")]
    assert all(slot.tzinfo is UTC for slot in slots)


def test_preview_is_strictly_after_and_follows_the_dst_rules():
    # 02:30 does not exist in New York on 8 March 2026: it fires at the end of the gap, 03:00 EDT.
    assert preview("30 2 * * *", "America/New_York", utc("2026-03-07 07:30"), 2) == [
        utc("2026-03-08 07:00"), utc("2026-03-09 06:30")]


def test_preview_gives_fewer_when_the_expression_stops_firing():
    assert preview("0 0 0 1 1 ? 2027-2028", "UTC", utc(NOW), 5) == [utc("2027-01-01 00:00"), utc("2028-01-01 00:00")]
    assert preview("0 0 0 1 1 ? 2020", "UTC", utc(NOW), 5) == []
    assert preview("@daily", "UTC", utc(NOW), 0) == []


@pytest.mark.parametrize(
    "expression, tz, message",
    [
        case("invalid-expression", "0 0 0 13 * FRI", "UTC", BOTH_DAYS),
        case("never-fires", "0 0 30 2 *", "UTC", "Never fires"),
        case("unknown-zone", "@daily", "Mars/Olympus", "Unknown time zone 'Mars/Olympus'"),
    ],
)
def test_preview_refuses_an_invalid_expression_or_zone(expression, tz, message):
    with pytest.raises(ValidationError) as caught:
        preview(expression, tz, utc(NOW), 5)
    assert message in caught.value.messages[0]


@pytest.mark.parametrize(
    "after, count",
    [case("naive-after", datetime(2026, 1, 15), 5), case("negative-count", utc(NOW), -1)],
)
def test_preview_refuses_a_naive_after_or_a_negative_count(after, count):
    with pytest.raises(ValueError):
        preview("@daily", "UTC", after, count)
