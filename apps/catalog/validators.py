"""The rules a single value must follow, in one place: the models use them as field validators,
and the admin forms, the API serializers and the spreadsheet loader all reach them through the
models (or call them directly where a value has no model field yet)."""

from __future__ import annotations

import zoneinfo

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator, URLValidator

from apps.catalog import params

application_name = RegexValidator(r"^[A-Za-z0-9_-]{1,64}$", "Use 1–64 letters, digits, '_' or '-'.")
job_name = RegexValidator(r"^[A-Za-z0-9_.-]{1,100}$", "Use 1–100 letters, digits, '_', '.' or '-'.")
_http_url = URLValidator(schemes=["http", "https"])


def http_url(value: str) -> None:
    """An http(s) URL; the message names the value."""
    try:
        _http_url(value)
    except ValidationError:
        raise ValidationError(f"{value[:100]!r} is not an http(s) URL.", code="invalid") from None


def timezone_name(name: str) -> None:
    """An IANA zone name such as Europe/London."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe" is a directory
        raise ValidationError(f"Unknown time zone {str(name)[:64]!r}: use an IANA name such as Europe/London.",
                              code="invalid") from None


def parameters(text: str) -> None:
    """A `key=value||key1=value1` string (SPEC §1); the message names the bad pair."""
    params.parse(text)
