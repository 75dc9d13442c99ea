"""Job parameters (SPEC §1): the `key=value||key1=value1` string, its merge and its environment."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.catalog import params


def test_it_parses_pairs_in_order():
    assert list(params.parse("b=2||a=1||c=3").items()) == [("b", "2"), ("a", "1"), ("c", "3")]


@pytest.mark.parametrize("text", [None, "", "   "])
def test_it_parses_nothing_as_no_parameters(text):
    assert params.parse(text) == {}


def test_it_keeps_equals_signs_inside_values():
    parsed = params.parse("url=https://x.example/?a=b&c=d||expr=x==y||empty=")
    assert parsed == {"url": "https://x.example/?a=b&c=d", "expr": "x==y", "empty": ""}


def test_it_strips_blanks_around_keys_and_values():
    assert params.parse(" region = EU || day=Mon ") == {"region": "EU", "day": "Mon"}


@pytest.mark.parametrize(
    "text, bad_pair",
    [
        ("a=1||oops||b=2", "'oops'"),
        ("=value", "'=value'"),
        ("a=1||  =2", "'  =2'"),
        ("a=1||", "''"),
        ("a=1||||b=2", "''"),
    ],
)
def test_it_rejects_a_malformed_pair_naming_it(text, bad_pair):
    with pytest.raises(ValidationError) as raised:
        params.parse(text)
    message = raised.value.messages[0]
    assert message.startswith("Malformed parameter pair")
    assert bad_pair in message


def test_it_rejects_duplicate_keys_naming_the_key():
    with pytest.raises(ValidationError, match="Duplicate parameter key 'day'"):
        params.parse("day=Mon||region=EU||day=Tue")


def test_it_treats_keys_that_differ_in_blanks_as_duplicates():
    with pytest.raises(ValidationError, match="Duplicate parameter key 'day'"):
        params.parse("day=Mon|| day =Tue")


@pytest.mark.parametrize("text", ["day=Tue\x00", "da\x00y=Tue"])
def test_it_rejects_a_nul_character_naming_the_pair(text):
    with pytest.raises(ValidationError, match="contains a NUL character") as raised:
        params.parse(text)
    assert repr(text) in raised.value.messages[0]


def test_it_validates_through_the_model_field_validator():
    params.validate("a=1||b=2")
    with pytest.raises(ValidationError, match="'b'"):
        params.validate("a=1||b")


def test_it_formats_what_it_parses():
    text = "a=1||url=http://h/?q=1||b="
    assert params.format(params.parse(text)) == text


def test_it_overrides_defaults_key_by_key_keeping_their_order():
    assert params.merge("a=1||b=2||c=3", "b=20||d=4") == "a=1||b=20||c=3||d=4"


@pytest.mark.parametrize("overrides", [None, "", {}])
def test_it_keeps_the_defaults_when_nothing_overrides_them(overrides):
    assert params.merge("a=1||b=2", overrides) == "a=1||b=2"


def test_it_merges_overrides_given_as_a_dict():
    assert params.merge("a=1", {"a": "one", "z": "26"}) == "a=one||z=26"


def test_it_merges_dict_values_as_the_string_form_would_carry_them():
    assert params.merge("", {"count": 3, "region": " EU "}) == "count=3||region=EU"


def test_it_merges_onto_empty_defaults():
    assert params.merge("", "x=1") == "x=1"


def test_it_rejects_malformed_overrides_and_defaults():
    with pytest.raises(ValidationError, match="'nope'"):
        params.merge("a=1", "nope")
    with pytest.raises(ValidationError, match="'broken'"):
        params.merge("broken", "a=1")


@pytest.mark.parametrize("overrides", [{"a": "x||y"}, {"": "x"}, {"a=b": "c"}])
def test_it_rejects_dict_overrides_that_cannot_be_written_as_pairs(overrides):
    with pytest.raises(ValidationError):
        params.merge("k=v", overrides)


def test_it_hands_the_whole_string_and_each_value_to_the_environment():
    env = params.environment("region=EU||day=Mon")
    assert env == {"BATCH_PARAMS": "region=EU||day=Mon", "BATCH_PARAM_REGION": "EU", "BATCH_PARAM_DAY": "Mon"}


@pytest.mark.parametrize(
    "key, variable",
    [
        ("batch_date", "BATCH_PARAM_BATCH_DATE"),
        ("file.name", "BATCH_PARAM_FILE_NAME"),
        ("store-id", "BATCH_PARAM_STORE_ID"),
        ("with space", "BATCH_PARAM_WITH_SPACE"),
        ("a$b;c", "BATCH_PARAM_A_B_C"),
        ("9lives", "BATCH_PARAM_9LIVES"),
        ("café", "BATCH_PARAM_CAF_"),
    ],
)
def test_it_sanitises_keys_into_environment_names(key, variable):
    env = params.environment(f"{key}=v")
    assert env[variable] == "v"
    assert all(name == "BATCH_PARAMS" or set(name) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") for name in env)


def test_it_passes_values_to_the_environment_verbatim():
    value = "$(touch /tmp/x); `id` | rm -rf / && echo 'q\"'"
    assert params.environment(f"cmd={value}")["BATCH_PARAM_CMD"] == value


def test_it_gives_an_empty_environment_string_for_no_parameters():
    assert params.environment("") == {"BATCH_PARAMS": ""}
