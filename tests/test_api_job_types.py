"""/api/v1/job-types (SPEC §3, §5.2): the fields of §3, client_secret write-only (stored
encrypted, never returned), and the system check against an external system mocked by `responses`."""

from __future__ import annotations

import json

import pytest
import responses
from rest_framework.test import APIClient

from apps.catalog.models import JobType
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

BASE = "https://ext.example.com/pom"
TOKEN_URL = "https://auth.example.com/oauth/token"
SECRET = "s3cr3t-Value-Never-Shown"
FIELDS = {"name": "MOCKTYPE", "description": "POM mock", "url": BASE, "start_path": "/start",
          "status_path": "/status", "restart_path": "/restart", "kill_path": "/kill", "log_path": "/log",
          "check_path": "/health", "scope": "batch", "poll_interval_seconds": 7, "request_timeout_seconds": 11,
          "token_url": TOKEN_URL, "client_id": "batchdesk"}


@pytest.fixture
def api(administrator) -> APIClient:
    return token_client(administrator)


@pytest.fixture
def job_type(api) -> JobType:
    assert api.post("/api/v1/job-types", {**FIELDS, "client_secret": SECRET}, format="json").status_code == 201
    return JobType.objects.get(name="MOCKTYPE")


@pytest.fixture
def external():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600})
        yield mock


def test_it_creates_a_job_type_with_the_fields_of_section_3(api):
    response = api.post("/api/v1/job-types", {**FIELDS, "client_secret": SECRET}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert {key: body[key] for key in FIELDS} == FIELDS
    assert body["has_client_secret"] is True
    assert (body["last_check_at"], body["last_check_up"], body["last_check_error"]) == (None, None, "")


def test_it_sends_no_location_header_from_the_url_field(api):
    """DRF's create would send the body's "url" (the external system's) as Location."""
    response = api.post("/api/v1/job-types", {**FIELDS, "url": "https://ext.example.com/a\nb"}, format="json")
    assert response.status_code in (201, 400)  # a newline in a URL: accepted or refused, never a 500
    assert "Location" not in response


def test_it_defaults_what_section_3_defaults(api):
    body = api.post("/api/v1/job-types", {"name": "MINI", "start_path": "/s", "status_path": "/t"},
                    format="json").json()
    assert (body["poll_interval_seconds"], body["request_timeout_seconds"]) == (5, 30)
    assert (body["url"], body["kill_path"], body["token_url"], body["has_client_secret"]) == ("", "", "", False)


class TestTheClientSecret:
    def test_it_stores_it_encrypted(self, job_type):
        assert job_type.client_secret_encrypted
        assert SECRET not in job_type.client_secret_encrypted
        assert job_type.endpoint().credentials.client_secret == SECRET

    def test_it_never_returns_it(self, api, job_type):
        answers = [
            api.get("/api/v1/job-types"),
            api.get("/api/v1/job-types/MOCKTYPE"),
            api.patch("/api/v1/job-types/MOCKTYPE", {"description": "x"}, format="json"),
            api.put("/api/v1/job-types/MOCKTYPE", {**FIELDS, "client_secret": SECRET}, format="json"),
            api.get("/api/schema/"),
        ]
        for response in answers:
            assert response.status_code == 200
            assert SECRET not in response.content.decode()
            assert job_type.client_secret_encrypted not in response.content.decode()
        assert "client_secret" not in answers[1].json()

    def test_it_keeps_it_when_an_update_leaves_it_out(self, api, job_type):
        api.patch("/api/v1/job-types/MOCKTYPE", {"scope": "other"}, format="json")
        job_type.refresh_from_db()
        assert job_type.endpoint().credentials.client_secret == SECRET

    def test_it_replaces_it_and_clears_it_with_an_empty_string(self, api, job_type):
        api.patch("/api/v1/job-types/MOCKTYPE", {"client_secret": "new-one"}, format="json")
        job_type.refresh_from_db()
        assert job_type.endpoint().credentials.client_secret == "new-one"
        body = api.patch("/api/v1/job-types/MOCKTYPE", {"client_secret": ""}, format="json").json()
        assert body["has_client_secret"] is False

    def test_it_is_documented_write_only(self, api):
        schema = api.get("/api/schema/?format=json").json()["components"]["schemas"]
        assert "client_secret" in schema["JobTypeRequest"]["properties"]
        assert "client_secret" not in schema["JobType"]["properties"]


def test_it_gets_updates_and_deletes_a_job_type(api, job_type):
    assert api.get("/api/v1/job-types/MOCKTYPE").json()["poll_interval_seconds"] == 7
    assert api.patch("/api/v1/job-types/MOCKTYPE", {"poll_interval_seconds": 2}, format="json").json()[
        "poll_interval_seconds"] == 2
    replaced = api.put("/api/v1/job-types/MOCKTYPE", {"name": "MOCKTYPE", "start_path": "/go",
                                                      "status_path": "/how"}, format="json")
    assert replaced.status_code == 200
    assert (replaced.json()["start_path"], replaced.json()["status_path"]) == ("/go", "/how")
    assert api.delete("/api/v1/job-types/MOCKTYPE").status_code == 204
    assert api.get("/api/v1/job-types/MOCKTYPE").status_code == 404


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "EXEC", "start_path": "/s", "status_path": "/t"}, "name"),  # built-in
    ({"name": "Exec", "start_path": "/s", "status_path": "/t"}, "name"),  # built-in, in another case
    ({"name": "MOCKTYPE", "start_path": "/s", "status_path": "/t"}, "name"),  # taken
    ({"name": "NEW", "status_path": "/t"}, "start_path"),
    ({"name": "NEW", "start_path": "/s"}, "status_path"),
    ({"name": "NEW", "start_path": "/s", "status_path": "/t", "poll_interval_seconds": 0}, "poll_interval_seconds"),
    ({"name": "NEW", "start_path": "/s", "status_path": "/t", "request_timeout_seconds": "soon"},
     "request_timeout_seconds"),
    ({"name": "NEW", "start_path": "/s\x00", "status_path": "/t"}, "start_path"),
])
def test_it_refuses_an_invalid_job_type(api, job_type, body, field):
    response = api.post("/api/v1/job-types", body, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]


class TestTheSystemCheck:
    def test_it_is_up_when_the_check_answers_204(self, api, job_type, external):
        external.get(f"{BASE}/health", status=204)
        response = api.post("/api/v1/job-types/MOCKTYPE/check")
        assert response.status_code == 200
        body = response.json()
        assert (body["up"], body["status_code"], body["error"]) == (True, 204, "")
        assert body["checked_at"]
        check = [call for call in external.calls if call.request.url.endswith("/health")][0]
        assert check.request.headers["Authorization"] == "Bearer tok-1"
        job_type.refresh_from_db()
        assert job_type.last_check_up is True
        assert api.get("/api/v1/job-types/MOCKTYPE").json()["last_check_up"] is True

    def test_it_is_down_when_the_check_fails(self, api, job_type, external):
        external.get(f"{BASE}/health", status=503, body="maintenance")
        body = api.post("/api/v1/job-types/MOCKTYPE/check").json()
        assert (body["up"], body["status_code"]) == (False, 503)
        assert "503" in body["error"]
        health = api.get("/api/v1/health").json()
        assert health["status"] == "degraded"
        assert [(t["name"], t["up"]) for t in health["job_types"]] == [("MOCKTYPE", False)]

    def test_it_is_down_when_nothing_answers(self, api, job_type, external):
        body = api.post("/api/v1/job-types/MOCKTYPE/check").json()  # `responses` refuses the unregistered call
        assert (body["up"], body["status_code"]) == (False, None)
        assert body["error"]

    def test_it_is_down_without_a_check_path(self, api, job_type, external):
        api.patch("/api/v1/job-types/MOCKTYPE", {"check_path": ""}, format="json")
        body = api.post("/api/v1/job-types/MOCKTYPE/check").json()
        assert body["up"] is False
        assert "No system check path" in body["error"]
        assert not [call for call in external.calls if "/health" in call.request.url]

    def test_it_never_shows_the_secret_in_a_failure(self, api, job_type, external):
        external.replace(responses.POST, TOKEN_URL, status=401, json={"error": "invalid_client"})
        body = api.post("/api/v1/job-types/MOCKTYPE/check").json()
        assert body["up"] is False
        assert body["error"]
        assert SECRET not in json.dumps(body)
