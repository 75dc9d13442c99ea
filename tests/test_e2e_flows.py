"""End to end: flow runs (SPEC §2a) on a real dispatcher and cluster; for custom-type jobs, a real
web server serving the reference external system (extsys) as well."""

from __future__ import annotations

import pytest

from apps.catalog.models import Flow, Process
from apps.engine import services
from apps.engine.models import Execution, Status
from apps.extsys.models import ExternalExecution
from apps.flows import services as flows
from apps.flows.models import FlowRun, RunStatus
from tests.conftest import wait_for
from tests.test_e2e_rest import extsys_up  # noqa: F401  (a fixture)

pytestmark = pytest.mark.e2e


def settled(run: FlowRun, status: str, timeout: float = 40) -> FlowRun:
    """The run once it has reached `status` (a run in ERROR stays open; a COMPLETED one is closed)."""
    return wait_for(lambda: FlowRun.objects.filter(pk=run.pk, status=status).first(), timeout=timeout,
                    message=f"run {run.pk} to be {status} (jobs: {jobs_of(run)})")


def jobs_of(run: FlowRun) -> dict[str, list[str]]:
    """Each job of the run with the statuses of its executions, oldest first."""
    jobs: dict[str, list[str]] = {}
    for job, status in run.executions.order_by("pk").values_list("job__name", "status"):
        jobs.setdefault(job, []).append(status)
    return jobs


def processes_of(flow: Flow, graph: dict[str, str]) -> dict[str, Process]:
    """Processes named by `graph` (name → the names of its predecessors, space-separated)."""
    made = {name: Process.objects.create(flow=flow, name=name) for name in graph}
    for name, predecessors in graph.items():
        made[name].predecessors.add(*(made[p] for p in predecessors.split()))
    return made


def test_a_diamond_of_exec_jobs_runs_in_order_with_its_branches_overlapping(engine_up, app, make_job):
    flow = Flow.objects.create(application=app, name="Diamond", cycle="Nightly")
    made = processes_of(flow, {"A": "", "B": "A", "C": "A", "D": "B C"})
    for name, process in made.items():
        make_job(f"diamond_{name.lower()}", command="sleep 1", process=process)

    run = flows.start_run(flow, triggered_by="test")
    done = settled(run, RunStatus.COMPLETED)

    assert done.finished_at is not None
    rows = {job: (started, finished, status) for job, started, finished, status in run.executions.values_list(
        "job__name", "started_at", "finished_at", "status")}
    assert len(rows) == run.executions.count() == 4, "one execution per job, nothing re-run"
    assert {status for _, _, status in rows.values()} == {Status.COMPLETED}
    a, b, c, d = (rows[f"diamond_{name}"][:2] for name in "abcd")
    assert b[0] >= a[1] and c[0] >= a[1], "B and C start after A ends"
    assert b[0] < c[1] and c[0] < b[1], f"B {b} and C {c} run side by side"
    assert d[0] >= max(b[1], c[1]), "D starts only after both B and C end"


def test_a_flow_of_external_jobs_sends_its_names_fails_and_completes_after_a_restart(extsys_up, app, make_job):  # noqa: F811
    flow = Flow.objects.create(application=app, name="Replenish", cycle="Nightly")
    made = processes_of(flow, {"EXTRACT": "", "LOAD": "EXTRACT", "AUDIT": "EXTRACT", "REPORT": "LOAD AUDIT"})
    knobs = {"EXTRACT": "duration=1", "LOAD": "duration=0.5||outcome=ERROR", "AUDIT": "duration=0.5",
             "REPORT": "duration=0.5"}
    for name, process in made.items():
        make_job(f"ext_{name.lower()}", job_type="MOCKTYPE", command="", parameters=knobs[name], process=process)

    run = flows.start_run(flow, triggered_by="test")
    failed_run = settled(run, RunStatus.ERROR)
    assert failed_run.finished_at is None, "a run in ERROR because a job failed stays open"
    assert jobs_of(run) == {"ext_extract": [Status.COMPLETED], "ext_load": [Status.ERROR],
                            "ext_audit": [Status.COMPLETED], "ext_report": [Status.WAITING]}

    failed = Execution.objects.get(flow_run=run, job__name="ext_load")
    restarted = services.restart(failed, by="operator")
    assert restarted.flow_run_id == run.pk
    done = settled(run, RunStatus.COMPLETED)
    assert done.finished_at is not None
    assert jobs_of(run) == {"ext_extract": [Status.COMPLETED], "ext_load": [Status.ERROR, Status.COMPLETED],
                            "ext_audit": [Status.COMPLETED], "ext_report": [Status.COMPLETED]}

    # What the external system received: the flow's real names in every Start and Restart, each
    # completed job started once, and the restart sent to Restart with the failed executionId.
    received = list(ExternalExecution.objects.order_by("pk"))
    assert sorted(e.job_name for e in received) == ["ext_audit", "ext_extract", "ext_load", "ext_load", "ext_report"]
    for external in received:
        assert (external.cycle_name, external.flow_name, external.process_name) == (
            "Nightly", "Replenish", external.job_name.removeprefix("ext_").upper())
    first, second = (e for e in received if e.job_name == "ext_load")
    failed.refresh_from_db()
    assert first.execution_id == failed.external_execution_id
    assert second.restart_of_id == first.pk
    assert second.execution_id == Execution.objects.get(pk=restarted.pk).external_execution_id
    assert second.agent_execution_id == str(restarted.agent_execution_id)
