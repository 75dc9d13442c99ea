"""How a job's `parameters` steer the reference external system: the demo's and tests' dials."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.core.exceptions import ValidationError

from apps.catalog import params
from apps.extsys.models import OUTCOMES, JobStatus

T = TypeVar("T", int, float)

# Bounds keep a typo from making a job that never ends or a log of gigabytes.
MAX_DURATION_SECONDS = 7 * 24 * 3600.0
MAX_LINES = 100_000


@dataclass(frozen=True)
class Knobs:
    duration: float = 3.0
    outcome: str = JobStatus.COMPLETED
    restart_outcome: str = JobStatus.COMPLETED
    start_status: int | None = None
    lines: int = 5
    status_value: str = JobStatus.RUNNING


def read(parameters: str) -> Knobs:
    """The knobs in a parameter string; other keys are the job's own and are ignored.

    Raises ValidationError naming the bad value."""
    values = params.parse(parameters)
    return Knobs(
        duration=_bounded(values, "duration", float, 3.0, 0.0, MAX_DURATION_SECONDS),
        outcome=_outcome(values, "outcome"),
        restart_outcome=_outcome(values, "restart_outcome"),
        start_status=_bounded(values, "start_status", int, None, 200, 599),
        lines=_bounded(values, "lines", int, 5, 0, MAX_LINES),
        status_value=_status_value(values),
    )


def _bounded(
    values: dict[str, str], key: str, convert: Callable[[str], T], default: T | None, low: T, high: T
) -> T | None:
    if key not in values:
        return default
    try:
        number = convert(values[key])
    except ValueError:
        number = None
    # Written as a range test so that NaN fails it too.
    if number is None or not low <= number <= high:
        raise ValidationError(f"{key}={values[key]!r}: expected a number from {low} to {high}.")
    return number


def _outcome(values: dict[str, str], key: str) -> str:
    value = values.get(key, JobStatus.COMPLETED).upper()
    if value not in dict(OUTCOMES):
        raise ValidationError(f"{key}={values[key]!r}: expected COMPLETED or ERROR.")
    return value


def _status_value(values: dict[str, str]) -> str:
    value = values.get("status_value", JobStatus.RUNNING)
    if not value or len(value) > 50:
        raise ValidationError("status_value: expected 1 to 50 characters.")
    return value
