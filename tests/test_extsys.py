"""The reference external system (apps/extsys): the SPEC §3 contract, as the engine sees it."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone

import pytest
from django.test import Client

from apps.extsys.models import AccessToken, ExternalExecution

CURRENT_TIME = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
pytestmark = pytest.mark.django_db

JOB = {
    "cycleName": "Adhoc", "flowName": "Adhoc", "processName": "nightly", "jobName": "load_sales",
    "agentExecutionId": "a1",
}


def basic(client_id: str = "batchdesk-demo", secret: str = "demo-secret") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def fetch_token(client: Client, **form: str) -> dict:
    form = {"grant_type": "client_credentials", "scope": "jobs", **form}
    response = client.post("/extsys/oauth/token", form, headers=basic())
    assert response.status_code == 200, response.content
    return response.json()


class Api:
    """The test client with a bearer token: the calls the engine makes."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {fetch_token(client)['access_token']}"}

    def post(self, call: str, body: dict | str):
        data = body if isinstance(body, str) else json.dumps(body)
        return self.client.post(f"/extsys/jobs/{call}", data, content_type="application/json", headers=self.headers)

    def get(self, call: str, execution_id: str, job: dict = JOB):
        query = {"processName": job["processName"], "jobName": job["jobName"], "executionId": execution_id}
        return self.client.get(f"/extsys/jobs/{call}", query, headers=self.headers)

    def start(self, parameters: str = "") -> str:
        response = self.post("start", {**JOB, "parameters": parameters})
        assert response.status_code == 200, response.content
        return response.json()["executionId"]

    def status(self, execution_id: str) -> dict:
        response = self.get("status", execution_id)
        assert response.status_code == 200, response.content
        return response.json()

    def log(self, execution_id: str) -> str:
        response = self.get("log", execution_id)
        assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
        return response.content.decode()

    def kill(self, execution_id: str):
        lookup = {"processName": JOB["processName"], "jobName": JOB["jobName"], "executionId": execution_id}
        return self.post("kill", lookup)


@pytest.fixture
def clock(time_machine):
    time_machine.move_to(CURRENT_TIME, tick=False)
    return time_machine


@pytest.fixture
def api(client, db, clock) -> Api:
    return Api(client)


# --- tokens ------------------------------------------------------------------------------


def test_it_issues_a_token_to_basic_credentials(client):
    body = fetch_token(client)
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["scope"] == "jobs"
    assert AccessToken.objects.is_valid(body["access_token"])
    # Only its digest is stored.
    assert not AccessToken.objects.filter(token=body["access_token"]).exists()


def test_it_issues_a_token_to_form_credentials(client):
    form = {"grant_type": "client_credentials", "client_id": "batchdesk-demo", "client_secret": "demo-secret"}
    response = client.post("/extsys/oauth/token", form)
    assert response.status_code == 200
    assert response.json()["scope"] == ""
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("headers, form", [
    (basic(secret="wrong"), {}),
    (basic(client_id="someone"), {}),
    ({"Authorization": "Basic not-base64!"}, {}),
    ({}, {"client_id": "batchdesk-demo", "client_secret": "wrong"}),
    ({}, {}),
])
def test_it_refuses_wrong_client_credentials(client, headers, form):
    response = client.post("/extsys/oauth/token", {"grant_type": "client_credentials", **form}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_client"}
    assert not AccessToken.objects.exists()


def test_it_refuses_other_grant_types(client):
    response = client.post("/extsys/oauth/token", {"grant_type": "password"}, headers=basic())
    assert response.status_code == 400
    assert response.json() == {"error": "unsupported_grant_type"}


def test_it_refuses_a_token_after_it_expires(client, clock, settings):
    settings.EXTSYS_TOKEN_TTL = 5
    body = fetch_token(client)
    assert body["expires_in"] == 5
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    query = {"processName": "p", "jobName": "j", "executionId": "nope"}
    assert client.get("/extsys/jobs/status", query, headers=headers).status_code == 404  # accepted
    clock.shift(5)
    assert client.get("/extsys/jobs/status", query, headers=headers).status_code == 401


def test_it_sweeps_expired_tokens_when_issuing(client, clock, settings):
    settings.EXTSYS_TOKEN_TTL = 5
    fetch_token(client)
    clock.shift(10)
    fetch_token(client)
    assert AccessToken.objects.count() == 1


@pytest.mark.parametrize("method, call", [
    ("post", "start"), ("get", "status"), ("post", "restart"), ("post", "kill"), ("get", "log"),
])
@pytest.mark.parametrize("authorization", [None, "Bearer unknown-token", "Basic YmF0Y2hkZXNrLWRlbW86ZGVtby1zZWNyZXQ="])
def test_it_refuses_job_calls_without_a_valid_token(client, method, call, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = getattr(client, method)(f"/extsys/jobs/{call}", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response["WWW-Authenticate"].startswith("Bearer")


# --- the job calls -----------------------------------------------------------------------


def test_it_runs_a_job_until_its_duration_is_up(api, clock):
    response = api.post("start", {**JOB, "parameters": "duration=2.5||other=kept"})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "RUNNING" and len(body["executionId"]) == 32
    execution = ExternalExecution.objects.get(execution_id=body["executionId"])
    assert (execution.job_name, execution.agent_execution_id, execution.duration) == ("load_sales", "a1", 2.5)
    clock.shift(2.4)
    assert api.status(body["executionId"])["status"] == "RUNNING"
    clock.shift(0.1)
    assert api.status(body["executionId"]) == {
        "executionId": body["executionId"], "status": "COMPLETED", "executionInfo": "finished COMPLETED",
    }


def test_it_ends_in_error_when_the_parameters_ask(api, clock):
    execution_id = api.start("outcome=ERROR")
    clock.shift(3)
    assert api.status(execution_id)["status"] == "ERROR"


def test_it_reports_the_status_value_asked_for_while_running(api, clock):
    execution_id = api.start("status_value=PENDING||duration=1")
    assert api.status(execution_id)["status"] == "PENDING"
    clock.shift(1)
    assert api.status(execution_id)["status"] == "COMPLETED"


def test_it_restarts_a_failed_execution_as_a_new_one(api, clock):
    failed = api.start("outcome=ERROR||duration=1")
    clock.shift(1)
    response = api.post("restart", {**JOB, "parameters": "outcome=ERROR||duration=1", "executionId": failed})
    assert response.status_code == 200
    restarted = response.json()["executionId"]
    assert restarted != failed and response.json()["status"] == "RUNNING"
    assert ExternalExecution.objects.get(execution_id=restarted).restart_of.execution_id == failed
    clock.shift(1)
    # restart_outcome, not outcome, decides how a restart ends.
    assert api.status(restarted)["status"] == "COMPLETED"


def test_it_restarts_with_the_restart_outcome(api, clock):
    failed = api.start("outcome=ERROR||duration=0")
    response = api.post("restart", {**JOB, "parameters": "restart_outcome=ERROR||duration=0", "executionId": failed})
    assert api.status(response.json()["executionId"])["status"] == "ERROR"


@pytest.mark.parametrize("parameters, wait", [("duration=1", 1), ("duration=1", 0)])
def test_it_refuses_to_restart_an_execution_that_did_not_fail(api, clock, parameters, wait):
    execution_id = api.start(parameters)
    clock.shift(wait)
    response = api.post("restart", {**JOB, "parameters": "", "executionId": execution_id})
    assert response.status_code == 409
    assert ExternalExecution.objects.count() == 1


def test_it_kills_a_running_execution(api, clock):
    execution_id = api.start("duration=10||lines=10")
    clock.shift(3)
    response = api.kill(execution_id)
    assert response.status_code == 200
    assert response.json() == {"executionId": execution_id, "status": "ERROR", "executionInfo": "killed"}
    clock.shift(20)
    # It stays killed, its log frozen at the kill.
    assert api.status(execution_id)["status"] == "ERROR"
    assert api.log(execution_id) == "line 1 of 10\nline 2 of 10\nline 3 of 10\nkilled\n"
    assert api.kill(execution_id).status_code == 409


def test_it_refuses_to_kill_a_finished_execution(api, clock):
    execution_id = api.start("duration=1")
    clock.shift(1)
    response = api.kill(execution_id)
    assert response.status_code == 409
    assert "COMPLETED" in response.json()["message"]


def test_it_writes_the_log_as_the_job_runs(api, clock):
    execution_id = api.start("duration=4||lines=4||outcome=ERROR")
    assert api.log(execution_id) == ""
    clock.shift(2)
    assert api.log(execution_id) == "line 1 of 4\nline 2 of 4\n"
    assert api.status(execution_id)["executionInfo"] == "running: 2 of 4 lines written"
    clock.shift(2)
    assert api.log(execution_id).splitlines() == [
        "line 1 of 4", "line 2 of 4", "line 3 of 4", "line 4 of 4", "finished ERROR",
    ]


def test_it_answers_start_with_the_start_status_asked_for(api):
    response = api.post("start", {**JOB, "parameters": "start_status=500"})
    assert response.status_code == 500
    assert "start_status" in response.json()["message"]
    assert not ExternalExecution.objects.exists()


@pytest.mark.parametrize("body, message", [
    ("{not json", "Malformed JSON"),
    ("[1, 2]", "JSON object"),
    (json.dumps({k: v for k, v in JOB.items() if k != "jobName"} | {"parameters": ""}), "Missing fields: jobName"),
    (json.dumps({**JOB, "parameters": "", "extra": "x"}), "Unexpected fields: extra"),
    (json.dumps({**JOB, "parameters": None}), "parameters"),
    (json.dumps({**JOB, "jobName": " ", "parameters": ""}), "jobName"),
    (json.dumps({**JOB, "parameters": "duration=soon"}), "duration"),
    (json.dumps({**JOB, "parameters": "outcome=MAYBE"}), "outcome"),
    (json.dumps({**JOB, "parameters": "lines=-1"}), "lines"),
    (json.dumps({**JOB, "parameters": "no-pair"}), "Malformed parameter pair"),
])
def test_it_refuses_a_bad_start_request(api, body, message):
    response = api.post("start", body)
    assert response.status_code == 400
    assert message in response.json()["message"]
    assert not ExternalExecution.objects.exists()


def test_it_refuses_a_status_request_without_its_query(api):
    response = api.client.get("/extsys/jobs/status", {"executionId": "x"}, headers=api.headers)
    assert response.status_code == 400
    assert "processName, jobName" in response.json()["message"]


def test_it_answers_404_for_an_unknown_execution(api):
    known = api.start()
    assert api.get("status", "0" * 32).status_code == 404
    assert api.get("log", "0" * 32).status_code == 404
    assert api.kill("0" * 32).status_code == 404
    assert api.post("restart", {**JOB, "parameters": "", "executionId": "0" * 32}).status_code == 404
    # An id is known only with its own job and process.
    assert api.get("status", known, job={**JOB, "jobName": "other"}).status_code == 404


def test_it_refuses_the_wrong_method(api):
    assert api.client.get("/extsys/jobs/start", headers=api.headers).status_code == 405
    assert api.client.get("/extsys/oauth/token").status_code == 405


def test_it_answers_the_system_check_with_204(client):
    response = client.get("/extsys/health")
    assert response.status_code == 204


# --- the client the engine uses ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_serves_requests_oauthlib(live_server, monkeypatch):
    """The engine's client (DESIGN.md) fetches a token and starts a job over real HTTP."""
    from oauthlib.oauth2 import BackendApplicationClient
    from requests.auth import HTTPBasicAuth
    from requests_oauthlib import OAuth2Session

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    # The scope goes on the oauthlib client: fetch_token sends that one, not the session's.
    session = OAuth2Session(client=BackendApplicationClient(client_id="batchdesk-demo", scope=["jobs"]))
    auth = HTTPBasicAuth("batchdesk-demo", "demo-secret")
    token = session.fetch_token(f"{live_server.url}/extsys/oauth/token", auth=auth, include_client_id=False)
    assert token["token_type"] == "Bearer" and token["scope"] == ["jobs"]
    body = {**JOB, "parameters": "duration=60"}
    response = session.post(f"{live_server.url}/extsys/jobs/start", json=body, timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "RUNNING"
