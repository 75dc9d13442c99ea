"""Cell values as real workbooks hold them, turned into what the models want.

The reader hands over stripped text (an empty cell or blank text is None), numbers as int or
float, booleans, and datetimes (Excel dates; openpyxl converts them by their number format).
Each converter returns the value or raises CellError with what is wrong, in words for an
operator; the loader adds the sheet, row, column and value.
"""

from __future__ import annotations

import zoneinfo
from datetime import date, datetime, time, timedelta

YES = {"y", "yes", "true", "1"}
NO = {"n", "no", "false", "0"}


class CellError(ValueError):
    pass


def text(value: object) -> str:
    """Text; a number becomes its digits (a process named 100 may arrive as 100.0)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float, str)):
        return str(value)
    raise CellError("Expected text, not a date.")


def yes_no(value: object, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    word = str(value).strip().lower() if isinstance(value, str) else None
    if word in YES:
        return True
    if word in NO:
        return False
    raise CellError("Expected Yes or No (also Y/N, True/False, 1/0).")


def whole_number(value: object, default: int, minimum: int = 0, maximum: int = 2_147_483_647) -> int:
    """A whole number; 3.0 (how Excel often stores 3) and the text "3" are accepted."""
    if value is None:
        return default
    if isinstance(value, bool) or isinstance(value, (datetime, date, time)):
        raise CellError("Expected a whole number.")
    number: int | float
    if isinstance(value, (int, float)):
        number = value
    else:
        try:
            number = int(value)
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                raise CellError("Expected a whole number.") from None
    if isinstance(number, float):
        if not number.is_integer():  # NaN and infinities fail this too
            raise CellError("Expected a whole number, not a fraction.")
        number = int(number)
    if number < minimum:
        raise CellError(f"Must be at least {minimum}.")
    if number > maximum:
        raise CellError(f"Must be at most {maximum}.")
    return number


def choice(value: object, choices: list[str], default: str) -> str:
    """One of `choices`, case ignored; spaces and dashes read as underscores ("run once")."""
    if value is None:
        return default
    word = "_".join(text(value).lower().replace("-", " ").split())
    if word not in choices:
        raise CellError(f"Expected one of {', '.join(choices)}.")
    return word


def moment(value: object, tz: str) -> datetime | None:
    """An aware datetime from an Excel date or ISO text; a naive one is wall time in `tz`."""
    if value is None:
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, date):
        parsed = datetime.combine(value, time())
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise CellError("Expected a date and time: an Excel date or ISO text such as 2026-12-31 23:00.") from None
    else:
        raise CellError("Expected a date and time: an Excel date or ISO text such as 2026-12-31 23:00.")
    if parsed.tzinfo is None:
        # Excel keeps milliseconds at best; round away float noise such as 11:59:59.999999.
        parsed = _round_to_millisecond(parsed).replace(tzinfo=zoneinfo.ZoneInfo(tz))
    return parsed


def _round_to_millisecond(value: datetime) -> datetime:
    micro = value.microsecond
    rounded = round(micro, -3)
    if rounded == micro:
        return value
    return value.replace(microsecond=0) + timedelta(microseconds=rounded)
