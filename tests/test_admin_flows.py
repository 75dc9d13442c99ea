"""Flow runs in the console: a flow's page draws its definition and starts a run; a run's page draws
its processes by status and lists each job's latest execution with the actions that fit."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.catalog.models import Flow, Process
from apps.engine import tasks
from apps.engine.models import Execution, Status
from apps.flows import services as flows
from apps.flows.models import FlowRun
from tests.conftest import token_client

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def flow(app, make_job):
    flow = Flow.objects.create(application=app, name="Nightly", cycle="Nightly")
    extract, load = (Process.objects.create(flow=flow, name=name) for name in ("Extract", "Load"))
    load.predecessors.add(extract)
    make_job("extract_items", command="exit 4", process=extract)
    make_job("load_items", job_type="DUMMY", command="", process=load)
    return flow


def test_the_flow_page_draws_the_definition_and_starts_a_run(admin_client_logged, flow, handed_out):
    page = admin_client_logged.get(reverse("admin:catalog_flow_change", args=[flow.pk])).content.decode()
    assert page.count('class="bd-node"') == 2 and page.count("<line ") == 1
    response = admin_client_logged.post(reverse("admin:catalog_flow_start", args=[flow.pk]),
                                        {"business_date": "2026-12-24", "parameters": "x=1"})
    run = FlowRun.objects.get()
    assert response["Location"] == reverse("admin:flows_flowrun_change", args=[run.pk])
    assert (str(run.business_date), run.triggered_by, run.parameters) == ("2026-12-24", "ada", "x=1")


def test_the_flow_page_reports_a_second_run_for_the_same_date(admin_client_logged, flow, handed_out):
    url = reverse("admin:catalog_flow_start", args=[flow.pk])
    admin_client_logged.post(url, {"business_date": "2026-12-24"})
    page = admin_client_logged.post(url, {"business_date": "2026-12-24"}, follow=True).content.decode()
    assert "FLOW_ALREADY_RUNNING" in page and FlowRun.objects.count() == 1


def test_the_run_page_draws_statuses_and_offers_restart_and_skip_on_the_failure(admin_client_logged, flow, handed_out):
    run = flows.start_run(flow)
    for pk in list(dict.fromkeys(handed_out)):
        tasks.start_execution(pk)
    page = admin_client_logged.get(reverse("admin:flows_flowrun_change", args=[run.pk])).content.decode()
    assert re.search(r'data-process="Extract" data-status="ERROR"', page)
    assert re.search(r'data-process="Load" data-status="WAITING"', page)
    assert 'name="restart"' in page and 'name="skip"' in page and 'name="kill"' in page
    failed = Execution.objects.get(job__name="extract_items")
    back = reverse("admin:flows_flowrun_change", args=[run.pk])
    response = admin_client_logged.post(reverse("admin:engine_execution_operate", args=[failed.pk, "skip"]),
                                        {"next": back})
    assert response["Location"] == back
    failed.refresh_from_db()
    assert failed.skipped_in_flow == "skipped by ada"


def test_a_viewer_sees_the_run_but_no_action(client, viewer, flow, handed_out):
    run = flows.start_run(flow)
    client.force_login(viewer)
    page = client.get(reverse("admin:flows_flowrun_change", args=[run.pk])).content.decode()
    assert 'class="bd-node"' in page
    assert not re.search(r'name="(restart|skip|hold|release|kill)"', page)
    assert client.post(reverse("admin:flows_flowrun_action", args=[run.pk, "kill"])).status_code == 403
    execution = run.executions.first()
    assert client.post(reverse("admin:engine_execution_operate", args=[execution.pk, "skip"])).status_code == 403
    assert client.post(reverse("admin:catalog_flow_start", args=[flow.pk])).status_code == 403
    run.refresh_from_db()
    assert run.is_open and Execution.objects.filter(status=Status.SKIPPED).count() == 0


def test_hold_and_release_the_run_from_its_page(admin_client_logged, flow, handed_out):
    run = flows.start_run(flow)
    admin_client_logged.post(reverse("admin:flows_flowrun_action", args=[run.pk, "hold"]))
    run.refresh_from_db()
    assert run.held
    admin_client_logged.post(reverse("admin:flows_flowrun_action", args=[run.pk, "release"]))
    run.refresh_from_db()
    assert not run.held


def test_a_flow_schedule_is_made_in_the_schedule_admin_and_its_fires_show_their_runs(admin_client_logged, flow,
                                                                                      handed_out):
    from datetime import timedelta

    from apps.scheduling import services as scheduling
    from apps.scheduling.models import Schedule

    form = {"flow": flow.pk, "kind": "interval", "interval_seconds": 3600, "repeats": 0, "timezone": "UTC",
            "misfire": "skip", "active": "on"}
    assert admin_client_logged.post(reverse("admin:scheduling_schedule_add"), form).status_code == 302
    schedule = Schedule.objects.get(flow=flow)
    scheduling.fire_due(schedule.next_fire_at + timedelta(seconds=1))
    page = admin_client_logged.get(reverse("admin:scheduling_schedule_change", args=[schedule.pk])).content.decode()
    assert f"run #{FlowRun.objects.get().pk}" in page


def test_monitoring_shows_a_tile_per_flow_with_its_run_for_the_date(admin_client_logged, flow, app, handed_out):
    Flow.objects.create(application=app, name="Weekly", cycle="Weekly")
    run = flows.start_run(flow)
    for pk in list(dict.fromkeys(handed_out)):
        tasks.start_execution(pk)  # extract_items fails: nothing more can run
    page = admin_client_logged.get(reverse("admin:monitoring")).content.decode()
    assert re.search(r'data-flow="Nightly" data-state="error"', page)
    assert re.search(r'data-flow="Weekly" data-state="not started"', page)
    assert "0 of 2 jobs" in page and reverse("admin:flows_flowrun_change", args=[run.pk]) in page
    flows.hold(run, by="ada")
    live = admin_client_logged.get(reverse("admin:monitoring_live")).json()
    assert 'data-state="held"' in live["sections"]["flows"]
    other_day = admin_client_logged.get(reverse("admin:monitoring") + "?date=2020-01-01").content.decode()
    assert re.search(r'data-flow="Nightly" data-state="not started"', other_day)


def test_the_run_page_draws_the_run_in_time_with_its_critical_path_marked(admin_client_logged, flow, handed_out):
    flow.processes.get(name="Extract").jobs.update(command="true")
    run = flows.start_run(flow)
    for _ in range(2):
        for pk in list(dict.fromkeys(handed_out)):
            handed_out.remove(pk)
            tasks.start_execution(pk)
    run.refresh_from_db()
    assert run.status == "COMPLETED"
    page = admin_client_logged.get(reverse("admin:flows_flowrun_change", args=[run.pk])).content.decode()
    assert page.count('class="bd-lane bd-critical"') == 2 and page.count('class="bd-bar COMPLETED') == 2
    assert "extract_items → load_items" in page


def a_run_under_way(app, make_job, name: str, processes: int) -> FlowRun:
    """A run of `processes` processes in a chain, two jobs each: its first half done (one job on
    its second attempt), one job running, the rest waiting for the flow."""
    flow = Flow.objects.create(application=app, name=name, cycle="Nightly")
    before = None
    for i in range(processes):
        process = Process.objects.create(flow=flow, name=f"P{i:02d}")
        if before is not None:
            process.predecessors.add(before)
        for j in range(2):
            make_job(f"{name}_{i}_{j}", job_type="DUMMY", command="", process=process, sequence=j + 1)
        before = process
    run = flows.start_run(flow)
    executions = list(run.executions.order_by("job__process__name", "job__sequence"))
    now = timezone.now()
    for k, execution in enumerate(executions):
        at = now - timedelta(minutes=len(executions) - k)
        if k < len(executions) // 2:
            execution.status, execution.started_at, execution.finished_at = Status.COMPLETED, at, at + timedelta(seconds=30)
        elif k == len(executions) // 2:
            execution.status, execution.started_at, execution.awaits_flow = Status.RUNNING, at, False
    Execution.objects.bulk_update(executions, ["status", "started_at", "finished_at", "awaits_flow"])
    first = executions[0]
    Execution.objects.create(job=first.job, application=first.application, flow_run=run, status=Status.COMPLETED,
                             attempt=2, retry_of=first, started_at=first.finished_at, finished_at=now)
    return run


def test_the_run_page_costs_the_same_queries_for_6_or_40_jobs(admin_client_logged, administrator, app, make_job,
                                                             handed_out):
    """The graph, the Gantt, the critical path and the table of jobs with their buttons (and the
    run by the API): a few queries whatever the size of the run (none per job or per bar)."""
    def queries(run) -> int:
        url = reverse("admin:flows_flowrun_change", args=[run.pk])
        with CaptureQueriesContext(connection) as captured:
            assert admin_client_logged.get(url).status_code == 200
        return len(captured.captured_queries)

    def api_queries(run) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get(f"/api/v1/flow-runs/{run.pk}").status_code == 200
        return len(captured.captured_queries)

    small, big = a_run_under_way(app, make_job, "Small", 3), a_run_under_way(app, make_job, "Big", 20)
    queries(small)  # the first request of a session writes it
    assert queries(big) == queries(small)
    api = token_client(administrator)
    assert api_queries(big) == api_queries(small)
    assert len(api.get(f"/api/v1/flow-runs/{big.pk}").json()["processes"]) == 20
    page = admin_client_logged.get(reverse("admin:flows_flowrun_change", args=[big.pk])).content.decode()
    assert page.count("<tr data-job=") == 40 and page.count('class="bd-node"') == 20
    # 19 waiting jobs may be skipped; they and the running one killed, and so may the run.
    assert page.count('name="skip"') == 19 and page.count('name="kill"') == 21
    assert re.search(r'<tr data-job="Big_0_0" data-status="COMPLETED">.*?</a> attempt 2</td>', page, re.DOTALL)
    assert re.search(r'<tr data-job="Big_0_1" data-status="COMPLETED">.*?<td>30\.0 s</td>', page, re.DOTALL)
    assert page.count('class="bd-lane bd-critical"') >= 1


def test_the_run_list_and_monitoring_cost_the_same_queries_for_2_or_8_flows(admin_client_logged, app, make_job,
                                                                            handed_out):
    """The run list's filter by flow and Batch Monitoring's tiles read every flow with its
    application at once."""
    def queries(url) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client_logged.get(url).status_code == 200
        return len(captured.captured_queries)

    pages = [reverse("admin:flows_flowrun_changelist"), reverse("admin:monitoring")]
    for i in range(2):
        a_run_under_way(app, make_job, f"Flow{i}", 2)
    queries(pages[0])  # the first request of a session writes it
    few = [queries(url) for url in pages]
    for i in range(2, 8):
        a_run_under_way(app, make_job, f"Flow{i}", 2)
    assert [queries(url) for url in pages] == few
    listed = admin_client_logged.get(pages[0]).content.decode()
    assert "RMS/Flow7" in listed and listed.count('<tr') > 8


def test_a_tile_counts_each_jobs_latest_execution_in_its_run(app, make_job, handed_out):
    from apps.console import monitoring

    run = a_run_under_way(app, make_job, "Close", 2)  # 4 jobs: 2 done (one on its second attempt), 1 running
    Execution.objects.filter(flow_run=run, attempt=1, job__name="Close_0_0").update(status=Status.ERROR)
    tile = next(tile for tile in monitoring.flow_tiles(monitoring.Day(run.business_date)) if tile.run == run)
    assert (tile.done, tile.total, tile.state) == (2, 4, "running")


def test_the_process_form_refuses_a_dependency_cycle_naming_its_processes(admin_client_logged, flow):
    extract, load = flow.processes.get(name="Extract"), flow.processes.get(name="Load")  # Load waits for Extract
    form = {"flow": flow.pk, "name": "Extract", "description": "", "predecessors": [load.pk]}
    page = admin_client_logged.post(reverse("admin:catalog_process_change", args=[extract.pk]), form)
    assert page.status_code == 200
    assert "Dependency cycle in flow Nightly: Extract → Load → Extract" in page.content.decode()
    assert not extract.predecessors.exists()
    itself = admin_client_logged.post(reverse("admin:catalog_process_change", args=[extract.pk]),
                                      {**form, "predecessors": [extract.pk]})
    assert "cannot wait for itself" in itself.content.decode() and not extract.predecessors.exists()
