"""/api/v1/schedules (SPEC §4, §5.2): get, update, delete, pause and resume, next_fire_times."""

from __future__ import annotations

from datetime import datetime

import pytest
import time_machine
from rest_framework.test import APIClient

from apps.scheduling.models import Schedule
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

NOW = datetime.fromisoformat("2026-03-02T10:00:00+00:00")


@pytest.fixture
def api(administrator) -> APIClient:
    return token_client(administrator)


@pytest.fixture
def schedule(make_job) -> Schedule:
    with time_machine.travel(NOW, tick=False):
        return Schedule.objects.create(job=make_job("extract"), kind="cron", cron="0 2 * * *")


@time_machine.travel(NOW, tick=False)
def test_it_shows_a_schedule_with_its_next_five_fire_times(api, schedule):
    body = api.get(f"/api/v1/schedules/{schedule.pk}").json()
    assert (body["id"], body["job"], body["kind"], body["cron"], body["timezone"]) == (
        schedule.pk, "extract", "cron", "0 2 * * *", "UTC")
    assert body["next_fire_at"] == "2026-03-03T02:00:00Z"
    assert body["next_fire_times"] == [f"2026-03-0{day}T02:00:00+00:00" for day in range(3, 8)]
    assert (body["last_fired_at"], body["fire_count"], body["active"], body["inactive_reason"]) == (None, 0, True, "")


def test_it_lists_every_schedule(api, schedule, make_job):
    other = Schedule.objects.create(job=make_job("load"), kind="interval", interval_seconds=300)
    body = api.get("/api/v1/schedules").json()
    assert [(s["id"], s["job"]) for s in body["results"]] == [(schedule.pk, "extract"), (other.pk, "load")]


@time_machine.travel(NOW, tick=False)
def test_it_updates_and_reschedules(api, schedule):
    body = api.patch(f"/api/v1/schedules/{schedule.pk}", {"cron": "30 11 * * *", "timezone": "Asia/Kolkata"},
                     format="json").json()
    assert body["next_fire_at"] == "2026-03-03T06:00:00Z"  # 11:30 in Kolkata
    replaced = api.put(f"/api/v1/schedules/{schedule.pk}", {"job": "extract", "kind": "interval",
                                                           "interval_seconds": 600}, format="json")
    assert replaced.status_code == 200
    assert replaced.json()["next_fire_times"][:2] == ["2026-03-02T10:00:00+00:00", "2026-03-02T10:10:00+00:00"]


def test_it_refuses_an_invalid_update_and_keeps_the_schedule(api, schedule):
    response = api.patch(f"/api/v1/schedules/{schedule.pk}", {"cron": "every day"}, format="json")
    assert (response.status_code, list(response.json()["fields"])) == (400, ["cron"])
    schedule.refresh_from_db()
    assert schedule.cron == "0 2 * * *"


def test_it_moves_a_schedule_to_another_job_by_name(api, schedule, make_job):
    make_job("load")
    assert api.patch(f"/api/v1/schedules/{schedule.pk}", {"job": "load"}, format="json").json()["job"] == "load"


def test_it_deletes_a_schedule(api, schedule):
    assert api.delete(f"/api/v1/schedules/{schedule.pk}").status_code == 204
    assert not Schedule.objects.exists()
    assert api.get(f"/api/v1/schedules/{schedule.pk}").json()["error"] == "NOT_FOUND"


@time_machine.travel(NOW, tick=False)
def test_it_pauses_and_resumes(api, schedule):
    paused = api.post(f"/api/v1/schedules/{schedule.pk}/pause").json()
    assert (paused["active"], paused["next_fire_at"], paused["next_fire_times"]) == (False, None, [])
    assert paused["inactive_reason"] == "paused by ada"
    schedule.refresh_from_db()
    assert schedule.active is False  # persisted: it stays paused across restarts
    resumed = api.post(f"/api/v1/schedules/{schedule.pk}/resume").json()
    assert (resumed["active"], resumed["next_fire_at"], resumed["inactive_reason"]) == (
        True, "2026-03-03T02:00:00Z", "")


@pytest.mark.parametrize("path", ["/api/v1/schedules/99999", "/api/v1/schedules/x", "/api/v1/schedules/99999/pause",
                                  "/api/v1/schedules/99999999999999999999999999"])
def test_it_answers_404_for_an_unknown_schedule(api, path):
    response = api.post(path) if path.endswith("pause") else api.get(path)
    assert response.status_code == 404
