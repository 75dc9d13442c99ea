"""Next-fire maths of schedules (SPEC §4): cron parsing, DST-aware slots, intervals.

Pure functions, no database. Everything takes and returns aware datetimes; results are in
UTC. Each function computes the slots strictly after an `after` that the caller passes:
the dispatcher passes the slot it has just fired (`next_fire_at`), never "now", so that a
restart can still see and catch up the slots it missed (misfire policies).

Cron expressions are evaluated on the wall clock of the schedule's IANA time zone. croniter
parses and expands the plain fields (ranges, steps, names); which days of a month fire
(the Quartz rules of the 6- and 7-field forms, Unix cron's either-day rule of the 5-field
form) and the next wall-clock slot are worked out here (`CronSpec.next_wall`), and so is
the mapping of wall times to instants, so that the daylight-saving rules are ours (see
`next_fire`).
"""

from __future__ import annotations

import bisect
import calendar
import functools
import math
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import MAXYEAR, date, datetime, time, timedelta, timezone
from typing import Protocol

from croniter import CroniterError, croniter
from django.core.exceptions import ValidationError

UTC = timezone.utc
_WEEKDAY_ITEM = re.compile(r"^(?:(?P<day>\d+)w|w(?P<day_after>\d+))$")

# The year field spans 1970-2099: look that far ahead for a matching day (croniter's default
# horizon of 50 years once made "0 0 0 1 1 ? 2090" look like it never fires).
_YEAR_SPAN = 130
_FIRST_WALL = datetime(1969, 12, 31, 23, 59, 59)
_MAX_LAST_DAY_OFFSET = 30  # Quartz: L-30 at most

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
MONTH_NAMES = {name.lower(): number for number, name in enumerate(calendar.month_abbr) if name}
DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}


@dataclass(frozen=True)
class _Field:
    label: str
    low: int
    high: int
    names: dict[str, int] = field(default_factory=dict)
    hint: str = ""

    def value(self, text: str) -> int:
        """The number `text` stands for, in this field's own numbering."""
        if text.isdigit():
            number = int(text)
            if not self.low <= number <= self.high:
                raise _invalid(self, f"{text} is out of range {self.low}-{self.high}{self.hint}")
            return number
        if text in self.names:
            return self.names[text]
        raise _invalid(self, f"{text.upper()!r} is not a valid value")


SECOND = _Field("second", 0, 59)
MINUTE = _Field("minute", 0, 59)
HOUR = _Field("hour", 0, 23)
DAY_OF_MONTH = _Field("day-of-month", 1, 31)
MONTH = _Field("month", 1, 12, MONTH_NAMES)
# Names map to cron numbers (0=SUN) in both forms; digits are read per form, see parse_cron.
DAY_OF_WEEK_CRON = _Field("day-of-week", 0, 7, DAY_NAMES)
DAY_OF_WEEK_QUARTZ = _Field(
    "day-of-week",
    1,
    7,
    {name: number + 1 for name, number in DAY_NAMES.items()},
    hint=" (6- and 7-field expressions number the days Quartz's way, 1=SUN to 7=SAT; or use SUN-SAT)",
)
YEAR = _Field("year", 1970, 2099)

_FORMS = {
    5: (MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK_CRON),
    6: (SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK_QUARTZ),
    7: (SECOND, MINUTE, HOUR, DAY_OF_MONTH, MONTH, DAY_OF_WEEK_QUARTZ, YEAR),
}


def _invalid(fld: _Field, detail: str) -> ValidationError:
    return ValidationError(f"{fld.label.capitalize()} field: {detail}.", code="invalid_cron")


def _never(reason: str) -> ValidationError:
    return ValidationError(f"Never fires: {reason}.", code="cron_never_fires")


@dataclass(frozen=True)
class _Days:
    """Which days of a month a cron expression fires on.

    croniter cannot express the Quartz day rules (`nW` skipping months without day n, `L-n`,
    `L-nW`, lists of them, one day field or the other but never both), so the days are
    worked out here, a month at a time, and croniter only expands the plain fields.
    Weekdays are in cron numbering, 0 = SUN ... 6 = SAT.
    """

    dom_any: bool  # day-of-month is * or ?
    dow_any: bool  # day-of-week is * or ?
    either: bool  # both restricted (5 fields only): a day matching either field fires (Unix cron)
    dom: frozenset[int] = frozenset()  # plain days of the month
    dom_to_last: tuple[tuple[int, int], ...] = ()  # (first, step) of "N-L" ranges
    dom_last: tuple[int, ...] = ()  # offsets from the last day: L = 0, L-3 = 3
    dom_weekday: tuple[tuple[int, bool], ...] = ()  # W items: (day, False) for nW, (offset, True) for LW, L-nW
    dow: frozenset[int] = frozenset()  # plain weekdays
    dow_nth: tuple[tuple[int, int], ...] = ()  # (weekday, n) for FRI#3
    dow_last: tuple[int, ...] = ()  # weekdays of "last FRI of the month" items

    def in_month(self, year: int, month: int) -> tuple[int, ...]:
        """The days of `month` that match, in order."""
        first_weekday, length = calendar.monthrange(year, month)  # first_weekday: MON = 0

        def weekday(day: int) -> int:  # cron numbering
            return (first_weekday + day) % 7

        if self.dom_any and self.dow_any:
            return tuple(range(1, length + 1))
        by_month = None if self.dom_any else self._by_month(length, weekday)
        by_week = None if self.dow_any else self._by_week(length, weekday)
        if by_month is None or by_week is None:
            chosen = by_month if by_week is None else by_week
        else:
            chosen = by_month | by_week if self.either else by_month & by_week
        return tuple(sorted(chosen))

    def _by_month(self, length: int, weekday) -> set[int]:
        days = {day for day in self.dom if day <= length}
        for first, step in self.dom_to_last:
            days.update(range(first, length + 1, step))
        days.update(length - offset for offset in self.dom_last if length - offset >= 1)
        for number, from_last in self.dom_weekday:
            day = length - number if from_last else number
            if 1 <= day <= length:  # "31W" does not fire in a month without a 31st
                days.add(_nearest_weekday(day, length, weekday(day)))
        return days

    def _by_week(self, length: int, weekday) -> set[int]:
        days = {day for day in range(1, length + 1) if weekday(day) in self.dow}
        for wanted, nth in self.dow_nth:
            day = 1 + (wanted - weekday(1)) % 7 + 7 * (nth - 1)
            if day <= length:
                days.add(day)
        days.update(length - (weekday(length) - wanted) % 7 for wanted in self.dow_last)
        return days


def _nearest_weekday(day: int, length: int, day_of_week: int) -> int:
    """Quartz's W: a Saturday moves to the Friday before, a Sunday to the Monday after,
    never out of the month (Saturday the 1st: Monday the 3rd; Sunday the last: the Friday)."""
    if day_of_week == 6:
        return day + 2 if day == 1 else day - 1
    if day_of_week == 0:
        return day - 2 if day == length else day + 1
    return day


@functools.lru_cache(maxsize=8192)
def _month_days(days: _Days, year: int, month: int) -> tuple[int, ...]:
    return days.in_month(year, month)


@dataclass(frozen=True)
class CronSpec:
    """A parsed, valid cron expression.

    `expression` is what the user wrote; `normalized` is its canonical form (seconds first
    when `with_seconds`, day-of-week in cron numbering, lower case); `years` holds the years
    a 7-field expression names (None otherwise). The clock fields and months are expanded
    (by croniter) into `seconds`, `minutes`, `hours` and `months`; `days` is the day rule.
    """

    expression: str
    normalized: str
    with_seconds: bool
    years: tuple[int, ...] | None
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: frozenset[int]
    days: _Days

    def next_wall(self, wall: datetime) -> datetime | None:
        """The first naive wall-clock slot strictly after the naive `wall`, None if none is left."""
        wall = wall.replace(microsecond=0)
        day = self._next_day(wall.date())
        if day is None:
            return None
        if day == wall.date():
            clock = self._clock_after(wall.hour, wall.minute, wall.second)
            if clock is not None:
                return datetime.combine(day, clock)
            day = self._next_day(day + timedelta(days=1)) if day < date.max else None
            if day is None:
                return None
        return datetime.combine(day, time(self.hours[0], self.minutes[0], self.seconds[0]))

    def _clock_after(self, hour: int, minute: int, second: int) -> time | None:
        """The first time of day strictly after hour:minute:second, None if the day has none left."""
        if hour in self.hours:
            if minute in self.minutes:
                index = bisect.bisect_right(self.seconds, second)
                if index < len(self.seconds):
                    return time(hour, minute, self.seconds[index])
            index = bisect.bisect_right(self.minutes, minute)
            if index < len(self.minutes):
                return time(hour, self.minutes[index], self.seconds[0])
        index = bisect.bisect_right(self.hours, hour)
        if index < len(self.hours):
            return time(self.hours[index], self.minutes[0], self.seconds[0])
        return None

    def _next_day(self, start: date) -> date | None:
        """The first day on or after `start` that matches; at most _YEAR_SPAN years ahead."""
        last_year = min(start.year + _YEAR_SPAN, MAXYEAR, self.years[-1] if self.years else MAXYEAR)
        year, month, first = start.year, start.month, start.day
        while year <= last_year:
            if self.years is not None and year not in self.years:
                index = bisect.bisect_left(self.years, year)
                if index == len(self.years):
                    return None
                year, month, first = self.years[index], 1, 1
                continue
            if month in self.months:
                days = _month_days(self.days, year, month)
                index = bisect.bisect_left(days, first)
                if index < len(days):
                    return date(year, month, days[index])
            month, first = month + 1, 1
            if month > 12:
                year, month = year + 1, 1
        return None


def tidy_cron(expression: str) -> str:
    """A cron expression with single spaces between its fields: as it is parsed, and as a workbook
    load stores and matches it."""
    return " ".join(expression.split())


@functools.lru_cache(maxsize=4096)
def parse_cron(expression: str) -> CronSpec:
    """Parse a 5-, 6- or 7-field cron expression or an @alias; raise ValidationError if invalid.

    Forms: `min hour dom month dow`; `sec min hour dom month dow`; `sec min hour dom month
    dow year` (Quartz/Axway order, seconds FIRST). `?` means `*` in the day fields; month
    and day names (JAN, MON) in any case. Day of month: `L` (last day), `L-3` (three days
    before it), `15W` (the weekday nearest the 15th, within the month; a month without
    that day is skipped), `LW` and `L-3W`, `10-L`, in lists too. Day of week: `L` alone
    (Saturday), `6L`/`FRIL` (the last Friday), `FRI#3` (the third Friday).

    The 6- and 7-field forms follow Quartz: when day-of-month and day-of-week are both
    restricted the expression is refused (put `?` in one of them), a step must be below 60
    for seconds and minutes and below 24 for hours, and `W1`/`L1` (croniter spellings) are
    refused. The 5-field form keeps Unix cron's rule: with both day fields restricted a day
    matching either fires; it also accepts croniter's `L5` for the last Friday.

    Day-of-week digits: 5 fields use cron numbering (0 or 7 = SUN, 1 = MON ... 6 = SAT);
    6 and 7 fields are Quartz expressions and use Quartz numbering (1 = SUN, 2 = MON ...
    7 = SAT), so `0 0 12 ? * 2-6` is Monday to Friday and a 0 there is rejected. Names
    mean the same in every form and are the unambiguous choice.

    An expression that matches no date at all (`0 0 30 2 *`, 29 February in years that
    are not leap years) raises "Never fires: ...". Whether it fires again after a given
    moment (years in the past) is `validate_cron`'s question, not this one's.
    """
    text = tidy_cron(expression)
    if not text:
        raise ValidationError("Enter a cron expression.", code="invalid_cron")
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise ValidationError(
                f"Unknown alias {text!r}: use one of {', '.join(ALIASES)}.", code="invalid_cron"
            )
        return _checked(text, ALIASES[text.lower()].split(" "))

    tokens = text.lower().split(" ")
    if len(tokens) not in _FORMS:
        raise ValidationError(
            f"A cron expression has 5 fields (minute hour day-of-month month day-of-week), 6 "
            f"(second first) or 7 (second first, year last); {text!r} has {len(tokens)}.",
            code="invalid_cron",
        )
    quartz = len(tokens) > 5
    fields = [_normalize_field(fld, token, quartz) for fld, token in zip(_FORMS[len(tokens)], tokens)]
    if quartz and fields[3] != "*" and fields[5] != "*":
        written = text.split(" ")
        raise ValidationError(
            f"Day-of-month ({written[3].upper()}) and day-of-week ({written[5].upper()}) are both restricted: "
            f"put ? in one of them. 6- and 7-field expressions follow Quartz, which does not combine the two "
            f"(5-field expressions fire on a day matching either).",
            code="invalid_cron",
        )
    return _checked(text, fields)


def validate_cron(expression: str, tz: str = "UTC", now: datetime | None = None) -> CronSpec:
    """`parse_cron`, and also reject an expression that will never fire again after `now`."""
    spec = parse_cron(expression)
    now = now or datetime.now(UTC)
    if next_fire(spec, now, tz) is None:
        local_year = now.astimezone(_zone(tz)).year
        if spec.years and max(spec.years) < local_year:
            raise _never(f"every year in its year field ({spec.expression.split()[-1]}) is in the past")
        raise _never(f"no time after {now.astimezone(_zone(tz)):%Y-%m-%d %H:%M:%S} ({tz}) matches it")
    return spec


# -- field normalization -------------------------------------------------------------------


def _normalize_field(fld: _Field, token: str, quartz: bool) -> str:
    items = token.split(",")
    if any(not item for item in items):
        raise _invalid(fld, f"{token!r} has an empty list item")
    if fld is DAY_OF_MONTH:
        out = [_day_of_month_item(item, quartz) for item in items]
    elif fld in (DAY_OF_WEEK_CRON, DAY_OF_WEEK_QUARTZ):
        if "l" in items and len(items) > 1:
            raise _invalid(fld, f"{token.upper()!r}: L alone means Saturday, the last day of the week, and cannot be "
                                f"listed with other days; write SAT, or a day and L (FRIL) for the last such day of the month")
        out = [_day_of_week_item(fld, item, quartz) for item in items]
        special = ["#" in item or "l" in item for item in out]
        if any(special) and not all(special):
            raise _invalid(fld, f"{token!r} mixes plain days with '#' or 'L' items, which is not supported")
    else:
        out = [_plain_item(fld, item, quartz) for item in items]
    return ",".join(out)


def _plain_item(fld: _Field, item: str, quartz: bool) -> str:
    """`*`, `?`, `*/S`, `A`, `A-B`, `A/S`, `A-B/S` with A, B numbers or names."""
    base, slash, step_text = item.partition("/")
    step = _step(fld, step_text, quartz) if slash else None
    suffix = f"/{step}" if step else ""
    if base in ("*", "?"):
        if base == "?" and fld not in (DAY_OF_MONTH, DAY_OF_WEEK_CRON, DAY_OF_WEEK_QUARTZ):
            raise _invalid(fld, "'?' is only allowed in the day-of-month and day-of-week fields")
        return "*" + suffix
    start_text, dash, end_text = base.partition("-")
    _require_bounds(fld, base, start_text, dash, end_text)
    start = fld.value(start_text)
    if not dash:
        return f"{start}{suffix}"
    end = fld.value(end_text)
    if fld is YEAR and end < start:
        raise _invalid(fld, f"range {base!r} runs backwards")
    # croniter reads an equal range ("MON-MON", "1-1/2") as the whole field: say what is meant.
    return str(start) if start == end else f"{start}-{end}{suffix}"


def _require_bounds(fld: _Field, base: str, start: str, dash: str, end: str) -> None:
    if not start or (dash and not end):
        raise _invalid(fld, f"{base.upper()!r} is not a valid value or range")


def _step(fld: _Field, text: str, quartz: bool) -> int:
    if not text.isdigit() or int(text) == 0:
        raise _invalid(fld, f"step {text!r} must be a whole number of at least 1")
    step = int(text)
    if quartz and fld in (SECOND, MINUTE, HOUR) and step > fld.high:
        # Quartz refuses "0/60" seconds or minutes and "0/24" hours (a step that can never be taken).
        raise _invalid(fld, f"step {step} must be less than {fld.high + 1} in a 6- or 7-field (Quartz) expression")
    if step > fld.high - fld.low + 1:
        raise _invalid(fld, f"step {step} is larger than the field's range {fld.low}-{fld.high}")
    return step


def _day_of_month_item(item: str, quartz: bool) -> str:
    fld = DAY_OF_MONTH
    if item in ("l", "lw"):
        return item
    if item.startswith("l-"):
        offset, weekday = (item[2:-1], "w") if item.endswith("w") else (item[2:], "")
        if not offset.isdigit():
            raise _invalid(fld, f"{item.upper()!r} is not valid: write L-n or L-nW, such as L-3")
        if int(offset) > _MAX_LAST_DAY_OFFSET:
            raise _invalid(fld, f"{item.upper()!r}: the offset from the last day must be 0 to {_MAX_LAST_DAY_OFFSET}")
        return f"l-{int(offset)}{weekday}"
    if "w" in item:
        match = _WEEKDAY_ITEM.match(item)
        if not match or (quartz and match["day_after"]):
            raise _invalid(fld, f"{item.upper()!r} is not valid: write a day and W, such as 15W")
        return f"{fld.value(match['day'] or match['day_after'])}w"
    base, slash, step_text = item.partition("/")
    if base.endswith("-l"):
        step = f"/{_step(fld, step_text, quartz)}" if slash else ""
        return f"{fld.value(base[:-2])}-l{step}"
    return _plain_item(fld, item, quartz)


def _day_of_week_item(fld: _Field, item: str, quartz: bool) -> str:
    """Day-of-week items, returned in cron numbering (0=SUN ... 6=SAT)."""
    if item == "l":
        return "6"  # Quartz: L alone in day-of-week is the last day of the week, Saturday
    if "#" in item:
        day_text, _, nth_text = item.partition("#")
        if not nth_text.isdigit() or not 1 <= int(nth_text) <= 5:
            raise _invalid(fld, f"{item.upper()!r}: the number after '#' must be 1 to 5")
        return f"{_cron_day(fld, day_text)}#{int(nth_text)}"
    if item.endswith("l") or (item.startswith("l") and item[1:].isdigit()):
        if not item.endswith("l") and quartz:
            raise _invalid(fld, f"{item.upper()!r} is not valid: write the day before L, such as 6L or FRIL "
                                f"for the last Friday of the month")
        day_text = item[:-1] if item.endswith("l") else item[1:]
        if not day_text:
            raise _invalid(fld, f"{item.upper()!r} is not valid")
        return f"l{_cron_day(fld, day_text)}"  # "last Friday": Quartz writes 6L, canonical l5
    base, slash, step_text = item.partition("/")
    step = f"/{_step(fld, step_text, quartz)}" if slash else ""
    if base in ("*", "?"):
        return "*" + step
    start_text, dash, end_text = base.partition("-")
    _require_bounds(fld, base, start_text, dash, end_text)
    start = _cron_day(fld, start_text, keep_seven=True)
    if not dash:
        return f"{start % 7}{step}"
    end = _cron_day(fld, end_text, keep_seven=True)
    if start == end:
        return str(start % 7)
    if start % 7 == end % 7:  # 0-7: the whole week
        return "*" + step
    return f"{start}-{end}{step}"


def _cron_day(fld: _Field, text: str, keep_seven: bool = False) -> int:
    """Cron number of a day: names as they are, Quartz digits shifted down by one."""
    number = fld.value(text)
    if text in fld.names:
        number = DAY_NAMES[text]
    elif fld is DAY_OF_WEEK_QUARTZ:
        number -= 1
    return number if keep_seven else number % 7


def _checked(expression: str, fields: list[str]) -> CronSpec:
    """Build the spec; reject what croniter rejects, then what matches no date in 1970-2099.

    croniter expands the plain fields (ranges, steps, wrapping ranges such as 22-2); the
    Quartz day items (L, L-n, nW, LW, L-nW, N-L, #, nL) are read here.
    """
    quartz = len(fields) > 5
    second, minute, hour, dom, month, dow = fields[:6] if quartz else ["0", *fields]
    year = fields[6] if len(fields) == 7 else "*"
    dom_plain, dom_special = _split(dom, lambda item: "l" in item or "w" in item)
    dow_plain, dow_special = _split(dow, lambda item: "l" in item or "#" in item)
    carrier = f"{second} {minute} {hour} {','.join(dom_plain) or '*'} {month} {','.join(dow_plain) or '*'} {year}"
    try:
        expanded, _ = croniter.expand(carrier, second_at_beginning=True)
    except CroniterError as exc:
        raise ValidationError(f"Invalid cron expression {expression!r}: {exc}", code="invalid_cron") from None
    minutes, hours, dom_days, months, dow_days, seconds, years = expanded
    to_last, last, weekday = [], [], []
    for item in dom_special:
        if item == "lw":
            weekday.append((0, True))
        elif item.startswith("l-") and item.endswith("w"):  # l-3w
            weekday.append((int(item[2:-1]), True))
        elif item.endswith("w"):  # 15w
            weekday.append((int(item[:-1]), False))
        elif item[0] == "l":  # l, l-3
            last.append(int(item[2:] or 0))
        else:  # 10-l, 10-l/2
            first, _, step = item.partition("-l")
            to_last.append((int(first), int(step[1:] or 1)))
    days = _Days(
        dom_any=dom == "*",
        dow_any=dow == "*",
        either=not quartz,
        dom=frozenset(_all(dom_days, 1, 31)) if dom_plain else frozenset(),
        dom_to_last=tuple(to_last),
        dom_last=tuple(last),
        dom_weekday=tuple(weekday),
        dow=frozenset(day % 7 for day in _all(dow_days, 0, 6)) if dow_plain else frozenset(),
        dow_nth=tuple((int(day), int(nth)) for day, _, nth in (item.partition("#") for item in dow_special if "#" in item)),
        dow_last=tuple(int(item[1:]) for item in dow_special if item[0] == "l"),
    )
    spec = CronSpec(
        expression=expression,
        normalized=" ".join(fields),
        with_seconds=quartz,
        years=tuple(sorted(set(years))) if years != ["*"] else None,
        seconds=_all(seconds, 0, 59),
        minutes=_all(minutes, 0, 59),
        hours=_all(hours, 0, 23),
        months=frozenset(_all(months, 1, 12)),
        days=days,
    )
    if spec.next_wall(_FIRST_WALL) is None:
        raise _never(_why_never(spec))
    return spec


def _split(field_text: str, special) -> tuple[list[str], list[str]]:
    items = [] if field_text == "*" else field_text.split(",")
    return [item for item in items if not special(item)], [item for item in items if special(item)]


def _all(values: list, low: int, high: int) -> tuple[int, ...]:
    return tuple(range(low, high + 1)) if values == ["*"] else tuple(sorted(set(values)))


def _why_never(spec: CronSpec) -> str:
    days, months, years = spec.days, sorted(spec.months), spec.years
    # Numbered days only (15, 31W): one past the end of every chosen month is a clear reason.
    numbered = set(days.dom) | {day for day, from_last in days.dom_weekday if not from_last}
    if days.dow_any and not days.dom_any and numbered and not (days.dom_to_last or days.dom_last or
                                                               any(from_last for _, from_last in days.dom_weekday)):
        longest = max(calendar.monthrange(2000, month)[1] for month in months)  # 2000: a leap year
        if min(numbered) > longest:
            names = ", ".join(calendar.month_name[month] for month in months)
            return f"day {min(numbered)} does not occur in {names}"
        if years and months == [2] and not any(calendar.isleap(year) for year in years):
            return f"29 February needs a leap year and none of {', '.join(map(str, years))} is one"
    return "no date between 1970 and 2099 matches all of its fields"


# -- time zones ----------------------------------------------------------------------------


def _zone(tz: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"Unknown time zone {tz!r}: use an IANA name such as Europe/London.") from None


def _aware_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not {moment!r}")
    return moment.astimezone(UTC)


def _transition(before: datetime, after: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """The first whole second in (before, after] with `after`'s UTC offset (one transition between)."""
    target = after.astimezone(zone).utcoffset()
    low, high = math.floor(before.timestamp()), math.floor(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == target:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _instant(wall: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """The instant a naive wall-clock slot fires at.

    A wall time in a repeated hour (fall back) is its first occurrence; a wall time in a
    skipped hour (spring forward) is the first valid instant after it: the end of the gap.
    """
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first <= second:
        return first
    return _transition(second, first, zone)  # zoneinfo puts fold=0 after fold=1 only in a gap


def _wall_cursor(after: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """The naive wall time from which to look for the next slot after the instant `after`.

    In the second pass of a repeated hour, every slot of that hour already fired in the
    first pass, so the search resumes at the wall time the repetition ends.
    """
    local = after.astimezone(zone)
    wall = local.replace(tzinfo=None, microsecond=0)
    first_pass = local.replace(fold=0)
    if local.fold == 1 and first_pass.utcoffset() != local.utcoffset():
        ended = _transition(first_pass.astimezone(UTC), after, zone) + first_pass.utcoffset()
        wall = max(wall, ended.replace(tzinfo=None) - timedelta(seconds=1))
    return wall


# -- next fire times -------------------------------------------------------------------------


def next_fire(cron: CronSpec | str, after: datetime, tz: str = "UTC") -> datetime | None:
    """The first slot of `cron` strictly after `after`, on the wall clock of `tz`, in UTC.

    None once the expression has no slot left (a 7-field expression past its last year).
    Daylight saving (SPEC §4), every slot firing once:
    - slots in a skipped hour fire at the first valid instant after them, the end of the
      gap: 02:30 on the New York spring-forward day fires at 03:00 EDT. Several such slots
      (and a slot at the gap's end itself) make a single fire;
    - slots in a repeated hour fire in its first pass only, so an hourly expression skips
      the second 01:00 and a per-second one is silent for the second pass of the hour.
    """
    spec = cron if isinstance(cron, CronSpec) else parse_cron(cron)
    zone = _zone(tz)
    after = _aware_utc(after, "after")
    wall = _wall_cursor(after, zone)
    # One step suffices (see _wall_cursor); the loop only guards against a zone oddity.
    for _ in range(100):
        slot = spec.next_wall(wall)
        if slot is None:
            return None
        instant = _instant(slot, zone)
        if instant > after:
            return instant
        wall = slot
    raise RuntimeError(f"no slot of {spec.expression!r} found after {after} in {tz}")


def next_interval_fire(start_at: datetime, interval_seconds: int, after: datetime) -> datetime:
    """The first slot start_at + k * interval_seconds (k >= 0) strictly after `after`, in UTC.

    Slots are anchored to start_at, not to the last fire, so a late fire does not drift
    the schedule; intervals are elapsed time, unaffected by daylight saving.
    """
    if interval_seconds < 1:
        raise ValueError(f"interval_seconds must be at least 1, not {interval_seconds}")
    start_at = _aware_utc(start_at, "start_at")
    after = _aware_utc(after, "after")
    if after < start_at:
        return start_at
    step = timedelta(seconds=interval_seconds)
    return start_at + ((after - start_at) // step + 1) * step


# -- timings: one interface for every kind of schedule ----------------------------------------


class Timing(Protocol):
    def next_after(self, after: datetime) -> datetime | None:
        """The first slot strictly after `after` (aware), in UTC; None when there is none left."""


@dataclass(frozen=True)
class CronTiming:
    """Cron slots in `tz`, none before start_at nor after end_at (both inclusive, optional)."""

    spec: CronSpec | str
    tz: str = "UTC"
    start_at: datetime | None = None
    end_at: datetime | None = None

    def __post_init__(self) -> None:
        if isinstance(self.spec, str):
            object.__setattr__(self, "spec", parse_cron(self.spec))

    def next_after(self, after: datetime) -> datetime | None:
        if self.start_at is not None:
            after = max(_aware_utc(after, "after"), _aware_utc(self.start_at, "start_at") - timedelta(microseconds=1))
        return _until(next_fire(self.spec, after, self.tz), self.end_at)


@dataclass(frozen=True)
class IntervalTiming:
    """start_at, then every interval_seconds, up to end_at (inclusive, optional)."""

    start_at: datetime
    interval_seconds: int
    end_at: datetime | None = None

    def next_after(self, after: datetime) -> datetime | None:
        return _until(next_interval_fire(self.start_at, self.interval_seconds, after), self.end_at)


@dataclass(frozen=True)
class OnceTiming:
    at: datetime

    def next_after(self, after: datetime) -> datetime | None:
        at = _aware_utc(self.at, "at")
        return at if at > _aware_utc(after, "after") else None


def _until(slot: datetime | None, end_at: datetime | None) -> datetime | None:
    if slot is None or end_at is None:
        return slot
    return slot if slot <= _aware_utc(end_at, "end_at") else None


def upcoming(timing: Timing, after: datetime, count: int = 5) -> list[datetime]:
    """The next `count` slots after `after` (fewer if the timing ends), each from the previous."""
    slots: list[datetime] = []
    while len(slots) < count and (slot := timing.next_after(slots[-1] if slots else after)) is not None:
        slots.append(slot)
    return slots


def slots_between(timing: Timing, after: datetime, until: datetime, cap: int) -> list[datetime]:
    """The slots in (after, until], oldest first, at most `cap` of them (for misfire policies).

    Ask for cap + 1 to learn whether slots were left out; resume with
    `timing.next_after(until)` once the missed ones are dealt with.
    """
    until = _aware_utc(until, "until")
    slots: list[datetime] = []
    while len(slots) < cap and (slot := timing.next_after(slots[-1] if slots else after)) is not None:
        if slot > until:
            break
        slots.append(slot)
    return slots


def preview(expression: str, tz: str, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times of a cron expression in zone `tz`, strictly after `after`.

    Aware UTC datetimes, each the slot after the previous one, by the same rules the
    dispatcher fires by (DST included); fewer than `count` when the expression stops firing
    (a 7-field expression past its last year). Raises ValidationError for an invalid
    expression or an unknown zone, ValueError for a naive `after` or a negative `count`.
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")
    spec = parse_cron(expression)
    _zone(tz)
    return upcoming(CronTiming(spec, tz), after, count)


@dataclass(frozen=True)
class InvalidTiming:
    """The timing of a stored schedule whose rules no longer parse: no slots, and why."""

    problem: str

    def next_after(self, after: datetime) -> datetime | None:
        return None
