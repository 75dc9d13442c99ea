"""A database that stops answering while jobs run: a PostgreSQL restart (every session of the test
database terminated, connections refused) or SQLite's "database is locked" (another connection
holds the write lock past the busy timeout). Real dispatcher and cluster processes, real faults
(tests/faults.py); each test runs on both backends, where the fault differs."""

from __future__ import annotations

import time

import pytest

from apps.agents.models import Agent, AgentStatus
from apps.engine import services
from apps.engine.models import Execution, Status
from tests.conftest import wait_for
from tests.faults import database_outage

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# engine_env(): agents beat every 0.5 s and are lost after 3 s of silence; runs renew a 6 s lease.
LOST_SECONDS = 3


@pytest.fixture
def engine(processes):
    """A dispatcher and a cluster whose SQLite writers give up on a lock after 1 s (30 s by default)."""
    processes.env["SQLITE_BUSY_TIMEOUT"] = "1"
    processes.wait_for_agents(processes.start("run_dispatcher"), processes.start("qcluster"), timeout=30)
    return processes


def running_with(execution: Execution, text: str) -> Execution:
    return wait_for(lambda: Execution.objects.filter(pk=execution.pk, status=Status.RUNNING,
                                                     log__contains=text).first(),
                    timeout=30, message=f"execution {execution.pk} to run and log {text!r}")


def finished(execution: Execution, timeout: float = 40) -> Execution:
    return wait_for(lambda: Execution.objects.filter(pk=execution.pk, status__in=[Status.COMPLETED, Status.ERROR]).first(),
                    timeout=timeout, message=f"execution {execution.pk} to end")


def test_an_exec_run_outlives_a_database_outage_and_its_outcome_is_recorded_once(engine, make_job, tmp_path):
    runs = tmp_path / "runs"
    job = make_job("through_outage", command=f"echo run >> {runs}; echo started; sleep 3; echo finished",
                   max_retries=2, retry_backoff_seconds=0)
    execution = services.trigger(job)
    running_with(execution, "started")
    with database_outage():
        engine.sleep(5)  # the job ends inside the outage: its runner cannot write a thing
    done = finished(execution)
    assert (done.status, done.error) == (Status.COMPLETED, ""), done.log
    assert "finished" in done.log
    assert runs.read_text() == "run\n"  # one copy ran, and no retry followed
    assert Execution.objects.filter(job=job).count() == 1


def test_agents_keep_beating_and_working_after_their_heartbeats_failed(engine, make_job):
    with database_outage():
        engine.sleep(2.5)  # heartbeats (every 0.5 s) and every dispatcher step fail meanwhile
    since = time.time()
    engine.sleep(2)
    engine.check()  # neither process exited
    agents = Agent.objects.filter(pid__in=[process.pid for process in engine.started])
    assert sorted(agents.values_list("status", flat=True)) == [AgentStatus.READY, AgentStatus.READY]
    assert all(agent.last_heartbeat.timestamp() > since for agent in agents)
    after = services.trigger(make_job("after_outage", command="echo still working"))
    assert finished(after, timeout=30).status == Status.COMPLETED


def test_an_outage_longer_than_the_agent_lost_time_loses_no_agent_and_no_run(engine, make_job):
    execution = services.trigger(make_job("long_outage", command="echo started; sleep 8; echo finished"))
    running_with(execution, "started")
    with database_outage():
        engine.sleep(2 * LOST_SECONDS)  # every agent's last beat is older than the lost time when it ends
    done = finished(execution)
    assert (done.status, done.error) == (Status.COMPLETED, ""), done.log
    assert not Agent.objects.filter(status=AgentStatus.OFFLINE).exists()
    assert Execution.objects.filter(job=execution.job).count() == 1
