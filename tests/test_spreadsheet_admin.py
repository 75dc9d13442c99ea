"""The spreadsheet pages of the console: upload → streamed dry run → confirm, the download, and
who may do what (an administrator applies; a viewer checks and downloads; others are refused)."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from apps.catalog.models import Application, JobDefinition
from apps.spreadsheet import exporter, views
from tests.spreadsheets import Sheets, Writes, cells_of

pytestmark = pytest.mark.django_db

UPLOAD = reverse("admin:spreadsheet_upload")
EXPORT = reverse("admin:spreadsheet_export")


@pytest.fixture(autouse=True)
def uploads_in_tmp(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


def xlsx(data: bytes, name: str = "schedule.xlsx") -> io.BytesIO:
    upload = io.BytesIO(data)
    upload.name = name
    return upload


def dry_run(client, data: bytes) -> tuple[str, str]:
    """Upload, follow to the dry run, read the streamed page; (its HTML, its URL)."""
    response = client.post(UPLOAD, {"workbook": xlsx(data)})
    assert response.status_code == 302
    preview = response["Location"]
    page = client.get(preview)
    assert page.status_code == 200 and page.streaming
    return b"".join(page.streaming_content).decode(), preview


def fingerprint_in(html: str) -> str:
    return re.search(r'name="fingerprint" value="([0-9a-f]{64})"', html).group(1)


def test_it_links_the_page_from_the_admin_index(admin_client_logged):
    html = admin_client_logged.get(reverse("admin:index")).content.decode()
    assert f'<a href="{UPLOAD}">Batch schedule spreadsheet</a>' in html


def test_it_uploads_shows_the_dry_run_and_applies_on_confirmation(admin_client_logged):
    with Writes() as writes:
        html, preview = dry_run(admin_client_logged, Sheets.base().xlsx())
    assert writes.statements == [s for s in writes.statements if "django_session" in s]  # only the session
    assert "bdProgress(" in html  # the progress events streamed before the result
    assert "Checked 14 rows" in html and "14 create" in html
    assert re.search(r"<td>Jobs</td><td class=\"action-create\">4</td>", html)
    assert "Confirm: apply 14 changes" in html
    assert not Application.objects.exists()

    response = admin_client_logged.post(preview + "apply/", {"fingerprint": fingerprint_in(html)}, follow=True)
    assert response.redirect_chain[-1][0] == UPLOAD
    assert [str(m) for m in response.context["messages"]] == [
        "Applied schedule.xlsx: 14 row(s) written (Applications: 1 create; Job Types: 1 create; Jobs: 4 create; "
        "Flows: 1 create; Processes: 3 create; Dependencies: 2 create; Schedules: 2 create)."]
    assert JobDefinition.objects.count() == 4
    assert not any(views.upload_dir().iterdir())  # the kept file is gone once applied


def test_it_lists_problems_and_offers_no_confirmation(admin_client_logged):
    html, _ = dry_run(admin_client_logged, Sheets.base().set("Jobs", 2, "Retries", "many").xlsx())
    assert "Errors (1): nothing will be written until every one is fixed" in html
    assert "Sheet &quot;Jobs&quot;, row 2, column &quot;Retries&quot;, value &quot;many&quot;: Expected a whole " \
           "number." in html
    assert "Confirm" not in html


def test_it_shows_why_a_file_is_refused(admin_client_logged):
    html, _ = dry_run(admin_client_logged, b"not a workbook at all")
    assert "The workbook is refused: The file is not an .xlsx workbook" in html


def test_it_refuses_an_oversized_upload_at_once(admin_client_logged, settings):
    settings.SPREADSHEET_MAX_BYTES = 100
    response = admin_client_logged.post(UPLOAD, {"workbook": xlsx(Sheets.base().xlsx())})
    assert response.status_code == 400
    assert "over the limit of 100 bytes (SPREADSHEET_MAX_BYTES)" in response.content.decode()


def test_it_applies_nothing_when_the_configuration_changed_since_the_dry_run(admin_client_logged):
    html, preview = dry_run(admin_client_logged, Sheets.base().xlsx())
    Application.objects.create(name="RMS", description="made meanwhile")
    response = admin_client_logged.post(preview + "apply/", {"fingerprint": fingerprint_in(html)}, follow=True)
    assert response.redirect_chain[-1][0] == preview
    assert "changed since the dry run" in str(list(response.context["messages"])[0])
    assert not JobDefinition.objects.exists()


def test_it_refuses_a_confirmation_with_a_forged_file(admin_client_logged):
    html, preview = dry_run(admin_client_logged, Sheets.base().xlsx())
    token = preview.rstrip("/").split("/")[-1]
    (views.upload_dir() / f"{token}.xlsx").write_bytes(Sheets.base().set("Jobs", 2, "Retries", 9).xlsx())
    response = admin_client_logged.post(preview + "apply/", {"fingerprint": fingerprint_in(html)})
    assert response.status_code == 404
    assert not JobDefinition.objects.exists()


def test_it_lets_a_viewer_check_but_not_apply(viewer_client):
    html, preview = dry_run(viewer_client, Sheets.base().xlsx())
    assert "Your role may check workbooks but not apply them." in html
    assert "Confirm" not in html
    response = viewer_client.post(preview + "apply/", {"fingerprint": "0" * 64})
    assert response.status_code == 403
    assert not Application.objects.exists()


def test_it_refuses_staff_without_a_batch_role(client):
    client.force_login(User.objects.create_user("sam", is_staff=True))
    assert client.get(UPLOAD).status_code == 403
    assert client.get(EXPORT).status_code == 403


def test_it_sends_anonymous_visitors_to_the_login(client):
    response = client.get(UPLOAD)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_it_downloads_the_configuration(viewer_client, make_job):
    make_job("nightly_extract", command="echo hi")
    response = viewer_client.get(EXPORT)
    assert response["Content-Type"] == exporter.CONTENT_TYPE
    assert re.match(r'attachment; filename="batch_schedule_\d{8}-\d{6}\.xlsx"', response["Content-Disposition"])
    assert cells_of(response.content)["Jobs"][1][5] == "nightly_extract"


def test_it_forgets_an_unknown_upload(admin_client_logged):
    assert admin_client_logged.get(reverse("admin:spreadsheet_preview", args=["nope"])).status_code == 404
