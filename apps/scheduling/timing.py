"""Next-fire maths of schedules (SPEC §4): cron parsing, DST-aware slots, intervals.

Pure functions, no database. Everything takes and returns aware datetimes; results are in
UTC. Each function computes the slots strictly after an `after` that the caller passes:
the dispatcher passes the slot it has just fired (`next_fire_at`), never "now", so that a
restart can still see and catch up the slots it missed (misfire policies).

Cron expressions are evaluated on the wall clock of the schedule's IANA time zone:
croniter only ever sees naive wall times, and the mapping to instants is done here, so
that the daylight-saving rules are ours (see `next_fire`), not croniter's.
"""

from __future__ import annotations

import calendar
import functools
import math
import re
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Protocol

from croniter import CroniterBadDateError, CroniterError, croniter
from django.core.exceptions import ValidationError

UTC = timezone.utc
_WEEKDAY_ITEM = re.compile(r"^(?:(?P<day>\d+)w|w(?P<day_after>\d+))$")

# croniter's year field spans 1970-2099; it gives up after 50 years by default, which made
# "0 0 0 1 1 ? 2090" look like it never fires. Search the whole span instead.
_YEAR_SPAN = 130
_FIRST_WALL = datetime(1969, 12, 31, 23, 59, 59)

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
class CronSpec:
    """A parsed, valid cron expression.

    `expression` is what the user wrote; `normalized` is what croniter is given (seconds
    first when `with_seconds`, day-of-week in cron numbering); `years` holds the years a
    7-field expression names (None otherwise).
    """

    expression: str
    normalized: str
    with_seconds: bool
    years: tuple[int, ...] | None = None

    def _iterator(self, wall: datetime) -> croniter:
        return croniter(
            self.normalized,
            wall,
            ret_type=datetime,
            second_at_beginning=self.with_seconds,
            max_years_between_matches=_YEAR_SPAN,
        )

    def next_wall(self, wall: datetime) -> datetime | None:
        """The first naive wall-clock slot strictly after the naive `wall`, None if none is left."""
        try:
            return self._iterator(wall.replace(microsecond=0)).get_next()
        except CroniterBadDateError:
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
    and day names (JAN, MON) in any case; `L` (last day of month, `L` alone in
    day-of-week = SAT), `LW` (last weekday of the month), `15W` (nearest weekday),
    `5L`/`L5` (last Friday in cron numbering) and `FRI#3` (third Friday).

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
        return _checked(text, ALIASES[text.lower()])

    tokens = text.lower().split(" ")
    if len(tokens) not in _FORMS:
        raise ValidationError(
            f"A cron expression has 5 fields (minute hour day-of-month month day-of-week), 6 "
            f"(second first) or 7 (second first, year last); {text!r} has {len(tokens)}.",
            code="invalid_cron",
        )
    fields = _FORMS[len(tokens)]
    return _checked(text, " ".join(_normalize_field(fld, token) for fld, token in zip(fields, tokens)))


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


def _normalize_field(fld: _Field, token: str) -> str:
    items = token.split(",")
    if any(not item for item in items):
        raise _invalid(fld, f"{token!r} has an empty list item")
    if fld is DAY_OF_MONTH:
        out = [_day_of_month_item(item, len(items)) for item in items]
    elif fld in (DAY_OF_WEEK_CRON, DAY_OF_WEEK_QUARTZ):
        out = [_day_of_week_item(fld, item) for item in items]
        special = ["#" in item or "l" in item for item in out]
        if any(special) and not all(special):
            raise _invalid(fld, f"{token!r} mixes plain days with '#' or 'L' items, which is not supported")
    else:
        out = [_plain_item(fld, item) for item in items]
    return ",".join(out)


def _plain_item(fld: _Field, item: str) -> str:
    """`*`, `?`, `*/S`, `A`, `A-B`, `A/S`, `A-B/S` with A, B numbers or names."""
    base, slash, step_text = item.partition("/")
    step = _step(fld, step_text) if slash else None
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


def _step(fld: _Field, text: str) -> int:
    if not text.isdigit() or int(text) == 0:
        raise _invalid(fld, f"step {text!r} must be a whole number of at least 1")
    if int(text) > fld.high - fld.low + 1:
        raise _invalid(fld, f"step {text} is larger than the field's range {fld.low}-{fld.high}")
    return int(text)


def _day_of_month_item(item: str, count: int) -> str:
    fld = DAY_OF_MONTH
    if item == "l":
        return "l"
    if item == "lw":
        # croniter clamps a W day to the month's last day, so 31W is the last weekday.
        return _alone(item, count, "31w")
    if item.startswith("l-"):
        raise _invalid(fld, f"{item.upper()!r} (an offset from the last day) is not supported")
    if "w" in item:
        match = _WEEKDAY_ITEM.match(item)
        if not match:
            raise _invalid(fld, f"{item.upper()!r} is not valid: write a day and W, such as 15W")
        return _alone(item, count, f"{fld.value(match['day'] or match['day_after'])}w")
    base, slash, step_text = item.partition("/")
    if base.endswith("-l"):
        step = f"/{_step(fld, step_text)}" if slash else ""
        return f"{fld.value(base[:-2])}-l{step}"
    return _plain_item(fld, item)


def _alone(item: str, count: int, result: str) -> str:
    if count > 1:
        raise _invalid(DAY_OF_MONTH, f"{item.upper()!r} must be the field's only item")
    return result


def _day_of_week_item(fld: _Field, item: str) -> str:
    """Day-of-week items, returned in cron numbering (0=SUN ... 6=SAT) for croniter."""
    if item == "l":
        return "6"  # Quartz: L alone in day-of-week is the last day of the week, Saturday
    if "#" in item:
        day_text, _, nth_text = item.partition("#")
        if not nth_text.isdigit() or not 1 <= int(nth_text) <= 5:
            raise _invalid(fld, f"{item.upper()!r}: the number after '#' must be 1 to 5")
        return f"{_cron_day(fld, day_text)}#{int(nth_text)}"
    if item.endswith("l") or (item.startswith("l") and item[1:].isdigit()):
        day_text = item[:-1] if item.endswith("l") else item[1:]
        if not day_text:
            raise _invalid(fld, f"{item.upper()!r} is not valid")
        return f"l{_cron_day(fld, day_text)}"  # croniter spells "last Friday" L5, Quartz 6L
    base, slash, step_text = item.partition("/")
    step = f"/{_step(fld, step_text)}" if slash else ""
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


def _checked(expression: str, normalized: str) -> CronSpec:
    """Reject what croniter rejects, then what matches no date between 1970 and 2099."""
    with_seconds = len(normalized.split(" ")) > 5
    try:
        expanded, _ = croniter.expand(normalized, second_at_beginning=with_seconds)
    except CroniterError as exc:
        raise ValidationError(f"Invalid cron expression {expression!r}: {exc}", code="invalid_cron") from None
    years = tuple(expanded[6]) if len(expanded) == 7 and expanded[6] != ["*"] else None
    spec = CronSpec(expression, normalized, with_seconds, years)
    if spec.next_wall(_FIRST_WALL) is None:
        raise _never(_why_never(expanded, years))
    return spec


def _why_never(expanded: list, years: tuple[int, ...] | None) -> str:
    days, months, week_days = expanded[2], expanded[3], expanded[4]
    if week_days == ["*"] and days != ["*"] and all(isinstance(day, int) for day in days):
        chosen = range(1, 13) if months == ["*"] else months
        longest = max(calendar.monthrange(2000, month)[1] for month in chosen)  # 2000: a leap year
        if min(days) > longest:
            names = ", ".join(calendar.month_name[month] for month in chosen)
            return f"day {min(days)} does not occur in {names}"
        if years and list(chosen) == [2] and not any(calendar.isleap(year) for year in years):
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
