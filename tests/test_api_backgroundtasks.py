"""The Sunbird background-tasks contract (SPEC §5.1): the envelope to the letter, the list read
from the database, the trigger and its error table."""

from __future__ import annotations

import re
import uuid

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.catalog.models import Concurrency
from apps.engine.models import Execution, Status, Trigger
from apps.scheduling.models import Schedule
from tests.conftest import race, token_client

LIST = "/api/v1/backgroundtasks"
TS = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}:\d{3}[+-]\d{4}$")


def trigger_path(name: str) -> str:
    return f"/api/v1/backgroundtasks/trigger/{name}"


@pytest.fixture
def api(administrator) -> APIClient:
    return token_client(administrator)


def assert_envelope(body: dict, api_id: str, *, err: str | None = None, response_code: str = "OK") -> None:
    """The keys and formats of §5.1, success or failure."""
    assert list(body) == ["id", "ver", "ts", "params", "responseCode", "result"]
    assert (body["id"], body["ver"], body["responseCode"]) == (api_id, "v1", response_code)
    assert TS.match(body["ts"]), body["ts"]
    params = body["params"]
    assert list(params) == ["resmsgid", "msgid", "err", "status", "errmsg"]
    assert str(uuid.UUID(params["resmsgid"])) == params["resmsgid"]
    assert params["err"] == err
    assert params["status"] == ("failure" if err else "success")
    assert (params["errmsg"] is None) == (err is None)


class TestTheList:
    @pytest.mark.django_db
    def test_it_lists_every_job_in_the_envelope(self, api, make_job):
        make_job("b_extract", description="Sales extract")
        make_job("a_load", description="Load", job_type="DUMMY", command="")
        body = api.get(LIST).json()
        assert_envelope(body, "api.backgroundtasks.read")
        assert [(t["taskGroup"], t["taskName"], t["description"]) for t in body["result"]["response"]] == [
            ("RMS", "a_load", "Load"), ("RMS", "b_extract", "Sales extract")]
        first = body["result"]["response"][0]
        assert (first["jobType"], first["enabled"], first["running"], first["nextRun"]) == ("DUMMY", True, False, None)

    @pytest.mark.django_db
    def test_it_reads_the_jobs_from_the_database_each_time(self, api, make_job):
        assert api.get(LIST).json()["result"]["response"] == []
        job = make_job("extract")
        assert [t["taskName"] for t in api.get(LIST).json()["result"]["response"]] == ["extract"]
        job.delete()
        assert api.get(LIST).json()["result"]["response"] == []

    @pytest.mark.django_db
    def test_it_shows_running_and_the_next_run(self, api, make_job):
        job = make_job("extract")
        Execution.objects.create(job=job, application=job.application, status=Status.RUNNING, started_at=timezone.now())
        schedule = Schedule.objects.create(job=job, kind="cron", cron="0 2 * * *")
        task = api.get(LIST).json()["result"]["response"][0]
        assert task["running"] is True
        assert task["nextRun"] == schedule.next_fire_at.isoformat()

    @pytest.mark.django_db
    def test_it_echoes_the_request_id_as_msgid(self, api):
        request_id = str(uuid.uuid4())
        params = api.get(LIST, HTTP_X_REQUEST_ID=request_id).json()["params"]
        assert params["msgid"] == request_id
        assert params["resmsgid"] != request_id

    @pytest.mark.django_db
    def test_it_makes_up_a_msgid_without_a_request_id(self, api):
        first, second = (api.get(LIST).json()["params"]["msgid"] for _ in range(2))
        assert uuid.UUID(first) and uuid.UUID(second) and first != second

    @pytest.mark.django_db
    def test_it_shows_the_installation_s_offset_in_ts(self, api, settings):
        settings.TIME_ZONE = "Asia/Kolkata"
        assert api.get(LIST).json()["ts"].endswith("+0530")

    @pytest.mark.django_db
    def test_it_lets_a_viewer_read_the_list(self, viewer, make_job):
        make_job("extract")
        response = token_client(viewer).get(LIST)
        assert response.status_code == 200
        assert response.json()["result"]["response"][0]["taskName"] == "extract"


@pytest.mark.django_db
class TestTheTrigger:
    def test_it_triggers_with_an_empty_body(self, api, make_job):
        job = make_job("extract", parameters="day=mon")
        response = api.post(trigger_path("extract"))
        assert response.status_code == 200
        body = response.json()
        assert_envelope(body, "api.backgroundtasks.trigger")
        execution = Execution.objects.get(job=job)
        assert body["result"] == {"response": "SUCCESS", "executionId": execution.pk}
        assert (execution.status, execution.trigger, execution.triggered_by) == (Status.LOADED, Trigger.API, "ada")
        assert execution.parameters == "day=mon"

    def test_it_overrides_parameters_key_by_key(self, api, make_job):
        job = make_job("extract", parameters="day=mon||store=12")
        response = api.post(trigger_path("extract"), {"parameters": "day=tue"}, format="json")
        assert response.status_code == 200
        assert Execution.objects.get(job=job).parameters == "day=tue||store=12"

    def test_it_echoes_the_request_id(self, api, make_job):
        make_job("extract")
        assert api.post(trigger_path("extract"), HTTP_X_REQUEST_ID="req-42").json()["params"]["msgid"] == "req-42"

    def test_it_refuses_a_running_forbid_job_with_job_already_running(self, api, make_job):
        job = make_job("extract", concurrency=Concurrency.FORBID)
        assert api.post(trigger_path("extract")).status_code == 200
        response = api.post(trigger_path("extract"))
        assert response.status_code == 400
        body = response.json()
        assert_envelope(body, "api.backgroundtasks.trigger", err="JOB_ALREADY_RUNNING", response_code="CLIENT_ERROR")
        assert body["params"]["errmsg"] == "Job currently in running state, please try after sometime"
        assert body["result"] == {}
        assert Execution.objects.filter(job=job).count() == 1

    def test_it_answers_task_not_found_for_an_unknown_job(self, api):
        response = api.post(trigger_path("no_such_job"))
        assert response.status_code == 404
        assert_envelope(response.json(), "api.backgroundtasks.trigger", err="TASK_NOT_FOUND",
                        response_code="RESOURCE_NOT_FOUND")

    @pytest.mark.parametrize("name", ["bad name", "x" * 101, "nul\x00", "%00", "semi;colon", "ü"])
    def test_it_answers_task_not_found_for_a_name_no_job_can_have(self, api, name):
        response = api.post(trigger_path(name))
        assert response.status_code == 404
        assert response.json()["params"]["err"] == "TASK_NOT_FOUND"

    def test_it_refuses_a_disabled_job(self, api, make_job):
        make_job("extract", enabled=False)
        response = api.post(trigger_path("extract"))
        assert response.status_code == 400
        assert_envelope(response.json(), "api.backgroundtasks.trigger", err="JOB_DISABLED",
                        response_code="CLIENT_ERROR")
        assert not Execution.objects.exists()

    @pytest.mark.parametrize("body", [
        {"parameters": "no-equals-sign"},
        {"parameters": "a=1||a=2"},
        {"parameters": 12},
        {"parameters": ["a=1"]},
        {"parameters": "a=\x00"},
        ["a=1"],
        "a=1",
        12,
    ])
    def test_it_refuses_invalid_parameters(self, api, make_job, body):
        make_job("extract")
        response = api.post(trigger_path("extract"), body, format="json")
        assert response.status_code == 400
        assert_envelope(response.json(), "api.backgroundtasks.trigger", err="INVALID_PARAMETERS",
                        response_code="CLIENT_ERROR")
        assert not Execution.objects.exists()

    @pytest.mark.parametrize(("content", "content_type"), [
        ("{not json", "application/json"),
        ('{"parameters": "a=1"', "application/json"),
        ("\xff\xfe", "application/json"),
        ("parameters=a%3D1", "application/x-www-form-urlencoded"),
        ("a=1", "text/plain"),
    ])
    def test_it_refuses_a_body_that_is_not_json(self, api, make_job, content, content_type):
        make_job("extract")
        response = api.generic("POST", trigger_path("extract"), content.encode("latin-1"), content_type)
        assert response.status_code == 400
        assert response.json()["params"]["err"] == "INVALID_PARAMETERS"
        assert not Execution.objects.exists()

    def test_it_accepts_null_parameters_as_none(self, api, make_job):
        make_job("extract")
        assert api.post(trigger_path("extract"), {"parameters": None}, format="json").status_code == 200

    @pytest.mark.parametrize("method", ["get", "put", "patch", "delete"])
    def test_it_answers_405_in_the_envelope_to_other_methods(self, api, make_job, method):
        make_job("extract")
        response = getattr(api, method)(trigger_path("extract"))
        assert response.status_code == 405
        assert_envelope(response.json(), "api.backgroundtasks.trigger", err="METHOD_NOT_ALLOWED",
                        response_code="CLIENT_ERROR")

    def test_it_answers_406_in_the_envelope_to_an_accept_it_cannot_serve(self, api):
        response = api.get(LIST, HTTP_ACCEPT="application/xml")
        assert response.status_code == 406
        assert response.json()["params"]["err"] == "NOT_ACCEPTABLE"


@pytest.mark.django_db(transaction=True)  # the threads' connections see what the test commits
def test_fifty_parallel_triggers_of_a_forbid_job_give_exactly_one_execution(administrator, make_job, handed_out):
    job = make_job("exclusive", concurrency=Concurrency.FORBID)
    clients = [token_client(administrator) for _ in range(50)]
    responses = race(50, lambda i: clients[i].post(trigger_path(job.name)))
    statuses = sorted(getattr(r, "status_code", r) for r in responses)
    assert statuses == [200] + [400] * 49, statuses
    refused = {r.json()["params"]["err"] for r in responses if r.status_code == 400}
    assert refused == {"JOB_ALREADY_RUNNING"}
    (execution,) = Execution.objects.filter(job=job)
    winner = next(r for r in responses if r.status_code == 200)
    assert winner.json()["result"]["executionId"] == execution.pk
    assert handed_out == [execution.pk]
