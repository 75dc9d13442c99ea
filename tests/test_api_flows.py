"""The flow rows of SPEC §5.2: flows, their runs and schedules, runs with their processes, and the
operator's actions, by the API."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.catalog.models import Flow, Process
from apps.engine.models import Execution, Status
from apps.flows.models import FlowRun
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(administrator):
    return token_client(administrator)


@pytest.fixture
def flow(app, make_job):
    flow = Flow.objects.create(application=app, name="Nightly", cycle="Nightly")
    extract, load = (Process.objects.create(flow=flow, name=name) for name in ("Extract", "Load"))
    load.predecessors.add(extract)
    make_job("extract_items", job_type="DUMMY", command="", process=extract, sequence=10)
    make_job("load_items", job_type="DUMMY", command="", process=load, sequence=10)
    make_job("load_prices", job_type="DUMMY", command="", process=load, sequence=20)
    return flow


def test_a_flow_shows_its_processes_predecessors_jobs_and_sequences(api, flow):
    body = api.get("/api/v1/flows/RMS/Nightly").json()
    assert body == {"application": "RMS", "name": "Nightly", "cycle": "Nightly", "description": "", "processes": [
        {"name": "Extract", "predecessors": [], "jobs": [{"job": "extract_items", "sequence": 10}]},
        {"name": "Load", "predecessors": ["Extract"],
         "jobs": [{"job": "load_items", "sequence": 10}, {"job": "load_prices", "sequence": 20}]},
    ]}
    assert api.get("/api/v1/flows").json()["results"] == [
        {"application": "RMS", "name": "Nightly", "cycle": "Nightly", "description": ""}]
    assert api.get("/api/v1/flows/RMS/Nope").json()["error"] == "NOT_FOUND"


def test_a_run_starts_for_a_business_date_and_shows_each_process_and_job(api, flow):
    response = api.post("/api/v1/flows/RMS/Nightly/runs", {"business_date": "2026-12-24", "parameters": "x=1"},
                        format="json")
    assert response.status_code == 201, response.content
    run = response.json()
    assert (run["business_date"], run["status"], run["cycle"], run["trigger"], run["triggered_by"]) == (
        "2026-12-24", "RUNNING", "Nightly", "api", "ada")
    assert run["processes"][1] == {"name": "Load", "status": "WAITING", "predecessors": ["Extract"], "jobs": [
        {"job": "load_items", "sequence": 10, "status": "WAITING",
         "execution": Execution.objects.get(job__name="load_items").pk},
        {"job": "load_prices", "sequence": 20, "status": "WAITING",
         "execution": Execution.objects.get(job__name="load_prices").pk},
    ]}
    assert Execution.objects.get(job__name="load_items").parameters == "x=1"
    assert api.get(f"/api/v1/flow-runs/{run['id']}").json() == run
    execution = api.get(f"/api/v1/executions/{run['processes'][0]['jobs'][0]['execution']}").json()
    assert execution["flow_run"] == run["id"]


def test_a_second_open_run_for_the_same_date_is_409(api, flow):
    assert api.post("/api/v1/flows/RMS/Nightly/runs", {"business_date": "2026-12-24"}, format="json").status_code == 201
    refused = api.post("/api/v1/flows/RMS/Nightly/runs", {"business_date": "2026-12-24"}, format="json")
    assert (refused.status_code, refused.json()["error"]) == (409, "FLOW_ALREADY_RUNNING")


@pytest.mark.parametrize("body, field", [({"business_date": "2026-02-30"}, "business_date"),
                                         ({"business_date": "tomorrow"}, "business_date")])
def test_a_bad_business_date_is_400(api, flow, body, field):
    response = api.post("/api/v1/flows/RMS/Nightly/runs", body, format="json")
    assert response.status_code == 400 and list(response.json()["fields"]) == [field]


def test_bad_run_parameters_are_400_and_start_nothing(api, flow):
    response = api.post("/api/v1/flows/RMS/Nightly/runs", {"parameters": "novalue"}, format="json")
    assert (response.status_code, response.json()["error"]) == (400, "INVALID_PARAMETERS")
    assert not FlowRun.objects.exists()


def test_runs_are_listed_newest_first_and_filtered(api, flow):
    for day in ("2026-12-01", "2026-12-02"):
        api.post("/api/v1/flows/RMS/Nightly/runs", {"business_date": day}, format="json")
    assert [r["business_date"] for r in api.get("/api/v1/flows/RMS/Nightly/runs").json()["results"]] == [
        "2026-12-02", "2026-12-01"]
    assert [r["business_date"] for r in api.get("/api/v1/flow-runs?business_date=2026-12-01").json()["results"]] == [
        "2026-12-01"]
    assert api.get("/api/v1/flow-runs?flow=RMS/Nightly&status=RUNNING").json()["count"] == 2
    assert api.get("/api/v1/flow-runs?status=DONE").status_code == 400


def test_hold_release_and_kill_a_run_and_actions_that_do_not_fit_are_409(api, flow):
    run = api.post("/api/v1/flows/RMS/Nightly/runs", {}, format="json").json()
    assert api.post(f"/api/v1/flow-runs/{run['id']}/hold").json()["held"] is True
    refused = api.post(f"/api/v1/flow-runs/{run['id']}/hold")
    assert (refused.status_code, refused.json()["error"]) == (409, "NOT_ALLOWED")
    assert api.post(f"/api/v1/flow-runs/{run['id']}/release").json()["held"] is False
    killed = api.post(f"/api/v1/flow-runs/{run['id']}/kill").json()
    assert (killed["status"], killed["finished_at"] is not None) == ("ERROR", True)
    assert set(Execution.objects.values_list("status", flat=True)) == {Status.ERROR}
    assert api.post(f"/api/v1/flow-runs/{run['id']}/release").status_code == 409


def test_hold_release_and_skip_an_execution(api, flow):
    run = api.post("/api/v1/flows/RMS/Nightly/runs", {}, format="json").json()
    pk = run["processes"][1]["jobs"][1]["execution"]
    assert api.post(f"/api/v1/executions/{pk}/hold").json()["status"] == "HELD"
    assert api.post(f"/api/v1/executions/{pk}/release").json()["status"] == "WAITING"
    assert api.post(f"/api/v1/executions/{pk}/skip").json()["status"] == "SKIPPED"
    refused = api.post(f"/api/v1/executions/{pk}/skip")
    assert (refused.status_code, refused.json()["error"]) == (409, "NOT_ALLOWED")


def test_a_flow_schedule_is_created_and_listed_under_its_flow(api, flow):
    response = api.post("/api/v1/flows/RMS/Nightly/schedules", {"kind": "cron", "cron": "0 0 1 * * ?"}, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["flow"], response.json()["job"]) == ("RMS/Nightly", None)
    assert [s["cron"] for s in api.get("/api/v1/flows/RMS/Nightly/schedules").json()["results"]] == ["0 0 1 * * ?"]


def test_the_run_list_costs_the_same_queries_past_the_exact_count_of_the_executions(api, flow, monkeypatch):
    """Flow runs are counted exactly, whatever their number: no EXPLAIN once past EXACT_UP_TO (the
    estimate the execution list takes there), so the page's queries stay the same."""
    from apps.console import paging

    monkeypatch.setattr(paging, "EXACT_UP_TO", 5)

    def add(n: int) -> None:
        first = date(2026, 1, 1) + timedelta(days=FlowRun.objects.count())
        FlowRun.objects.bulk_create([FlowRun(flow=flow, business_date=first + timedelta(days=i), status="COMPLETED",
                                             finished_at=timezone.now()) for i in range(n)])

    def queries() -> tuple[int, int]:
        with CaptureQueriesContext(connection) as captured:
            body = api.get("/api/v1/flow-runs").json()
        return len(captured.captured_queries), body["count"]

    add(3)
    few, _ = queries()
    add(9)
    assert queries() == (few, 12)
