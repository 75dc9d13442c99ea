"""Job parameters: the double-pipe string `key=value||key1=value1` of SPEC §1."""

from __future__ import annotations

import re

from django.core.exceptions import ValidationError

_ENV_UNSAFE = re.compile(r"[^A-Z0-9_]")


def parse(text: str | None) -> dict[str, str]:
    """Parse a parameter string into an ordered dict; raise ValidationError naming a bad pair."""
    result: dict[str, str] = {}
    if text is None or not str(text).strip():
        return result
    for pair in str(text).split("||"):
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValidationError(f"Malformed parameter pair {pair!r}: expected key=value.")
        if key in result:
            raise ValidationError(f"Duplicate parameter key {key!r}.")
        if "\x00" in pair:
            # No database text column (PostgreSQL's) nor process environment can hold one.
            raise ValidationError(f"Parameter pair {pair!r} contains a NUL character.")
        result[key] = value.strip()
    return result


def format(values: dict[str, str]) -> str:
    return "||".join(f"{key}={value}" for key, value in values.items())


def merge(defaults: str, overrides: str | dict[str, str] | None) -> str:
    """The job's defaults overridden key by key by a trigger's parameters."""
    merged = parse(defaults)
    if isinstance(overrides, dict):
        merged.update({str(key).strip(): str(value).strip() for key, value in overrides.items()})
    else:
        merged.update(parse(overrides))
    text = format(merged)
    # A dict may hold what the string cannot carry ("||" in a value, "=" in a key, an empty
    # key): refuse it now rather than store parameters that fail when the job runs.
    if parse(text) != merged:
        raise ValidationError(f"Parameters {overrides!r} cannot be written as key=value||key1=value1.")
    return text


def environment(text: str) -> dict[str, str]:
    """Environment variables handed to an EXEC job: never interpolated into its command."""
    env = {"BATCH_PARAMS": text}
    for key, value in parse(text).items():
        env["BATCH_PARAM_" + _ENV_UNSAFE.sub("_", key.upper())] = value
    return env


def validate(text: str) -> None:
    parse(text)
