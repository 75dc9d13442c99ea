"""End to end: real dispatcher and cluster processes run jobs and survive being killed."""

from __future__ import annotations

import pytest

from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.engine import services
from apps.engine.models import ACTIVE, Execution, Status, Trigger
from tests.conftest import group_alive, wait_for

pytestmark = pytest.mark.e2e


def finished(execution: Execution, timeout: float = 30) -> Execution:
    return wait_for(
        lambda: Execution.objects.filter(pk=execution.pk, status__in=[Status.COMPLETED, Status.ERROR]).first(),
        timeout=timeout, message=f"execution {execution.pk} to end",
    )


def test_it_runs_an_exec_job_from_code_to_completed(engine_up, make_job):
    job = make_job("hello", command='echo "hello $BATCH_PARAM_WHO"', parameters="who=world")
    execution = services.trigger(job, trigger=Trigger.API, triggered_by="test")
    done = finished(execution)
    assert done.status == Status.COMPLETED
    assert "hello world" in done.log
    assert done.agent.kind == AgentKind.CLUSTER


def test_it_kills_a_sleep_600_within_5_seconds_and_the_process_is_gone(engine_up, make_job):
    execution = services.trigger(make_job("sleeper", command="sleep 600"))
    running = wait_for(lambda: Execution.objects.filter(pk=execution.pk, status=Status.RUNNING, pid__isnull=False).first(),
                       timeout=20, message="the sleep to run")
    services.kill(running, by="operator")
    done = finished(execution, timeout=5)
    assert done.status == Status.ERROR
    assert done.error == "killed by operator"
    assert not group_alive(running.pid)


def test_no_execution_is_stuck_running_after_dispatcher_and_cluster_are_sigkilled(engine_up, make_job):
    processes = engine_up
    running = services.trigger(make_job("long", command="sleep 600"))
    wait_for(lambda: Execution.objects.filter(pk=running.pk, status=Status.RUNNING, pid__isnull=False).exists(),
             timeout=20, message="the long job to run")
    pid = Execution.objects.get(pk=running.pk).pid
    for process in processes.started:
        processes.kill_hard(process)
    # Triggered while nothing runs: it must still run once the engine is back.
    queued = services.trigger(make_job("queued", command="echo after the crash"))

    processes.start("run_dispatcher")
    processes.start("qcluster")
    lost = finished(running, timeout=30)
    assert lost.status == Status.ERROR and lost.error == "agent lost"
    assert not group_alive(pid)
    assert finished(queued, timeout=30).status == Status.COMPLETED
    assert not Execution.objects.filter(status__in=ACTIVE).exists()
    assert Agent.objects.filter(status=AgentStatus.OFFLINE).count() >= 2
