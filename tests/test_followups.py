"""Log offsets past an elided middle, blocks that survive an outage, kills that notify, and
`trigger_task --wait` following a retry chain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from apps.agents import services as agents
from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.engine import services
from apps.engine.logbuffer import BoundedLog
from apps.engine.models import Execution, Status
from apps.engine.signals import execution_failed


def stored(execution: Execution, output: bytes, max_bytes: int) -> Execution:
    log = BoundedLog(max_bytes)
    log.write(output)
    execution.log, execution.log_bytes = log.text(), log.total
    return execution


@pytest.fixture
def execution(make_job):
    job = make_job("chatty")
    return Execution(job=job, application=job.application)


def test_log_offsets_follow_the_whole_output_when_nothing_was_elided(execution):
    stored(execution, b"abcdef", 100)
    assert execution.log_since(0) == ("abcdef", 6)
    assert execution.log_since(4) == ("ef", 6)
    assert execution.log_since(6) == ("", 6)


def test_log_offsets_keep_growing_after_the_middle_is_elided(execution):
    output = b"".join(f"{i:04d}\n".encode() for i in range(1000))  # 5000 bytes
    stored(execution, output, 100)
    text, end = execution.log_since(0)
    assert end == 5000
    assert text.startswith("0000\n") and text.endswith("0999\n") and "bytes elided" in text
    assert execution.log_since(4995) == ("0999\n", 5000)
    middle, _ = execution.log_since(2500)  # inside the elided part: the marker, then the tail
    assert middle.startswith("\n[... 4900 bytes elided ...]\n") and middle.endswith("0999\n")
    assert execution.log_since(10)[0].startswith("0002\n")


@pytest.mark.django_db
def test_a_blocked_agent_taken_for_lost_comes_back_blocked(settings):
    agent = agents.register(AgentKind.CLUSTER)
    assert agents.set_blocked(agent, True)
    Agent.objects.filter(pk=agent.pk).update(last_heartbeat=timezone.now() - timedelta(hours=1))
    assert agents.mark_lost_agents() == 1
    agents.heartbeat(agent)
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.BLOCKED
    assert agents.set_blocked(agent, False)
    Agent.objects.filter(pk=agent.pk).update(status=AgentStatus.OFFLINE)
    agents.heartbeat(agent)
    assert Agent.objects.get(pk=agent.pk).status == AgentStatus.READY


@pytest.mark.django_db(transaction=True)
def test_killing_a_pending_execution_is_a_final_failure_and_notifies(make_job):
    received = []
    execution_failed.connect(lambda sender, execution, **kw: received.append(execution.pk), weak=False,
                             dispatch_uid="test-pending-kill")
    try:
        pending = services.trigger(make_job("queued", max_retries=3))
        killed = services.kill(pending, by="ops")
    finally:
        execution_failed.disconnect(dispatch_uid="test-pending-kill")
    assert (killed.status, killed.error, killed.kill_requested_by) == (Status.ERROR, "killed by ops", "ops")
    assert received == [pending.pk]
    assert not Execution.objects.filter(retry_of=pending).exists()


@pytest.mark.django_db(transaction=True)
def test_trigger_task_wait_follows_the_retries_to_the_final_outcome(make_job, sync_queue, capsys):
    make_job("flaky", command="echo try; exit 4", max_retries=1, retry_backoff_seconds=0)
    with pytest.raises(CommandError, match="exit code 4"):
        call_command("trigger_task", "flaky", "--wait", "--timeout", "30")
    out = capsys.readouterr().out
    first, retry = Execution.objects.order_by("id")
    assert f"following its retry, execution {retry.pk}" in out
    assert f"Execution {retry.pk} ended ERROR" not in out  # the failure is raised, not printed
    assert (first.attempt, retry.attempt) == (1, 2)


@pytest.mark.parametrize("zone", ["Europe", "America/", "Nowhere/City"])
def test_a_time_zone_that_is_not_a_zone_is_refused_not_crashed_on(zone):
    from django.core.exceptions import ValidationError

    from apps.catalog.validators import timezone_name as validate_timezone

    with pytest.raises(ValidationError, match="Unknown time zone"):
        validate_timezone(zone)


@pytest.mark.django_db
def test_a_schedule_whose_next_slot_is_past_year_9999_finishes(job_for_schedule):
    from datetime import datetime, timezone as dt

    from apps.scheduling.models import Kind, Schedule

    schedule = Schedule(job=job_for_schedule, kind=Kind.INTERVAL, interval_seconds=86400 * 60,
                        start_at=datetime(9999, 12, 1, tzinfo=dt.utc))
    schedule.schedule_from(datetime(9999, 12, 2, tzinfo=dt.utc))
    assert (schedule.active, schedule.next_fire_at) == (False, None)
    assert schedule.upcoming() == []


@pytest.fixture
def job_for_schedule(make_job):
    return make_job("far_future", job_type="DUMMY", command="")


@pytest.mark.django_db
@pytest.mark.parametrize("field, value", [("url", "ftp://x.example"), ("url", "no scheme"),
                                          ("token_url", "https://x.example/\nInjected: 1")])
def test_a_job_type_url_must_be_http(field, value):
    from django.core.exceptions import ValidationError

    from apps.catalog.models import JobType

    job_type = JobType(name="EXT", start_path="/s", status_path="/t", **{field: value})
    with pytest.raises(ValidationError) as refused:
        job_type.full_clean()
    assert "is not an http(s) URL" in refused.value.message_dict[field][0]


@pytest.mark.django_db
def test_the_api_log_tail_counts_offsets_over_the_whole_output(execution, administrator):
    from tests.conftest import token_client

    stored(execution, b"".join(f"{i:04d}\n".encode() for i in range(1000)), 100).save()
    body = token_client(administrator).get(f"/api/v1/executions/{execution.pk}/log?offset=4995").json()
    assert (body["offset"], body["next_offset"], body["data"]) == (4995, 5000, "0999\n")
