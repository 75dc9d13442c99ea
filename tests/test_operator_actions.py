"""Hold, release and skip on executions (SPEC §2a), refused with NOT_ALLOWED when the state does not
fit, and every operator action in the audit trail."""

from __future__ import annotations

import pytest

from apps.agents.models import Agent, AgentKind
from apps.agents.services import set_blocked
from apps.audit.models import AuditEntry
from apps.engine import services, tasks
from apps.engine.models import Execution, Status
from apps.errors import BatchError
from apps.scheduling import services as scheduling
from apps.scheduling.models import Schedule
from tests.conftest import token_client

pytestmark = pytest.mark.django_db


def trail() -> list[tuple[str, str, str]]:
    return list(AuditEntry.objects.order_by("id").values_list("actor", "action", "target_type"))


def test_a_held_execution_does_not_start_until_released(make_job, handed_out):
    execution = services.trigger(make_job(), triggered_by="ada")
    held = services.hold(execution, by="ada")
    assert (held.status, held.waiting_reason, held.next_check_at) == (Status.HELD, "held by ada", None)
    assert tasks.start_execution(execution.pk) == "not claimed"
    released = services.release(held, by="bob")
    assert released.status == Status.WAITING
    assert tasks.start_execution(execution.pk) == "ran"
    assert Execution.objects.get(pk=execution.pk).status == Status.COMPLETED
    assert trail() == [("ada", "trigger", "job definition"), ("ada", "hold", "execution"),
                       ("bob", "release", "execution")]


def test_a_skipped_execution_never_runs_and_is_not_retried(make_job, handed_out):
    execution = services.trigger(make_job(max_retries=3))
    skipped = services.skip(execution, by="ada")
    assert (skipped.status, skipped.error) == (Status.SKIPPED, "skipped by ada")
    assert tasks.start_execution(execution.pk) == "not claimed"
    assert Execution.objects.count() == 1


@pytest.mark.parametrize("action, status", [
    ("hold", Status.RUNNING), ("hold", Status.HELD), ("hold", Status.COMPLETED),
    ("release", Status.WAITING), ("release", Status.ERROR),
    ("skip", Status.RUNNING), ("skip", Status.COMPLETED), ("skip", Status.ERROR),
])
def test_an_action_that_does_not_fit_the_state_is_refused_and_changes_nothing(make_job, action, status):
    job = make_job()
    execution = Execution.objects.create(job=job, application=job.application, status=status)
    with pytest.raises(BatchError) as refused:
        getattr(services, action)(execution, by="ada")
    assert refused.value.code == "NOT_ALLOWED" and refused.value.status == 409
    assert f"is {status}" in refused.value.message
    assert Execution.objects.get(pk=execution.pk).status == status
    assert not AuditEntry.objects.exists()


def test_kill_pause_resume_and_block_are_audited(make_job, handed_out):
    job = make_job()
    services.kill(services.trigger(job, triggered_by="ada"), by="ada")
    schedule = Schedule.objects.create(job=job, kind="cron", cron="0 2 * * *")
    scheduling.pause(schedule, by="bob")
    scheduling.resume(schedule, by="bob")
    agent = Agent.objects.create(name="cluster@h:1", kind=AgentKind.CLUSTER, host="h", pid=1,
                                 last_heartbeat="2026-01-01T00:00:00Z")
    set_blocked(agent, True, by="cy")
    assert [action for _, action, _ in trail()] == ["trigger", "kill", "pause", "resume", "block"]


def test_schedule_fires_are_not_operator_actions(make_job, handed_out):
    from apps.engine.models import Trigger

    services.trigger(make_job(), trigger=Trigger.SCHEDULE, triggered_by="schedule 1")
    assert not AuditEntry.objects.exists()


def test_the_audit_trail_is_read_only_in_the_admin(admin_client_logged, make_job, handed_out):
    services.trigger(make_job("nightly"), triggered_by="ada")
    page = admin_client_logged.get("/admin/audit/auditentry/")
    assert page.status_code == 200 and "nightly" in page.content.decode()
    entry = AuditEntry.objects.get()
    assert admin_client_logged.get(f"/admin/audit/auditentry/{entry.pk}/delete/").status_code == 403
    assert admin_client_logged.get("/admin/audit/auditentry/add/").status_code == 403
