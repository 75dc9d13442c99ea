"""POST /api/v1/cron/preview (SPEC §5.2): the next fire times of any expression, saving nothing."""

from __future__ import annotations

import pytest

from apps.scheduling.models import Schedule
from tests.conftest import token_client

pytestmark = pytest.mark.django_db
URL = "/api/v1/cron/preview"


@pytest.fixture
def api(viewer):
    return token_client(viewer)


def test_it_previews_in_a_zone_after_a_local_instant(api):
    body = api.post(URL, {"cron": "0 30 2 * * ?", "timezone": "America/New_York", "after": "2026-03-07T12:00:00",
                          "count": 3}, format="json").json()
    # 8 March 2026 is New York's spring-forward day: 02:30 does not exist and fires at 03:00 EDT.
    assert body == {
        "cron": "0 30 2 * * ?", "timezone": "America/New_York",
        "next_fire_times": ["2026-03-08T07:00:00+00:00", "2026-03-09T06:30:00+00:00", "2026-03-10T06:30:00+00:00"],
        "local_times": ["2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"],
    }
    assert not Schedule.objects.exists()


def test_an_after_with_an_offset_is_taken_as_given_and_the_default_count_is_5(api):
    body = api.post(URL, {"cron": "*/15 * * * *", "timezone": "UTC", "after": "2026-01-01T00:00:00+01:00"},
                    format="json").json()
    assert body["next_fire_times"][:2] == ["2025-12-31T23:15:00+00:00", "2025-12-31T23:30:00+00:00"]
    assert len(body["next_fire_times"]) == 5


def test_fewer_times_come_when_the_expression_stops_firing(api):
    body = api.post(URL, {"cron": "0 0 0 1 1 ? 2027-2028", "timezone": "UTC", "after": "2026-06-01T00:00:00Z",
                          "count": 10}, format="json").json()
    assert body["next_fire_times"] == ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]


@pytest.mark.parametrize("cron, reason", [
    ("0 0 0 13 * FRI", "?"),
    ("not a cron", "cron"),
    ("0 0 0 30 2 ?", "Never fires"),
])
def test_an_invalid_expression_is_400_invalid_cron_with_the_reason(api, cron, reason):
    response = api.post(URL, {"cron": cron}, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_CRON"
    assert reason in response.json()["detail"]


@pytest.mark.parametrize("body, field", [
    ({"cron": "* * * * *", "count": 0}, "count"),
    ({"cron": "* * * * *", "count": 101}, "count"),
    ({"cron": "* * * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ({"cron": "* * * * *", "after": "yesterday"}, "after"),
    ({}, "cron"),
])
def test_bad_input_is_400_naming_the_field(api, body, field):
    response = api.post(URL, body, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == [field]
