"""The dispatcher runs each custom job type's system check every BATCHDESK_SYSTEM_CHECK_SECONDS
(one step of its tick) and the health page and /api/v1/health show the answer."""

from __future__ import annotations

from datetime import timedelta

import pytest
import responses
from django.core.management import call_command
from django.utils import timezone

from apps.catalog.models import JobType
from apps.engine import system_checks
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

EXTERNAL = "https://ext.example.com"
TOKEN_URL = "https://auth.example.com/token"


@pytest.fixture
def job_types(db):
    checked = JobType.objects.create(name="EXT", url=EXTERNAL, start_path="/s", status_path="/t", check_path="/health",
                                     token_url=TOKEN_URL, client_id="c")
    unchecked = JobType.objects.create(name="NOCHECK", url=EXTERNAL, start_path="/s", status_path="/t")
    return checked, unchecked


@pytest.fixture
def external():
    with responses.RequestsMock() as mock:
        mock.post(TOKEN_URL, json={"access_token": "t", "expires_in": 600})
        mock.get(f"{EXTERNAL}/health", status=204)
        yield mock


def test_it_checks_each_type_with_a_check_path_once_a_period(job_types, external, sync_queue, settings):
    settings.BATCHDESK = {**settings.BATCHDESK, "SYSTEM_CHECK_SECONDS": 60}
    assert system_checks.run_due() == 1
    checked = JobType.objects.get(name="EXT")
    assert checked.last_check_up is True and checked.last_check_at is not None
    assert JobType.objects.get(name="NOCHECK").last_check_at is None
    assert system_checks.run_due() == 0  # not due again within the period
    assert system_checks.run_due(now=timezone.now() + timedelta(seconds=61)) == 1


def test_two_dispatchers_hand_out_one_check(job_types, settings, monkeypatch):
    handed = []
    monkeypatch.setattr(system_checks, "async_task", lambda *args, **kwargs: handed.append(args[1]))
    now = timezone.now()
    system_checks.run_due(now)
    system_checks.run_due(now)
    assert handed == [job_types[0].pk]


def test_zero_turns_the_periodic_checks_off(job_types, settings):
    settings.BATCHDESK = {**settings.BATCHDESK, "SYSTEM_CHECK_SECONDS": 0}
    assert system_checks.run_due() == 0


@pytest.mark.django_db(transaction=True)  # the dispatcher's tick manages its own connection
def test_the_dispatcher_tick_runs_them_and_the_health_page_and_api_show_them(
        job_types, external, sync_queue, administrator, client):
    call_command("run_dispatcher", "--once")  # one tick of the dispatcher, as it runs
    client.force_login(administrator)
    page = client.get("/admin/health/").content.decode()
    assert "never checked" in page  # NOCHECK has no check path
    assert '<span style="color:#2e7d32">up</span>' in page
    health = token_client(administrator).get("/api/v1/health").json()
    assert [(t["name"], t["up"]) for t in health["job_types"]] == [("EXT", True), ("NOCHECK", None)]
    assert health["job_types"][0]["checked_at"]

