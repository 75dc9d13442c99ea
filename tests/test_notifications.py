"""Notifications: e-mail and signed webhooks on a final failure (never a retry), on long running
(once per execution) and on a flow run's end; per application and per job; every one recorded;
a failing target affects nothing else; the shared secret is never shown."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
import requests
import responses
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from apps.engine import lifecycle
from apps.engine.models import Execution, Status
from apps.notifications import receivers, services
from apps.notifications.models import Channel, Event, LongRunningMark, Notification, NotificationRule, Outcome

pytestmark = pytest.mark.django_db

HOOK = "https://hooks.example.com/batch"


def rule(channel=Channel.EMAIL, target="ops@example.com", secret="", **fields) -> NotificationRule:
    made = NotificationRule(channel=channel, target=target, **fields)
    if secret:
        made.set_secret(secret)
    made.full_clean()
    made.save()
    return made


def running(job, seconds: float = 1) -> Execution:
    return Execution.objects.create(job=job, application=job.application, status=Status.RUNNING,
                                    started_at=timezone.now() - timedelta(seconds=seconds))


def fail(execution: Execution, capture) -> None:
    with capture(execute=True):
        lifecycle.finish(execution, Status.ERROR, error="exit code 2")


def test_a_final_failure_is_mailed_to_the_applications_rule_and_recorded(
        make_job, app, sync_queue, django_capture_on_commit_callbacks):
    rule(application=app)
    execution = running(make_job("nightly"))
    fail(execution, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["ops@example.com"]
    assert f"nightly: execution #{execution.pk} failed (attempt 1): exit code 2" in mail.outbox[0].subject
    sent = Notification.objects.get()
    assert (sent.event, sent.outcome, sent.object_id) == (Event.EXECUTION_FAILED, Outcome.SENT, str(execution.pk))


def test_a_failure_that_is_retried_notifies_nobody(make_job, app, sync_queue, django_capture_on_commit_callbacks,
                                                   handed_out):
    rule(application=app)
    fail(running(make_job("nightly", max_retries=1)), django_capture_on_commit_callbacks)
    assert Notification.objects.count() == 0 and mail.outbox == []


def test_rules_are_per_job_or_per_application_and_per_event(make_job, app, sync_queue,
                                                           django_capture_on_commit_callbacks):
    watched, other = make_job("watched"), make_job("other")
    rule(job=watched, target="watcher@example.com")
    rule(application=app, target="longrunning@example.com", on_failure=False, on_long_running=True)
    rule(application=app, target="off@example.com", enabled=False)
    fail(running(other), django_capture_on_commit_callbacks)
    fail(running(watched), django_capture_on_commit_callbacks)
    assert [m.to for m in mail.outbox] == [["watcher@example.com"]]


def test_a_webhook_gets_json_signed_with_the_shared_secret(make_job, app, sync_queue,
                                                           django_capture_on_commit_callbacks):
    rule(application=app, channel=Channel.WEBHOOK, target=HOOK, secret="s3cr3t-hook")
    execution = running(make_job("nightly"))
    with responses.RequestsMock() as mock:
        mock.post(HOOK, status=204)
        fail(execution, django_capture_on_commit_callbacks)
        request = mock.calls[0].request
    body = json.loads(request.body)
    assert (body["event"], body["execution"]["id"], body["execution"]["status"]) == ("execution_failed", execution.pk,
                                                                                     "ERROR")
    expected = "sha256=" + hmac.new(b"s3cr3t-hook", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Batchdesk-Signature"] == expected
    assert request.headers["X-Batchdesk-Event"] == "execution_failed"
    assert Notification.objects.get().response_status == 204


@pytest.mark.parametrize("answer", [{"status": 500, "body": "down"}, {"body": requests.ConnectTimeout("timed out")}])
def test_a_failing_webhook_is_recorded_and_affects_nothing_else(make_job, app, sync_queue, answer,
                                                                django_capture_on_commit_callbacks):
    rule(application=app, channel=Channel.WEBHOOK, target=HOOK)
    execution = running(make_job("nightly"))
    with responses.RequestsMock() as mock:
        mock.post(HOOK, **answer)
        fail(execution, django_capture_on_commit_callbacks)
    execution.refresh_from_db()
    assert (execution.status, execution.error) == (Status.ERROR, "exit code 2")
    sent = Notification.objects.get()
    assert sent.outcome == Outcome.FAILED and sent.error


def test_a_broken_receiver_never_reaches_the_engine(make_job, app, monkeypatch, django_capture_on_commit_callbacks):
    rule(application=app)
    monkeypatch.setattr(receivers, "notify", lambda *a, **k: 1 / 0)
    execution = running(make_job("nightly"))
    fail(execution, django_capture_on_commit_callbacks)  # raises nothing
    assert Execution.objects.get(pk=execution.pk).status == Status.ERROR


def test_long_running_is_noticed_once_per_execution(make_job, app, sync_queue, django_capture_on_commit_callbacks):
    rule(application=app, on_failure=False, on_long_running=True)
    slow = running(make_job("slow", threshold_runtime_seconds=60), seconds=120)
    running(make_job("fine", threshold_runtime_seconds=600), seconds=120)
    running(make_job("unknown"), seconds=10_000)  # no threshold, no history: never long running
    with django_capture_on_commit_callbacks(execute=True):
        assert services.notice_long_running(force=True) == 1
    assert services.notice_long_running(force=True) == 0
    assert list(LongRunningMark.objects.values_list("execution", flat=True)) == [slow.pk]
    assert [m.subject for m in mail.outbox] == [f"[Batchdesk] slow: execution #{slow.pk} is running long (120 s)"]


def test_the_scan_runs_at_most_once_a_period(make_job, settings):
    settings.BATCHDESK = {**settings.BATCHDESK, "LONG_RUNNING_SCAN_SECONDS": 3600}
    services.notice_long_running(force=True)
    running(make_job("slow", threshold_runtime_seconds=1), seconds=120)
    assert services.notice_long_running() == 0


def test_a_flow_runs_end_notifies_its_applications_rules(app, sync_queue, django_capture_on_commit_callbacks):
    rule(application=app, on_failure=False, on_flow_run_end=True)
    flow = SimpleNamespace(application_id=app.pk, application=app, name="Nightly", __str__=lambda self: "RMS/Nightly")
    flow_run = SimpleNamespace(pk=7, flow=flow, cycle="Nightly", business_date="2026-11-22", status="COMPLETED",
                               started_at=None, finished_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        receivers.on_flow_run_finished(sender=None, flow_run=flow_run)
    sent = Notification.objects.get()
    assert (sent.event, sent.object_type, sent.object_id) == (Event.FLOW_RUN_FINISHED, "flow run", "7")
    assert sent.payload["flow_run"]["status"] == "COMPLETED"


def test_the_secret_is_write_only_in_the_admin(admin_client_logged, app):
    add = reverse("admin:notifications_notificationrule_add")
    response = admin_client_logged.post(add, {"application": app.pk, "channel": "webhook", "target": HOOK,
                                              "secret": "very-secret-value", "on_failure": "on", "enabled": "on"})
    assert response.status_code == 302, response.context["adminform"].form.errors
    saved = NotificationRule.objects.get()
    assert saved.has_secret and "very-secret-value" not in saved.secret_encrypted
    for url in [reverse("admin:notifications_notificationrule_change", args=[saved.pk]),
                reverse("admin:notifications_notificationrule_changelist"), reverse("admin:audit_auditentry_changelist")]:
        assert "very-secret-value" not in admin_client_logged.get(url).content.decode()


def test_a_rule_needs_one_scope_a_fitting_target_and_an_event(app, make_job):
    with pytest.raises(Exception) as refused:
        rule(channel=Channel.EMAIL, target="not-an-address", on_failure=False)
    assert set(refused.value.message_dict) == {"application", "target", "on_failure"}
    with pytest.raises(Exception):
        rule(channel=Channel.WEBHOOK, target="ftp://x", application=app, job=make_job("j"))


def test_a_viewer_reads_rules_and_notifications_but_changes_nothing(client, viewer, app):
    rule(application=app)
    client.force_login(viewer)
    assert client.get(reverse("admin:notifications_notificationrule_changelist")).status_code == 200
    assert client.get(reverse("admin:notifications_notification_changelist")).status_code == 200
    assert client.get(reverse("admin:notifications_notificationrule_add")).status_code == 403
