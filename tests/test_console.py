"""The console pages: Batch Monitoring and the Health Check."""

from __future__ import annotations

from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from apps.catalog.models import JobType
from apps.engine.models import Execution, Status


@pytest.fixture
def history(make_job):
    job = make_job("nightly_load")
    now = timezone.now()
    Execution.objects.create(job=job, application=job.application, status=Status.COMPLETED,
                             started_at=now - timedelta(minutes=10), finished_at=now - timedelta(minutes=9))
    Execution.objects.create(job=job, application=job.application, status=Status.ERROR, error="exit code 3",
                             started_at=now - timedelta(minutes=8), finished_at=now - timedelta(minutes=7))
    return Execution.objects.create(job=job, application=job.application, status=Status.RUNNING,
                                    started_at=now - timedelta(minutes=1))


def test_monitoring_shows_counts_running_failures_and_the_timeline(client, viewer, history):
    client.force_login(viewer)
    page = client.get("/admin/monitoring/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Running now (1)" in text
    assert "exit code 3" in text
    assert text.count('class="bd-bar') == 3
    assert [n for status, n in page.context["counts"] if status == Status.ERROR] == [1]


def test_console_pages_need_a_login(client, db):
    for url in ["/admin/monitoring/", "/admin/health/"]:
        assert client.get(url).status_code == 302


def test_a_staff_user_without_a_batch_role_is_refused(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("nobody", password="x", is_staff=True))
    assert client.get("/admin/monitoring/").status_code == 403
    assert client.get("/admin/health/").status_code == 403


def test_health_page_reports_components_and_runs_the_checks_for_administrators(client, administrator):
    JobType.objects.create(name="EXT", url="https://ext.example.com", start_path="/s", status_path="/t",
                           check_path="/health", token_url="https://auth.example.com/token", client_id="c")
    client.force_login(administrator)
    page = client.get("/admin/health/")
    assert page.status_code == 200
    assert "never checked" in page.content.decode()
    with responses.RequestsMock() as mock:
        mock.post("https://auth.example.com/token", json={"access_token": "t", "expires_in": 60})
        mock.get("https://ext.example.com/health", status=503)
        client.post("/admin/health/check/")
    assert JobType.objects.get(name="EXT").last_check_up is False
    assert "DEGRADED" in client.get("/admin/health/").content.decode()


def test_viewers_cannot_run_the_checks(client, viewer):
    client.force_login(viewer)
    client.post("/admin/health/check/")
    assert not JobType.objects.filter(last_check_at__isnull=False).exists()
