"""/api/v1/executions (SPEC §2, §5.2): filters, detail, kill, restart and the log tail."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.catalog.models import Application, JobType
from apps.engine.models import Execution, Status, Trigger
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

T0 = datetime.fromisoformat("2026-03-02T10:00:00+00:00")


@pytest.fixture
def api(administrator) -> APIClient:
    return token_client(administrator)


def run(job, status: str = Status.COMPLETED, **fields) -> Execution:
    return Execution.objects.create(job=job, application=job.application, status=status, **fields)


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [execution["id"] for execution in response.json()["results"]]


class TestTheList:
    @pytest.fixture
    def history(self, make_job) -> dict[str, Execution]:
        extract = make_job("extract")
        alloc = make_job("alloc_run", application=Application.objects.create(name="ALLOC"))
        return {
            "old_ok": run(extract, created_at=T0 - timedelta(days=2)),
            "failed": run(extract, Status.ERROR, created_at=T0 - timedelta(hours=1)),
            "running": run(alloc, Status.RUNNING, created_at=T0),
            "new": run(extract, Status.LOADED, created_at=T0 + timedelta(minutes=5)),
        }

    def test_it_lists_newest_first(self, api, history):
        assert ids(api.get("/api/v1/executions")) == [history[k].pk for k in ("new", "running", "failed", "old_ok")]

    @pytest.mark.parametrize(("query", "expected"), [
        ("status=ERROR", ["failed"]),
        ("status=RUNNING", ["running"]),
        ("status=SKIPPED", []),
        ("job=extract", ["new", "failed", "old_ok"]),
        ("job=nope", []),
        ("application=ALLOC", ["running"]),
        ("since=2026-03-02T09:00:00Z", ["new", "running", "failed"]),  # at or after
        ("until=2026-03-02T10:00:00Z", ["failed", "old_ok"]),  # before
        ("since=2026-03-02T09:00:00Z&until=2026-03-02T10:00:01Z", ["running", "failed"]),
        ("since=2026-03-02T11:00:00%2B01:00", ["new", "running"]),  # an offset: 10:00 UTC
        ("since=2026-03-02T10:00:00", ["new", "running"]),  # naive: the installation's zone (UTC)
        ("job=extract&status=LOADED", ["new"]),
        ("colour=red", ["new", "running", "failed", "old_ok"]),  # an unknown filter is ignored
    ])
    def test_it_filters(self, api, history, query, expected):
        assert ids(api.get(f"/api/v1/executions?{query}")) == [history[k].pk for k in expected]

    @pytest.mark.parametrize(("query", "field"), [
        ("status=DONE", "status"),
        ("status=error", "status"),
        ("since=yesterday", "since"),
        ("since=2026-13-45T00:00:00", "since"),  # well formed, impossible
        ("until=2026-03-02T10:00:00%2B99:00", "until"),
        ("until=9999-12-31T23:59:59-23:59", "until"),  # past year 9999 in UTC
        ("job=a%00b", "job"),
        ("application=%00", "application"),
    ])
    def test_it_refuses_a_bad_filter_value(self, api, history, query, field):
        response = api.get(f"/api/v1/executions?{query}")
        assert response.status_code == 400
        assert (response.json()["error"], list(response.json()["fields"])) == ("INVALID_INPUT", [field])


def test_it_shows_an_execution_with_the_fields_of_the_spec(api, make_job):
    job = make_job("extract", threshold_runtime_seconds=1)
    execution = run(job, Status.RUNNING, started_at=timezone.now() - timedelta(seconds=5), parameters="a=1",
                    trigger=Trigger.SCHEDULE, external_execution_id="X-1", execution_info="queued")
    body = api.get(f"/api/v1/executions/{execution.pk}").json()
    assert {key: body[key] for key in ("id", "agent_execution_id", "job", "application", "status", "trigger",
                                       "parameters", "attempt", "external_execution_id", "execution_info",
                                       "error", "restart_of", "long_running")} == {
        "id": execution.pk, "agent_execution_id": str(execution.agent_execution_id), "job": "extract",
        "application": "RMS", "status": "RUNNING", "trigger": "schedule", "parameters": "a=1", "attempt": 1,
        "external_execution_id": "X-1", "execution_info": "queued", "error": "", "restart_of": None,
        "long_running": True}
    assert body["started_at"] and body["created_at"] and body["finished_at"] is None


@pytest.mark.parametrize("path", ["/api/v1/executions/424242", "/api/v1/executions/abc",
                                  "/api/v1/executions/-1", "/api/v1/executions/99999999999999999999999999",
                                  "/api/v1/executions/424242/log", "/api/v1/executions/1e3"])
def test_it_answers_404_for_an_unknown_execution(api, path):
    response = api.get(path)
    assert (response.status_code, response.json()["error"]) == (404, "NOT_FOUND")


class TestKill:
    def test_it_kills_a_pending_execution_at_once(self, api, make_job):
        execution = run(make_job("extract"), Status.LOADED)
        response = api.post(f"/api/v1/executions/{execution.pk}/kill")
        assert response.status_code == 200
        assert (response.json()["status"], response.json()["error"]) == ("ERROR", "killed by ada")
        assert response.json()["finished_at"]

    def test_it_asks_the_runner_to_kill_a_running_exec_execution(self, api, make_job):
        execution = run(make_job("extract"), Status.RUNNING, started_at=timezone.now())
        response = api.post(f"/api/v1/executions/{execution.pk}/kill")
        assert (response.status_code, response.json()["id"]) == (200, execution.pk)
        execution.refresh_from_db()
        assert execution.kill_requested_by == "ada"  # the runner stops the process group within seconds

    def test_it_refuses_to_kill_an_ended_execution(self, api, make_job):
        execution = run(make_job("extract"), Status.COMPLETED)
        response = api.post(f"/api/v1/executions/{execution.pk}/kill")
        assert (response.status_code, response.json()["error"]) == (409, "NOT_ACTIVE")
        execution.refresh_from_db()
        assert execution.status == Status.COMPLETED

    def test_it_refuses_to_kill_a_custom_type_without_a_kill_endpoint(self, api, make_job):
        JobType.objects.create(name="NOKILL", url="https://ext.example.com", start_path="/s", status_path="/t")
        execution = run(make_job("extract", job_type="NOKILL", command=""), Status.RUNNING,
                        external_execution_id="X-1", started_at=timezone.now())
        response = api.post(f"/api/v1/executions/{execution.pk}/kill")
        assert response.status_code == 409
        assert response.json() == {"error": "NOT_KILLABLE", "detail": "Kill is not defined for job type NOKILL"}


class TestRestart:
    def test_it_restarts_a_failed_execution_as_a_new_one(self, api, make_job):
        failed = run(make_job("extract"), Status.ERROR, parameters="day=tue", error="exit 1")
        response = api.post(f"/api/v1/executions/{failed.pk}/restart")
        assert response.status_code == 201
        body = response.json()
        assert body["id"] != failed.pk
        assert (body["status"], body["trigger"], body["restart_of"], body["parameters"], body["triggered_by"]) == (
            "LOADED", "restart", failed.pk, "day=tue", "ada")

    @pytest.mark.parametrize("status", [Status.COMPLETED, Status.RUNNING, Status.LOADED, Status.SKIPPED])
    def test_it_refuses_to_restart_what_did_not_fail(self, api, make_job, status):
        execution = run(make_job("extract"), status)
        response = api.post(f"/api/v1/executions/{execution.pk}/restart")
        assert (response.status_code, response.json()["error"]) == (409, "NOT_RESTARTABLE")
        assert Execution.objects.count() == 1


class TestTheLog:
    @pytest.fixture
    def execution(self, make_job) -> Execution:
        return run(make_job("extract"), Status.RUNNING, log="line 1\nline 2\nété\n", started_at=timezone.now())

    def test_it_serves_the_log_from_an_offset_for_tailing(self, api, execution):
        whole = api.get(f"/api/v1/executions/{execution.pk}/log").json()
        size = len(execution.log.encode())
        assert whole == {"offset": 0, "next_offset": size, "data": execution.log, "status": "RUNNING",
                         "complete": False}
        tail = api.get(f"/api/v1/executions/{execution.pk}/log?offset=7").json()
        assert (tail["offset"], tail["data"]) == (7, "line 2\nété\n")
        Execution.objects.filter(pk=execution.pk).update(log=execution.log + "line 4\n", status=Status.COMPLETED)
        more = api.get(f"/api/v1/executions/{execution.pk}/log?offset={whole['next_offset']}").json()
        assert (more["data"], more["complete"]) == ("line 4\n", True)

    @pytest.mark.parametrize("offset", ["1000", "9" * 30, "0" * 40 + "3"])
    def test_it_reads_nothing_past_the_end(self, api, execution, offset):
        body = api.get(f"/api/v1/executions/{execution.pk}/log?offset={offset}").json()
        size = len(execution.log.encode())
        expected = execution.log.encode()[3:].decode() if offset.endswith("03") else ""
        assert (body["data"], body["next_offset"]) == (expected, size)

    @pytest.mark.parametrize("offset", ["-1", "abc", "1.5", "%C2%B2", "%D9%A3", "", "1e3"])
    def test_it_refuses_an_offset_that_is_not_a_byte_offset(self, api, execution, offset):
        response = api.get(f"/api/v1/executions/{execution.pk}/log?offset={offset}")
        assert (response.status_code, list(response.json()["fields"])) == (400, ["offset"])
