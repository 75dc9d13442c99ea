"""One bad row never stops the dispatcher: each step isolates its rows, and each step runs on its
own, so a row (or a step) that fails is logged and set aside while everything else goes on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.catalog.models import Concurrency, JobDefinition
from apps.engine import leases, services
from apps.engine.models import Execution, Status
from apps.engine.signals import execution_ended

pytestmark = pytest.mark.django_db


def offline_agent() -> Agent:
    return Agent.objects.create(name="cluster@gone:1", kind=AgentKind.CLUSTER, host="gone", pid=1,
                                status=AgentStatus.OFFLINE, last_heartbeat=timezone.now() - timedelta(hours=1))


def running_on(agent: Agent, job: JobDefinition) -> Execution:
    return Execution.objects.create(job=job, application=job.application, status=Status.RUNNING, agent=agent,
                                    exclusive=job.concurrency == Concurrency.FORBID,
                                    started_at=timezone.now() - timedelta(minutes=5),
                                    next_check_at=timezone.now() + timedelta(minutes=1))


def test_a_retry_refused_by_the_forbid_index_does_not_stop_the_recovery_of_the_others(make_job, handed_out):
    # Two runs side by side while the job allowed it; the job was switched to forbid since.
    job = make_job("was_allowed", concurrency=Concurrency.ALLOW, max_retries=1)
    agent = offline_agent()
    first, second = running_on(agent, job), running_on(agent, job)
    other = running_on(agent, make_job("other"))
    JobDefinition.objects.filter(pk=job.pk).update(concurrency=Concurrency.FORBID)

    assert leases.recover_lost() == 3
    ended = {e.pk: e for e in Execution.objects.filter(pk__in=[first.pk, second.pk, other.pk])}
    assert {e.status for e in ended.values()} == {Status.ERROR}
    assert ended[first.pk].error == "agent lost" and ended[other.pk].error == "agent lost"
    assert ended[second.pk].error.startswith("agent lost (not retried: JOB_ALREADY_RUNNING")
    assert Execution.objects.filter(retry_of=first, status=Status.WAITING).exists()
    assert not Execution.objects.filter(retry_of=second).exists()
    assert leases.recover_lost() == 0  # the next tick has nothing left to trip over


def test_a_row_that_cannot_be_ended_is_set_aside_in_error_with_the_reason(make_job, handed_out):
    agent = offline_agent()
    bad, good = running_on(agent, make_job("bad")), running_on(agent, make_job("good"))

    def broken_receiver(sender, execution, **kwargs) -> None:
        if execution.pk == bad.pk and execution.error == "agent lost":
            raise RuntimeError("a receiver that fails on this row")

    execution_ended.connect(broken_receiver, dispatch_uid="test-broken-receiver")
    try:
        leases.recover_lost()
    finally:
        execution_ended.disconnect(dispatch_uid="test-broken-receiver")
    bad.refresh_from_db()
    good.refresh_from_db()
    assert (good.status, good.error) == (Status.ERROR, "agent lost")
    assert bad.status == Status.ERROR
    assert bad.error == "could not be processed: RuntimeError: a receiver that fails on this row"
    assert bad.finished_at is not None and bad.next_check_at is None


@pytest.mark.once
@pytest.mark.django_db(transaction=True)  # the dispatcher closes old connections each tick
def test_a_step_that_fails_does_not_keep_the_next_steps_from_running(make_job, handed_out, monkeypatch):
    due = services.trigger(make_job("due"))
    handed_out.clear()
    Execution.objects.filter(pk=due.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))

    def broken() -> int:
        raise RuntimeError("a step that fails every tick")

    monkeypatch.setattr(leases, "recover_lost", broken)
    call_command("run_dispatcher", "--once", stdout=open("/dev/null", "w"))
    assert handed_out == [due.pk]
