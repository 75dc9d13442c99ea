"""The housekeeping PYTHON tasks that ship with Batchdesk delete only what is old enough."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Task

from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.engine import batch_tasks, services, tasks
from apps.engine.models import Execution, Status
from apps.catalog.registry import registry

pytestmark = pytest.mark.django_db


def days_ago(days: float):
    return timezone.now() - timedelta(days=days)


def execution(job, status: str, finished_days_ago: float | None) -> Execution:
    finished_at = days_ago(finished_days_ago) if finished_days_ago is not None else None
    return Execution.objects.create(job=job, application=job.application, status=status, finished_at=finished_at,
                                    created_at=days_ago((finished_days_ago or 0) + 1))


def queue_task(stopped_days_ago: float) -> Task:
    stopped = days_ago(stopped_days_ago)
    return Task.objects.create(id=uuid.uuid4().hex, name=f"task-{stopped_days_ago}", func="math.floor",
                               started=stopped - timedelta(seconds=1), stopped=stopped, success=True)


def agent(name: str, status: str, heartbeat_days_ago: float) -> Agent:
    return Agent.objects.create(name=name, kind=AgentKind.CLUSTER, host="h", pid=1, status=status,
                                last_heartbeat=days_ago(heartbeat_days_ago))


def test_it_registers_the_housekeeping_tasks():
    for name in ("purge_executions", "purge_queue_tasks", "purge_offline_agents"):
        assert registry[name].group == "housekeeping"
        assert registry[name].description


def test_it_purges_only_finished_executions_older_than_the_days(make_job, capsys):
    job = make_job()
    old = [execution(job, status, 31) for status in (Status.COMPLETED, Status.ERROR, Status.SKIPPED)]
    kept = [execution(job, Status.COMPLETED, 29), execution(job, Status.ERROR, 1)]
    # Active ones are never purged, however old (a HELD one may have no finished_at at all).
    kept += [execution(job, Status.HELD, None), execution(job, Status.RUNNING, None)]
    Execution.objects.filter(pk=kept[-1].pk).update(created_at=days_ago(400))

    assert batch_tasks.purge_executions({"days": "30"}) == 3
    assert not Execution.objects.filter(pk__in=[e.pk for e in old]).exists()
    assert set(Execution.objects.values_list("pk", flat=True)) == {e.pk for e in kept}
    assert "deleted 3 executions" in capsys.readouterr().out


def test_it_keeps_30_days_of_executions_by_default(make_job):
    job = make_job()
    execution(job, Status.COMPLETED, 31)
    recent = execution(job, Status.COMPLETED, 29)
    assert batch_tasks.purge_executions({}) == 1
    assert list(Execution.objects.values_list("pk", flat=True)) == [recent.pk]


def test_it_keeps_a_retry_when_the_attempt_it_retried_is_purged(make_job):
    job = make_job()
    first = execution(job, Status.ERROR, 40)
    retry = execution(job, Status.COMPLETED, 2)
    Execution.objects.filter(pk=retry.pk).update(retry_of=first)
    assert batch_tasks.purge_executions({"days": "30"}) == 1
    retry.refresh_from_db()
    assert retry.retry_of is None


def test_it_purges_only_queue_results_older_than_the_days():
    old, recent = queue_task(8), queue_task(6)
    assert batch_tasks.purge_queue_tasks({}) == 1
    assert list(Task.objects.values_list("pk", flat=True)) == [recent.pk]
    assert batch_tasks.purge_queue_tasks({"days": "5"}) == 1
    assert not Task.objects.filter(pk__in=[old.pk, recent.pk]).exists()


def test_it_forgets_only_agents_offline_for_longer_than_the_days():
    agent("long gone", AgentStatus.OFFLINE, 8)
    kept = {agent("recently offline", AgentStatus.OFFLINE, 6).pk, agent("silent but ready", AgentStatus.READY, 30).pk,
            agent("blocked", AgentStatus.BLOCKED, 30).pk}
    assert batch_tasks.purge_offline_agents({}) == 1
    assert set(Agent.objects.values_list("pk", flat=True)) == kept


def test_it_keeps_executions_when_their_agent_is_forgotten(make_job):
    gone = agent("gone", AgentStatus.OFFLINE, 10)
    kept = execution(make_job(), Status.COMPLETED, 1)
    Execution.objects.filter(pk=kept.pk).update(agent=gone)
    assert batch_tasks.purge_offline_agents({"days": "7"}) == 1
    kept.refresh_from_db()
    assert kept.agent is None


@pytest.mark.parametrize("task", [batch_tasks.purge_executions, batch_tasks.purge_queue_tasks,
                                  batch_tasks.purge_offline_agents])
@pytest.mark.parametrize("days", ["0", "-3", "soon"])
def test_it_refuses_a_days_value_that_would_purge_everything(make_job, task, days):
    execution(make_job(), Status.COMPLETED, 0.01)
    with pytest.raises(ValueError):
        task({"days": days})
    assert Execution.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_runs_a_purge_as_a_python_job(make_job, handed_out):
    job = make_job("purge_executions", job_type="PYTHON", command="purge_executions", parameters="days=30")
    old = execution(job, Status.COMPLETED, 45)
    run = services.trigger(job)
    assert tasks.start_execution(run.pk) == "ran"
    run.refresh_from_db()
    assert run.status == Status.COMPLETED
    assert "deleted 1 executions finished before" in run.log and "result: 1" in run.log
    assert not Execution.objects.filter(pk=old.pk).exists()
