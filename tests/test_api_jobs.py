"""/api/v1/jobs (SPEC §5.2): filters, the detail's stats, latest execution and next fire, CRUD
with the flow and process by name, and each job's schedules and executions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.catalog.models import (
    Application,
    Concurrency,
    Flow,
    JobDefinition,
    JobType,
    Process,
)
from apps.engine import lifecycle
from apps.engine.models import Execution, Status, Trigger
from apps.errors import ErrorCode
from apps.scheduling.models import Schedule
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(administrator) -> APIClient:
    return token_client(administrator)


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [item["name"] for item in response.json()["results"]]


class TestTheList:
    @pytest.fixture
    def jobs(self, make_job):
        other = Application.objects.create(name="ALLOC")
        JobType.objects.create(name="MOCKTYPE", start_path="/s", status_path="/t")
        make_job("extract_sales", description="Nightly sales extract")
        make_job("load_stock", job_type="DUMMY", command="")
        make_job("alloc_run", application=other, job_type="MOCKTYPE", command="", description="Allocation")

    def test_it_lists_every_job_by_name(self, api, jobs):
        assert names(api.get("/api/v1/jobs")) == ["alloc_run", "extract_sales", "load_stock"]

    @pytest.mark.parametrize(("query", "expected"), [
        ("application=RMS", ["extract_sales", "load_stock"]),
        ("application=ALLOC", ["alloc_run"]),
        ("application=NOPE", []),
        ("job_type=DUMMY", ["load_stock"]),
        ("job_type=MOCKTYPE", ["alloc_run"]),
        ("q=sales", ["extract_sales"]),  # name or description, any case
        ("q=ALLOCATION", ["alloc_run"]),
        ("application=RMS&job_type=EXEC", ["extract_sales"]),
        ("unknown_filter=1", ["alloc_run", "extract_sales", "load_stock"]),  # ignored
        ("q=", ["alloc_run", "extract_sales", "load_stock"]),
    ])
    def test_it_filters(self, api, jobs, query, expected):
        assert names(api.get(f"/api/v1/jobs?{query}")) == expected

    def test_it_refuses_a_null_character_in_a_filter(self, api, jobs):
        response = api.get("/api/v1/jobs?q=a%00b")
        assert response.status_code == 400
        assert response.json()["fields"] == {"q": "Null characters are not allowed."}

    def test_it_paginates(self, api, jobs):
        body = api.get("/api/v1/jobs?page_size=2").json()
        assert (body["count"], len(body["results"])) == (3, 2)
        assert names(api.get("/api/v1/jobs?page_size=2&page=2")) == ["load_stock"]
        assert api.get("/api/v1/jobs?page=9").json()["error"] == "NOT_FOUND"


class TestTheDetail:
    def test_it_shows_stats_the_latest_execution_and_the_next_fire(self, api, make_job):
        job = make_job("extract")
        now = timezone.now()
        for status, seconds in [(Status.COMPLETED, 10), (Status.COMPLETED, 20), (Status.ERROR, 1)]:
            ran = Execution.objects.create(job=job, application=job.application, status=Status.RUNNING,
                                           started_at=now - timedelta(seconds=seconds))
            lifecycle.finish(ran, status, retry=False)  # a completion folds into the job's average
        latest = Execution.objects.create(job=job, application=job.application)
        early = Schedule.objects.create(job=job, kind="interval", interval_seconds=60)
        Schedule.objects.create(job=job, kind="cron", cron="0 0 1 1 *")
        body = api.get("/api/v1/jobs/extract").json()
        assert body["stats"] == {"total": 4, "success": 2, "failure": 1,
                                 "average_seconds": pytest.approx(15.0, abs=0.5)}
        assert (body["latest_execution"]["id"], body["latest_execution"]["status"]) == (latest.pk, "LOADED")
        assert body["next_fire_at"] == early.next_fire_at.isoformat().replace("+00:00", "Z")
        assert (body["application"], body["cycle_flow_process"]) == ("RMS", ["Adhoc", "Adhoc", "extract"])

    def test_it_shows_an_unrun_unscheduled_job(self, api, make_job):
        make_job("extract")
        body = api.get("/api/v1/jobs/extract").json()
        assert body["stats"] == {"total": 0, "success": 0, "failure": 0, "average_seconds": None}
        assert (body["latest_execution"], body["next_fire_at"]) == (None, None)

    def test_it_answers_404_for_an_unknown_job(self, api):
        assert api.get("/api/v1/jobs/nope").json() == {"error": "NOT_FOUND",
                                                       "detail": "No JobDefinition matches the given query."}


class TestWriting:
    @pytest.fixture
    def process(self, app) -> Process:
        flow = Flow.objects.create(application=app, name="nightly_batch", cycle="Nightly")
        return Process.objects.create(flow=flow, name="extracts")

    def test_it_creates_a_job_in_a_process_named_by_flow_and_process(self, api, app, process):
        response = api.post("/api/v1/jobs", {
            "name": "extract", "application": "RMS", "flow": "nightly_batch", "process": "extracts", "sequence": 2,
            "command": "echo hi", "parameters": "day=mon", "concurrency": "allow", "max_retries": 2,
            "warning_exit_codes": "3,4"}, format="json")
        assert response.status_code == 201, response.content
        body = response.json()
        assert body["cycle_flow_process"] == ["Nightly", "nightly_batch", "extracts"]
        assert (body["application"], body["sequence"], body["concurrency"]) == ("RMS", 2, "allow")
        job = JobDefinition.objects.get(name="extract")
        assert (job.process, job.max_retries, job.parameters) == (process, 2, "day=mon")

    def test_it_moves_a_job_out_of_its_process(self, api, make_job, process):
        make_job("extract", process=process)
        body = api.patch("/api/v1/jobs/extract", {"flow": None, "process": None}, format="json").json()
        assert body["cycle_flow_process"] == ["Adhoc", "Adhoc", "extract"]

    @pytest.mark.parametrize(("body", "field"), [
        ({"name": "x", "application": "NOPE", "command": "true"}, "application"),
        ({"name": "bad name", "application": "RMS", "command": "true"}, "name"),
        ({"name": "x", "application": "RMS"}, "command"),  # EXEC needs a command
        ({"name": "x", "application": "RMS", "job_type": "NOPE"}, "job_type"),
        ({"name": "x", "application": "RMS", "job_type": "PYTHON", "command": "os.system"}, "command"),
        ({"name": "x", "application": "RMS", "command": "true", "parameters": "a=1||a=2"}, "parameters"),
        ({"name": "x", "application": "RMS", "command": "true", "concurrency": "sometimes"}, "concurrency"),
        ({"name": "x", "application": "RMS", "command": "true", "warning_exit_codes": "one"}, "warning_exit_codes"),
        ({"name": "x", "application": "RMS", "command": "true", "flow": "nope", "process": "nope"}, "process"),
        ({"name": "x", "application": "RMS\x00", "command": "true"}, "application"),
        ({"name": "x", "application": "RMS", "command": "true", "max_retries": -1}, "max_retries"),
    ])
    def test_it_refuses_an_invalid_job(self, api, app, body, field):
        response = api.post("/api/v1/jobs", body, format="json")
        assert response.status_code == 400
        assert response.json()["error"] == "INVALID_INPUT"
        assert field in response.json()["fields"], response.json()
        assert not JobDefinition.objects.exists()

    def test_it_updates_a_job(self, api, make_job):
        make_job("extract")
        replaced = api.put("/api/v1/jobs/extract", {"name": "extract", "application": "RMS", "command": "echo 2",
                                                    "timeout_seconds": 60}, format="json")
        assert replaced.status_code == 200
        assert (replaced.json()["command"], replaced.json()["timeout_seconds"]) == ("echo 2", 60)
        assert api.patch("/api/v1/jobs/extract", {"enabled": False}, format="json").json()["enabled"] is False

    def test_it_deletes_a_job_without_executions(self, api, make_job):
        make_job("extract")
        assert api.delete("/api/v1/jobs/extract").status_code == 204
        assert not JobDefinition.objects.exists()

    def test_it_refuses_to_delete_a_job_with_executions(self, api, make_job):
        job = make_job("extract")
        Execution.objects.create(job=job, application=job.application, status=Status.COMPLETED)
        response = api.delete("/api/v1/jobs/extract")
        assert (response.status_code, response.json()["error"]) == (409, "IN_USE")


class TestSchedulesOfAJob:
    def test_it_creates_and_lists_a_job_s_schedules(self, api, make_job):
        make_job("extract")
        created = api.post("/api/v1/jobs/extract/schedules", {"kind": "cron", "cron": "0 2 * * *",
                                                               "timezone": "Europe/London"}, format="json")
        assert created.status_code == 201, created.content
        body = created.json()
        assert (body["job"], body["kind"], body["active"], body["misfire"]) == ("extract", "cron", True, "skip")
        assert len(body["next_fire_times"]) == 5
        assert body["next_fire_at"] == body["next_fire_times"][0].replace("+00:00", "Z")
        listed = api.get("/api/v1/jobs/extract/schedules").json()
        assert [s["id"] for s in listed["results"]] == [body["id"]]

    def test_it_schedules_the_job_of_the_path_whatever_the_body_says(self, api, make_job):
        make_job("extract")
        make_job("other")
        body = api.post("/api/v1/jobs/extract/schedules", {"job": "other", "kind": "interval", "interval_seconds": 60},
                        format="json").json()
        assert body["job"] == "extract"

    @pytest.mark.parametrize(("body", "field"), [
        ({"kind": "cron", "cron": "61 * * * *"}, "cron"),
        ({"kind": "cron", "cron": "0 0 30 2 *"}, "cron"),  # never fires
        ({"kind": "interval"}, "interval_seconds"),
        ({"kind": "once"}, "start_at"),
        ({"kind": "once", "start_at": "2001-01-01T00:00:00Z"}, "start_at"),
        ({"kind": "cron", "cron": "@daily", "timezone": "Mars/Olympus"}, "timezone"),
        ({"kind": "cron", "cron": "@daily", "timezone": "Europe"}, "timezone"),
        ({"kind": "interval", "interval_seconds": 60, "start_at": "9999-12-31T23:59:00Z"}, "start_at"),
        ({"kind": "interval", "interval_seconds": 2 ** 62}, "interval_seconds"),
        ({"kind": "sometimes"}, "kind"),
    ])
    def test_it_refuses_an_invalid_schedule(self, api, make_job, body, field):
        make_job("extract")
        response = api.post("/api/v1/jobs/extract/schedules", body, format="json")
        assert response.status_code == 400, response.content
        assert field in response.json()["fields"], response.json()
        assert not Schedule.objects.exists()


class TestExecutionsOfAJob:
    def test_it_lists_them_newest_first_and_paginated(self, api, make_job):
        job = make_job("extract")
        other = make_job("other")
        now = timezone.now()
        ids = [Execution.objects.create(job=job, application=job.application, status=Status.COMPLETED,
                                        created_at=now - timedelta(minutes=minutes)).pk for minutes in (3, 1, 2)]
        Execution.objects.create(job=other, application=other.application)
        body = api.get("/api/v1/jobs/extract/executions").json()
        assert body["count"] == 3
        assert [e["id"] for e in body["results"]] == [ids[1], ids[2], ids[0]]
        page = api.get("/api/v1/jobs/extract/executions?page_size=2&page=2").json()
        assert ([e["id"] for e in page["results"]], page["next"]) == ([ids[0]], None)

    def test_it_triggers_and_answers_201_with_the_execution(self, api, make_job):
        make_job("extract", parameters="day=mon||store=1")
        response = api.post("/api/v1/jobs/extract/executions", {"parameters": "day=tue"}, format="json")
        assert response.status_code == 201
        body = response.json()
        execution = Execution.objects.get()
        assert body["id"] == execution.pk
        assert (body["job"], body["application"], body["status"], body["trigger"]) == (
            "extract", "RMS", "LOADED", Trigger.API)
        assert (body["parameters"], body["triggered_by"], body["attempt"]) == ("day=tue||store=1", "ada", 1)
        for key in ["agent_execution_id", "external_execution_id", "execution_info", "error", "created_at",
                    "started_at", "finished_at", "restart_of", "long_running"]:
            assert key in body

    def test_it_triggers_with_an_empty_body(self, api, make_job):
        make_job("extract")
        assert api.post("/api/v1/jobs/extract/executions").status_code == 201

    def test_it_answers_409_job_already_running(self, api, make_job):
        make_job("extract", concurrency=Concurrency.FORBID)
        assert api.post("/api/v1/jobs/extract/executions", {}, format="json").status_code == 201
        response = api.post("/api/v1/jobs/extract/executions", {}, format="json")
        assert response.status_code == 409
        assert response.json() == {"error": "JOB_ALREADY_RUNNING", "detail": ErrorCode.JOB_ALREADY_RUNNING.message}
        assert Execution.objects.count() == 1

    @pytest.mark.parametrize(("fields", "body", "status", "code"), [
        ({"enabled": False}, {}, 409, "JOB_DISABLED"),
        ({}, {"parameters": "broken"}, 400, "INVALID_PARAMETERS"),
        ({}, {"parameters": 12}, 400, "INVALID_PARAMETERS"),  # read as "12", not a pair
        ({}, {"parameters": "a=\x00"}, 400, "INVALID_INPUT"),
    ])
    def test_it_refuses_what_the_trigger_refuses(self, api, make_job, fields, body, status, code):
        make_job("extract", **fields)
        response = api.post("/api/v1/jobs/extract/executions", body, format="json")
        assert (response.status_code, response.json()["error"]) == (status, code)
        assert not Execution.objects.exists()
