"""Authentication (SPEC §5): a DRF token or the admin session; 401 without credentials, 403 with
credentials but not the role, in the envelope on the background-tasks endpoints."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.engine.models import Execution
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


def session_client(user: User, *, csrf: bool) -> APIClient:
    """A client logged in through the admin's login form, checking CSRF as a browser session would."""
    client = APIClient(enforce_csrf_checks=True)
    client.get("/admin/login/")  # sets the csrftoken cookie
    response = client.post("/admin/login/", {"username": user.username, "password": f"pw-{user.username}-123",
                                             "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert response.status_code == 302, "the login did not go through"
    if csrf:
        client.credentials(HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    return client


@pytest.fixture
def nobody(db) -> User:
    """Logged in, staff even, but in no batch role."""
    return User.objects.create_user("nia", password="pw-nia-123", is_staff=True)


def test_it_accepts_a_drf_token(administrator, make_job):
    make_job("extract")
    response = token_client(administrator).get("/api/v1/jobs")
    assert response.status_code == 200
    assert [job["name"] for job in response.json()["results"]] == ["extract"]


def test_it_accepts_a_token_made_by_drf_create_token(administrator, make_job):
    from django.core.management import call_command

    call_command("drf_create_token", administrator.username)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get(user=administrator).key}")
    assert client.post("/api/v1/backgroundtasks/trigger/" + make_job("extract").name).status_code == 200


def test_it_answers_401_to_a_wrong_token(make_job):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-key")
    response = client.get("/api/v1/jobs")
    assert response.status_code == 401
    assert response.json()["error"] == "UNAUTHORIZED"


def test_it_answers_401_with_a_challenge_to_no_credentials(client):
    response = client.get("/api/v1/jobs")
    assert response.status_code == 401
    assert response.json() == {"error": "UNAUTHORIZED", "detail": "Authentication credentials were not provided."}
    assert response["WWW-Authenticate"].startswith("Token")


def test_it_reads_with_an_admin_session(administrator, make_job):
    make_job("extract")
    response = session_client(administrator, csrf=False).get("/api/v1/jobs/extract")
    assert response.status_code == 200
    assert response.json()["name"] == "extract"


def test_it_writes_with_an_admin_session_and_its_csrf_token(administrator, make_job):
    job = make_job("extract")
    response = session_client(administrator, csrf=True).post(f"/api/v1/jobs/{job.name}/executions", {}, format="json")
    assert response.status_code == 201
    assert Execution.objects.filter(job=job).count() == 1


@pytest.mark.parametrize("path", ["/api/v1/jobs/extract/executions", "/api/v1/backgroundtasks/trigger/extract"])
def test_it_refuses_a_session_post_without_the_csrf_token(administrator, make_job, path):
    job = make_job("extract")
    response = session_client(administrator, csrf=False).post(path, {}, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.content.decode()
    assert not Execution.objects.filter(job=job).exists()


def test_it_needs_no_csrf_token_with_a_drf_token(administrator, make_job):
    client = token_client(administrator)
    client.handler.enforce_csrf_checks = True
    assert client.post("/api/v1/jobs/" + make_job("extract").name + "/executions", {}, format="json").status_code == 201


@pytest.mark.parametrize("how", ["token", "session"])
def test_it_answers_403_to_a_user_without_a_batch_role(nobody, make_job, how):
    make_job("extract")
    client = token_client(nobody) if how == "token" else session_client(nobody, csrf=True)
    response = client.get("/api/v1/jobs")
    assert response.status_code == 403
    assert response.json()["error"] == "FORBIDDEN"


def test_it_treats_a_superuser_as_an_administrator(make_job):
    root = User.objects.create_superuser("root", password="pw-root-123")
    assert token_client(root).post("/api/v1/backgroundtasks/trigger/" + make_job("extract").name).status_code == 200


def test_it_refuses_an_inactive_administrator(administrator):
    client = token_client(administrator)
    User.objects.filter(pk=administrator.pk).update(is_active=False)
    assert client.get("/api/v1/jobs").status_code == 401  # DRF: "User inactive or deleted."


class TestTheEnvelopeOfAuthErrors:
    """§5.1: 401 and 403 of the background-tasks endpoints come in the Sunbird envelope."""

    def test_it_answers_401_in_the_envelope(self, client):
        response = client.get("/api/v1/backgroundtasks")
        assert response.status_code == 401
        body = response.json()
        assert body["params"]["status"] == "failure"
        assert (body["params"]["err"], body["responseCode"]) == ("UNAUTHORIZED", "UNAUTHORIZED")
        assert body["id"] == "api.backgroundtasks.read"

    def test_it_answers_403_in_the_envelope_to_a_viewer_who_triggers(self, viewer, make_job):
        response = token_client(viewer).post("/api/v1/backgroundtasks/trigger/" + make_job("extract").name)
        assert response.status_code == 403
        body = response.json()
        assert (body["params"]["err"], body["responseCode"], body["params"]["status"]) == (
            "FORBIDDEN", "FORBIDDEN", "failure")
        assert body["id"] == "api.backgroundtasks.trigger"
        assert not Execution.objects.exists()

    def test_it_answers_403_in_the_envelope_to_a_user_without_a_role(self, nobody):
        response = token_client(nobody).get("/api/v1/backgroundtasks")
        assert response.status_code == 403
        assert response.json()["params"]["err"] == "FORBIDDEN"

    def test_it_answers_401_in_the_envelope_to_an_anonymous_trigger(self, client, make_job):
        response = client.post("/api/v1/backgroundtasks/trigger/" + make_job("extract").name)
        assert response.status_code == 401
        assert response.json()["params"]["err"] == "UNAUTHORIZED"
        assert not Execution.objects.exists()
