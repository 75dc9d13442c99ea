"""An execution's page: the operator's buttons where the state allows them, the confirmation of
the destructive ones, the log full width with its download, and no Delete anywhere."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.engine.models import Execution, Status

pytestmark = pytest.mark.django_db


def page(execution) -> str:
    return reverse("admin:engine_execution_change", args=[execution.pk])


def operate(execution, operation: str) -> str:
    return reverse("admin:engine_execution_operate", args=[execution.pk, operation])


def buttons(client, execution) -> list[str]:
    return [op.name for op in client.get(page(execution)).context["operations"]]


@pytest.fixture
def job(make_job):
    return make_job("nightly", concurrency="allow")


def execution_of(job, **fields) -> Execution:
    return Execution.objects.create(job=job, application=job.application, **fields)


@pytest.mark.parametrize("status, offered", [
    (Status.LOADED, ["kill", "hold", "skip"]),
    (Status.WAITING, ["kill", "hold", "skip"]),
    (Status.HELD, ["kill", "release", "skip"]),
    (Status.RUNNING, ["kill"]),
    (Status.ERROR, ["restart"]),
    (Status.COMPLETED, []),
    (Status.SKIPPED, []),
])
def test_it_offers_the_buttons_the_state_allows(admin_client_logged, job, status, offered):
    assert buttons(admin_client_logged, execution_of(job, status=status)) == offered


def test_a_viewer_sees_the_log_and_no_button(client, viewer, job):
    client.force_login(viewer)
    execution = execution_of(job, status=Status.RUNNING, started_at=timezone.now(), log="line 1\n")
    response = client.get(page(execution))
    text = response.content.decode()
    assert response.context["operations"] == []
    assert "line 1" in text and "Download log" in text
    assert "operate/" not in text and "deletelink" not in text
    assert client.post(operate(execution, "kill")).status_code == 403
    assert Execution.objects.get(pk=execution.pk).status == Status.RUNNING


def test_kill_and_skip_ask_for_a_confirmation(admin_client_logged, job):
    text = admin_client_logged.get(page(execution_of(job, status=Status.WAITING))).content.decode()
    assert text.count("return confirm(") == 2  # kill and skip; hold does not ask


def test_the_buttons_act_through_the_services_and_are_audited(admin_client_logged, job, handed_out):
    waiting = execution_of(job, status=Status.WAITING)
    response = admin_client_logged.post(operate(waiting, "hold"), follow=True)
    assert Execution.objects.get(pk=waiting.pk).status == Status.HELD
    assert [str(m) for m in response.context["messages"]] == [f"Hold #{waiting.pk}: HELD."]
    admin_client_logged.post(operate(waiting, "release"))
    assert Execution.objects.get(pk=waiting.pk).status == Status.WAITING
    admin_client_logged.post(operate(waiting, "skip"))
    assert Execution.objects.get(pk=waiting.pk).status == Status.SKIPPED
    assert list(AuditEntry.objects.order_by("id").values_list("actor", "action")) == [
        ("ada", "hold"), ("ada", "release"), ("ada", "skip")]


def test_restart_makes_a_new_execution_and_a_kill_ends_one(admin_client_logged, job, handed_out):
    failed = execution_of(job, status=Status.ERROR, error="exit code 1")
    assert admin_client_logged.post(operate(failed, "restart"))["Location"] == page(failed)
    restarted = Execution.objects.get(restart_of=failed)
    admin_client_logged.post(operate(restarted, "kill"))
    restarted.refresh_from_db()
    assert (restarted.status, restarted.error) == (Status.ERROR, "killed by ada")


def test_an_operation_that_does_not_fit_is_refused_with_the_reason(admin_client_logged, job):
    done = execution_of(job, status=Status.COMPLETED)
    response = admin_client_logged.post(operate(done, "skip"), follow=True)
    assert "only LOADED, WAITING or HELD executions can be skipped" in str(list(response.context["messages"])[0])
    assert admin_client_logged.post(operate(done, "delete")).status_code == 404
    assert admin_client_logged.get(operate(done, "kill")).status_code == 405


def test_it_goes_back_to_the_page_the_button_was_on_but_never_off_site(admin_client_logged, job):
    waiting = execution_of(job, status=Status.WAITING)
    back = reverse("admin:monitoring")
    assert admin_client_logged.post(operate(waiting, "hold"), {"next": back})["Location"] == back
    assert admin_client_logged.post(operate(waiting, "release"), {"next": "https://evil.example/"})["Location"] == page(
        waiting)


def test_a_long_log_shows_its_tail_and_downloads_whole(admin_client_logged, job):
    log = "".join(f"line {i:06d}\n" for i in range(40_000))  # 480 KB
    execution = execution_of(job, status=Status.COMPLETED, log=log, log_bytes=len(log))
    text = admin_client_logged.get(page(execution)).content.decode()
    assert "line 039999" in text and "line 000000" not in text
    download = admin_client_logged.get(reverse("admin:engine_execution_log", args=[execution.pk]) + "?download=1")
    assert download.content.decode() == log


def test_executions_are_never_deleted_in_the_console(admin_client_logged, job):
    execution = execution_of(job, status=Status.ERROR)
    assert "delete_selected" not in admin_client_logged.get(reverse("admin:engine_execution_changelist")).context[
        "action_form"].fields["action"].choices.__repr__()
    assert admin_client_logged.post(reverse("admin:engine_execution_delete", args=[execution.pk])).status_code == 403
