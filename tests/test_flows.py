"""Flow runs (SPEC §2a), driven the way workers drive them: the start tasks the engine hands out
are recorded (`handed_out`) and run here with the worker's task, one at a time."""

from __future__ import annotations

from datetime import date

import pytest

from apps.catalog.models import Flow, Process
from apps.engine import services, tasks
from apps.engine.models import PENDING, Execution, Status, Trigger
from apps.errors import BatchError
from apps.flows import services as flows
from apps.flows.models import FlowRun, RunStatus

# Committed for real, so that hand-outs queued on commit are recorded.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def diamond(app, make_job):
    """A → (B, C) → D; B holds two jobs in sequence, C one that may fail."""
    flow = Flow.objects.create(application=app, name="Nightly", cycle="Nightly")
    a, b, c, d = (Process.objects.create(flow=flow, name=name) for name in "ABCD")
    b.predecessors.add(a)
    c.predecessors.add(a)
    d.predecessors.add(b, c)
    make_job("a1", job_type="DUMMY", command="", process=a)
    make_job("b1", job_type="DUMMY", command="", process=b, sequence=1)
    make_job("b2", job_type="DUMMY", command="", process=b, sequence=2)
    make_job("c1", command="exit ${BATCH_PARAM_CODE:-0}", process=c)
    make_job("d1", job_type="DUMMY", command="", process=d)
    return flow


def names(handed: list[int]) -> list[str]:
    """The jobs of the handed-out executions that a worker would start now (a hand-out that finds
    its execution taken or still held back by its flow starts nothing)."""
    startable = Execution.objects.filter(pk__in=handed, status__in=PENDING, awaits_flow=False)
    return sorted(startable.values_list("job__name", flat=True))


def run_handed(handed_out: list[int]) -> list[str]:
    """Run every execution handed out so far, as workers would; return their job names."""
    batch = names(handed_out)
    pks, handed_out[:] = list(dict.fromkeys(handed_out)), []
    for pk in pks:
        tasks.start_execution(pk)
    return batch


def state(run: FlowRun) -> dict[str, str]:
    run.refresh_from_db()
    return {row.job: row.status for row in flows.members(run)}


def test_a_run_is_whole_from_its_first_second_and_waits_with_reasons(diamond, handed_out):
    run = flows.start_run(diamond, business_date=date(2026, 12, 1), triggered_by="ada")
    waiting = dict(run.executions.values_list("job__name", "waiting_reason"))
    assert names(handed_out) == ["a1"]
    assert waiting["b1"] == "waiting for process A"
    assert waiting["d1"] == "waiting for process B, C"
    assert set(run.executions.values_list("trigger", flat=True)) == {Trigger.FLOW}
    assert (run.status, run.cycle, run.business_date) == (RunStatus.RUNNING, "Nightly", date(2026, 12, 1))


def test_a_diamond_runs_in_dependency_order_with_the_middle_branches_side_by_side(diamond, handed_out):
    run = flows.start_run(diamond)
    assert run_handed(handed_out) == ["a1"]
    assert names(handed_out) == ["b1", "c1"]  # both branches are ready at once
    assert run_handed(handed_out) == ["b1", "c1"]
    assert run_handed(handed_out) == ["b2"]  # the sequence inside B: b2 after b1
    assert run_handed(handed_out) == ["d1"]  # D after both B and C
    assert set(state(run).values()) == {Status.COMPLETED}
    assert (run.status, run.finished_at is not None) == (RunStatus.COMPLETED, True)


def test_a_failure_stops_only_its_branch_and_the_run_ends_in_error(diamond, handed_out):
    run = flows.start_run(diamond, parameters="CODE=3")
    run_handed(handed_out)
    run_handed(handed_out)
    run_handed(handed_out)  # b2 runs although c1 failed: another branch
    assert state(run) == {"a1": "COMPLETED", "b1": "COMPLETED", "b2": "COMPLETED", "c1": "ERROR", "d1": "WAITING"}
    assert run.status == RunStatus.ERROR and run.is_open
    assert run.executions.get(job__name="d1").waiting_reason == "waiting for process C"


def test_a_restart_continues_from_the_failure_and_runs_nothing_twice(diamond, handed_out):
    run = flows.start_run(diamond, parameters="CODE=3")
    for _ in range(3):
        run_handed(handed_out)
    failed = run.executions.get(job__name="c1")
    restarted = services.restart(failed, by="ada")
    assert restarted.flow_run_id == run.pk and restarted.restart_of_id == failed.pk
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING
    Execution.objects.filter(pk=restarted.pk).update(parameters="CODE=0")  # the operator fixed the input
    assert run_handed(handed_out) == ["c1"]
    assert run_handed(handed_out) == ["d1"]
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    counts = {job: run.executions.filter(job__name=job).count() for job in ("a1", "b1", "b2", "c1", "d1")}
    assert counts == {"a1": 1, "b1": 1, "b2": 1, "c1": 2, "d1": 1}


def test_skipping_the_failed_job_lets_the_run_go_on_and_keeps_its_error(diamond, handed_out):
    run = flows.start_run(diamond, parameters="CODE=3")
    for _ in range(3):
        run_handed(handed_out)
    failed = run.executions.get(job__name="c1")
    services.skip(failed, by="ada")
    failed.refresh_from_db()
    assert (failed.status, failed.skipped_in_flow) == (Status.ERROR, "skipped by ada")
    assert run_handed(handed_out) == ["d1"]
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED
    with pytest.raises(BatchError) as refused:
        services.skip(failed, by="ada")
    assert refused.value.code == "NOT_ALLOWED"


def test_skip_on_error_counts_the_failed_job_as_done(diamond, handed_out):
    diamond.processes.get(name="C").jobs.update(skip_on_error=True)
    run = flows.start_run(diamond, parameters="CODE=3")
    for _ in range(4):
        run_handed(handed_out)
    c1 = run.executions.get(job__name="c1")
    assert (c1.status, c1.skipped_in_flow) == (Status.ERROR, "skipped on error")
    run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED


def test_a_retry_stays_in_the_run(diamond, handed_out):
    diamond.processes.get(name="C").jobs.update(max_retries=1, retry_backoff_seconds=0)
    run = flows.start_run(diamond, parameters="CODE=3")
    run_handed(handed_out)
    run_handed(handed_out)  # c1 fails; its retry is in the run, so the run is not in ERROR
    retry = run.executions.get(job__name="c1", trigger=Trigger.RETRY)
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and retry.attempt == 2


def test_a_skipped_pending_job_satisfies_what_waits_for_it(diamond, handed_out):
    run = flows.start_run(diamond)
    run_handed(handed_out)
    run_handed(handed_out)  # b1, c1
    b2 = run.executions.get(job__name="b2")
    held = services.hold(b2, by="ada")
    assert held.status == Status.HELD
    assert names(handed_out) == []  # b2 would be ready, but it is held
    services.skip(held, by="ada")
    assert run_handed(handed_out) == ["d1"]
    assert state(run)["b2"] == Status.SKIPPED and run.status == RunStatus.COMPLETED


def test_a_released_execution_starts_when_its_turn_comes(diamond, handed_out):
    run = flows.start_run(diamond)
    d1 = run.executions.get(job__name="d1")
    services.hold(d1, by="ada")
    services.release(d1, by="ada")
    assert tasks.start_execution(d1.pk) == "not claimed"  # its predecessors are not done
    for _ in range(3):
        run_handed(handed_out)
    assert run_handed(handed_out) == ["d1"]


def test_a_held_run_starts_nothing_until_released(diamond, handed_out):
    run = flows.start_run(diamond)
    flows.hold(run, by="ada")
    reasons = dict(run.executions.values_list("job__name", "waiting_reason"))
    assert (reasons["a1"], reasons["d1"]) == ("the run is held by ada", "the run is held (waiting for process B, C)")
    assert tasks.start_execution(handed_out[0]) == "not claimed"
    handed_out.clear()
    with pytest.raises(BatchError):
        flows.hold(run, by="ada")
    flows.release(run, by="ada")
    assert run_handed(handed_out) == ["a1"]


def test_killing_a_run_ends_every_active_execution_and_closes_it(diamond, handed_out):
    run = flows.start_run(diamond)
    killed = flows.kill(run, by="ada")
    assert (killed.status, killed.is_open) == (RunStatus.ERROR, False)
    assert set(run.executions.values_list("status", "error")) == {(Status.ERROR, "killed by ada")}
    with pytest.raises(BatchError) as refused:
        flows.kill(run, by="ada")
    assert refused.value.code == "NOT_ALLOWED"


def test_one_open_run_per_flow_and_business_date(diamond, handed_out):
    flows.start_run(diamond, business_date=date(2026, 12, 1))
    with pytest.raises(BatchError) as refused:
        flows.start_run(diamond, business_date=date(2026, 12, 1))
    assert refused.value.code == "FLOW_ALREADY_RUNNING"
    assert flows.start_run(diamond, business_date=date(2026, 12, 2)).business_date == date(2026, 12, 2)


def test_a_disabled_job_is_skipped_and_counts_as_done(diamond, handed_out):
    diamond.processes.get(name="A").jobs.update(enabled=False)
    run = flows.start_run(diamond)
    a1 = run.executions.get(job__name="a1")
    assert (a1.status, a1.error) == (Status.SKIPPED, "disabled")
    assert names(handed_out) == ["b1", "c1"]


def test_the_runs_parameters_override_the_jobs_defaults_key_by_key(diamond, handed_out):
    diamond.processes.get(name="A").jobs.update(parameters="region=EU||day=mon")
    run = flows.start_run(diamond, parameters="day=tue")
    assert run.executions.get(job__name="a1").parameters == "region=EU||day=tue"


def test_exec_jobs_of_a_run_are_told_its_business_date_flow_process_and_cycle(app, make_job, handed_out):
    flow = Flow.objects.create(application=app, name="Nightly", cycle="Nightly")
    process = Process.objects.create(flow=flow, name="Extract")
    make_job("env", process=process,
             command='echo "$BATCH_BUSINESS_DATE $BATCH_FLOW $BATCH_PROCESS $BATCH_CYCLE"')
    run = flows.start_run(flow, business_date=date(2026, 11, 30))
    run_handed(handed_out)
    assert run.executions.get().log == "2026-11-30 Nightly Extract Nightly\n"


def test_a_flow_without_jobs_cannot_run(app):
    flow = Flow.objects.create(application=app, name="Empty")
    with pytest.raises(BatchError) as refused:
        flows.start_run(flow)
    assert refused.value.code == "NOT_ALLOWED"


def test_a_schedule_of_a_flow_starts_a_run_and_a_fire_that_meets_an_open_run_is_skipped(diamond, handed_out):
    from datetime import timedelta

    from django.utils import timezone

    from apps.scheduling import services as scheduling
    from apps.scheduling.models import FiredSlot, Outcome, Schedule

    schedule = Schedule.objects.create(flow=diamond, kind="interval", interval_seconds=60)
    first = schedule.next_fire_at
    assert scheduling.fire_due(first + timedelta(seconds=1)) == 1
    run = FlowRun.objects.get()
    assert (run.trigger, run.triggered_by, run.business_date) == (Trigger.SCHEDULE, f"schedule {schedule.pk}",
                                                                  timezone.localdate())
    assert FiredSlot.objects.get(slot=first).flow_run == run
    assert scheduling.fire_due(first + timedelta(seconds=61)) == 1
    skipped = FiredSlot.objects.get(slot=first + timedelta(seconds=60))
    assert skipped.outcome == Outcome.SKIPPED and skipped.reason.startswith("FLOW_ALREADY_RUNNING")
    assert FlowRun.objects.count() == 1


def test_the_critical_path_is_the_chain_of_jobs_that_set_the_runs_end(diamond, handed_out):
    from datetime import timedelta

    from django.utils import timezone

    from apps.flows.graph import critical_path, flow_graph

    run = flows.start_run(diamond)
    for _ in range(4):
        run_handed(handed_out)
    # Say C's job ran long: the end of the run waited for it, not for B's two jobs.
    t0 = timezone.now() - timedelta(minutes=10)
    timings = {"a1": (0, 60), "b1": (60, 90), "b2": (90, 120), "c1": (60, 300), "d1": (300, 330)}
    for job, (start, end) in timings.items():
        run.executions.filter(job__name=job).update(started_at=t0 + timedelta(seconds=start),
                                                    finished_at=t0 + timedelta(seconds=end))
    assert [job.job for job in critical_path(flow_graph(diamond, run))] == ["a1", "c1", "d1"]
    run.executions.filter(job__name="b2").update(finished_at=t0 + timedelta(seconds=310))
    run.executions.filter(job__name="d1").update(started_at=t0 + timedelta(seconds=310),
                                                 finished_at=t0 + timedelta(seconds=340))
    assert [job.job for job in critical_path(flow_graph(diamond, run))] == ["a1", "b1", "b2", "d1"]


def test_an_end_does_not_hand_out_again_what_its_run_has_handed_out(diamond, handed_out):
    """A finish wakes the executions a claim held back (lock group, throttle); the ones its run has
    just handed out are WAITING too but already on their way: queued again, they only fill the
    queue (19 start tasks a job in a run of 1,000 jobs)."""
    run = flows.start_run(diamond)
    run_handed(handed_out)  # a1 ends: b1 and c1 are handed out
    b1 = run.executions.get(job__name="b1")
    handed_out.clear()
    tasks.start_execution(b1.pk)  # b1 ends while c1 still waits for a worker
    assert handed_out == [run.executions.get(job__name="b2").pk]


def test_what_a_run_hands_out_is_handed_out_again_only_when_its_lease_runs_out(diamond, handed_out, settings):
    from datetime import timedelta

    from django.utils import timezone

    from apps.engine import leases

    run = flows.start_run(diamond)
    a1 = run.executions.get(job__name="a1")
    lease = settings.BATCHDESK["DISPATCH_LEASE_SECONDS"]
    assert a1.next_check_at > timezone.now() + timedelta(seconds=lease - 5)
    handed_out.clear()
    assert leases.hand_out_due() == 0  # its start task is queued: the dispatcher leaves it be
    Execution.objects.filter(pk=a1.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))  # lost
    assert leases.hand_out_due() == 1 and handed_out == [a1.pk]


@pytest.mark.postgres
def test_a_step_reads_a_new_runs_rows_in_linear_work_on_postgres(app, handed_out):
    """Each job's latest execution in a run, read on rows PostgreSQL has no statistics for yet (a run
    just started): a NOT EXISTS (newer row) was planned as a nested loop over the whole run for every
    row, a million rows visited per step of a 1,000-job run."""
    import json

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from apps.catalog.models import JobDefinition

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's planner")
    flow = Flow.objects.create(application=app, name="Wide")
    processes = Process.objects.bulk_create([Process(flow=flow, name=f"P{i}") for i in range(10)])
    JobDefinition.objects.bulk_create([JobDefinition(name=f"w{i}", application=app, job_type="DUMMY", command="",
                                                     process=processes[i % 10]) for i in range(1000)])
    run = flows.start_run(flow)
    with CaptureQueriesContext(connection) as captured:
        rows = flows.members(run)
    assert len(rows) == 1000
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + captured.captured_queries[-1]["sql"])
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan

    def visited(node: dict) -> float:
        here = node.get("Actual Rows", 0) * node.get("Actual Loops", 1) + node.get("Rows Removed by Join Filter", 0) \
            + node.get("Rows Removed by Filter", 0)
        return here + sum(visited(child) for child in node.get("Plans", []))

    assert visited(plan[0]["Plan"]) < 20 * len(rows)


def test_a_jobs_end_reads_only_its_process_the_ones_after_it_and_what_those_wait_for(app, make_job, handed_out,
                                                                                     monkeypatch):
    """A step that reads the whole run at every job's end costs a run of n jobs n² row reads, under
    the run's lock: the steps of one run take turns, so that is the run's pace."""
    flow = Flow.objects.create(application=app, name="Wide")
    a, b, c = (Process.objects.create(flow=flow, name=name) for name in "ABC")
    b.predecessors.add(a, c)
    for name, process in (("a1", a), ("b1", b), ("c1", c)):
        make_job(name, job_type="DUMMY", command="", process=process)
    for i in range(20):  # unrelated work of the same run
        make_job(f"x{i}", job_type="DUMMY", command="", process=Process.objects.create(flow=flow, name=f"X{i}"))
    run = flows.start_run(flow)
    read = []
    real = flows.members
    monkeypatch.setattr(flows, "members", lambda *args: read.append(real(*args)) or read[-1])
    tasks.start_execution(run.executions.get(job__name="a1").pk)
    assert sorted(row.job for row in read[-1]) == ["a1", "b1", "c1"]  # A, B after it, and C that B waits for too
    assert run.executions.get(job__name="b1").waiting_reason == "waiting for process C"
    tasks.start_execution(run.executions.get(job__name="c1").pk)
    assert "b1" in names(handed_out)
    while handed_out:
        run_handed(handed_out)
    assert state(run) == dict.fromkeys(["a1", "b1", "c1", *(f"x{i}" for i in range(20))], Status.COMPLETED)
    assert run.status == RunStatus.COMPLETED
