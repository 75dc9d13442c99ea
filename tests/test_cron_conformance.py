"""Cron conformance: test vectors taken from Quartz's and Spring's own cron test suites
(tests/data/cron_vectors.json, each with its source file and line) run against timing.py.

Where this project deliberately differs from a source, the vector carries our expectation,
what the source expects, and the name of a documented difference (`known_differences`).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from apps.scheduling.timing import next_fire, parse_cron, preview

UTC = timezone.utc
DATA = json.loads((Path(__file__).parent / "data" / "cron_vectors.json").read_text(encoding="utf-8"))
VECTORS = DATA["vectors"]
DIFFERENCES = {difference["id"]: difference for difference in DATA["known_differences"]}


def instant(text: str, tz: str) -> datetime:
    """An ISO time: with an offset, that instant; without, a wall-clock time in `tz`."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(tz))
    return moment.astimezone(UTC)


def by_kind(kind: str) -> list:
    return [pytest.param(vector, id=vector["id"]) for vector in VECTORS if kind in vector["expect"]]


@pytest.mark.parametrize("vector", by_kind("next"))
def test_it_fires_when_the_source_says(vector):
    tz, expected = vector["tz"], vector["expect"]["next"]
    slots = preview(vector["expression"], tz, instant(vector["start"], tz), len(expected))
    assert slots == [instant(text, tz) for text in expected]


@pytest.mark.parametrize("vector", by_kind("next_is_not"))
def test_it_does_not_fire_when_the_source_says_it_does_not_match(vector):
    tz = vector["tz"]
    assert next_fire(vector["expression"], instant(vector["start"], tz), tz) != instant(vector["expect"]["next_is_not"], tz)


@pytest.mark.parametrize("vector", by_kind("refused"))
def test_it_refuses_what_the_source_refuses(vector):
    with pytest.raises(ValidationError) as caught:
        parse_cron(vector["expression"])
    assert vector["expect"].get("message", "") in caught.value.messages[0]


@pytest.mark.parametrize("vector", by_kind("valid"))
def test_it_accepts_what_the_source_accepts(vector):
    assert parse_cron(vector["expression"]).expression == " ".join(vector["expression"].split())


@pytest.mark.parametrize("vector", by_kind("same_as"))
def test_it_reads_equivalent_expressions_alike(vector):
    tz, expect = vector["tz"], vector["expect"]
    start = instant(vector["start"], tz)
    slots = preview(vector["expression"], tz, start, expect["count"])
    assert len(slots) == expect["count"]
    assert slots == preview(expect["same_as"], tz, start, expect["count"])


def test_there_are_enough_vectors_from_both_suites():
    repos = {vector["source"]["repo"] for vector in VECTORS}
    assert len(VECTORS) >= 150 and repos == {"quartz-scheduler/quartz", "spring-projects/spring-framework"}
    assert len({vector["id"] for vector in VECTORS}) == len(VECTORS)
    kinds = {"next", "next_is_not", "refused", "valid", "same_as"}
    assert all(len(kinds & set(vector["expect"])) == 1 for vector in VECTORS)


def test_each_vector_names_its_source_line():
    for vector in VECTORS:
        source = vector["source"]
        assert source["file"].endswith(".java") and source["line"] > 0 and len(source["commit"]) == 40, vector["id"]


def test_each_difference_is_documented_and_each_documented_one_is_used():
    used = {vector["difference"] for vector in VECTORS if "difference" in vector}
    assert used == set(DIFFERENCES)
    for vector in VECTORS:
        if "difference" in vector:
            assert vector["source_expects"], vector["id"]
    assert all(difference["choice"] and difference["reason"] for difference in DIFFERENCES.values())


def test_the_translated_spring_vectors_say_what_they_were():
    for vector in VECTORS:
        if "source_expression" in vector:
            assert vector["source"]["repo"] == "spring-projects/spring-framework"
            assert vector["translation"] and vector["source_expression"] != vector["expression"]
