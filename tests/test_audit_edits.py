"""The audit trail of edits: through the admin (add, change, delete, bulk enable/disable), through
the API (create, update, delete) and workbook uploads (the page and load_schedule)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from apps.audit.models import AuditEntry
from apps.catalog.models import Application, JobType
from apps.spreadsheet import loader
from tests.conftest import token_client
from tests.spreadsheets import Sheets

pytestmark = pytest.mark.django_db


def trail() -> list[tuple[str, str, str]]:
    return list(AuditEntry.objects.order_by("id").values_list("actor", "action", "target"))


def test_admin_edits_are_audited(admin_client_logged):
    admin_client_logged.post(reverse("admin:catalog_application_add"), {"name": "RMS", "throttle_limit": 0,
                                                                       "enabled": "on"})
    app = Application.objects.get(name="RMS")
    admin_client_logged.post(reverse("admin:catalog_application_change", args=[app.pk]),
                             {"name": "RMS", "description": "Retail", "throttle_limit": 2, "enabled": "on"})
    admin_client_logged.post(reverse("admin:catalog_application_changelist"),
                             {"action": "disable", "_selected_action": [app.pk]})
    admin_client_logged.post(reverse("admin:catalog_application_delete", args=[app.pk]), {"post": "yes"})
    assert trail() == [("ada", "create", "RMS"), ("ada", "edit", "RMS"), ("ada", "disable", "RMS"),
                       ("ada", "delete", "RMS")]
    assert "Description" in AuditEntry.objects.get(action="edit").detail


def test_api_writes_are_audited_without_values(administrator):
    client = token_client(administrator)
    client.post("/api/v1/job-types", {"name": "EXT", "url": "https://ext.example.com", "start_path": "/s",
                                      "status_path": "/t", "client_secret": "hush-hush"}, format="json")
    client.patch("/api/v1/job-types/EXT", {"description": "external"}, format="json")
    client.delete("/api/v1/job-types/EXT")
    assert trail() == [("ada", "create", "EXT"), ("ada", "edit", "EXT"), ("ada", "delete", "EXT")]
    assert "client_secret" in AuditEntry.objects.get(action="create").detail
    assert not AuditEntry.objects.filter(detail__contains="hush-hush").exists()
    assert not JobType.objects.exists()


def test_a_refused_delete_leaves_no_entry(administrator, make_job):
    make_job("nightly")
    assert token_client(administrator).delete("/api/v1/apps/RMS").status_code == 409
    assert trail() == []


def test_a_workbook_applied_on_the_page_is_audited(admin_client_logged, settings, tmp_path):
    settings.VAR_DIR = tmp_path
    data = Sheets.base().xlsx()
    file = io.BytesIO(data)
    file.name = "nightly.xlsx"
    preview = admin_client_logged.post(reverse("admin:spreadsheet_upload"), {"workbook": file})["Location"]
    admin_client_logged.post(preview + "apply/", {"fingerprint": loader.dry_run(data).fingerprint()})
    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.action, entry.target_type, entry.target) == ("ada", "upload", "workbook", "nightly.xlsx")
    assert "row(s) written" in entry.detail


def test_load_schedule_is_audited_once_and_a_reload_that_changes_nothing_not_at_all(tmp_path):
    path = tmp_path / "schedule.xlsx"
    path.write_bytes(Sheets.base().xlsx())
    call_command("load_schedule", str(path), stdout=io.StringIO())
    call_command("load_schedule", str(path), stdout=io.StringIO())
    [(actor, action, target)] = trail()
    assert actor.startswith("cli:") and (action, target) == ("upload", "schedule.xlsx")
