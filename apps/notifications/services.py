"""`notify(event, subject)`: write one Notification per matching rule, and have a worker send them
after the commit. Sending never touches the execution or the run it is about: a failing mail
server or webhook is recorded on the Notification (outcome, error) and goes no further."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from datetime import datetime

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django_q.tasks import async_task

from apps.engine import lifecycle
from apps.engine.models import Execution, Status
from apps.notifications.models import Channel, Event, LongRunningMark, Notification, NotificationRule, Outcome

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Batchdesk-Signature"


def notify(event: str, subject, **detail) -> list[Notification]:
    """Record a notification of `event` about `subject` (an Execution, or a flow run: anything with
    a `flow`) for each enabled rule that asks for it, and send them once the caller's transaction
    commits. `detail` adds to the payload. Returns the notifications written."""
    rules = list(rules_for(event, subject))
    if not rules:
        return []
    payload = {**describe(event, subject), **detail}
    notifications = Notification.objects.bulk_create([
        Notification(rule=rule, event=event, channel=rule.channel, target=rule.target, subject=payload["text"][:300],
                     payload=payload, object_type=payload["object_type"], object_id=str(subject.pk))
        for rule in rules
    ])
    ids = [n.pk for n in notifications]  # bulk_create returns them on SQLite ≥ 3.35 and PostgreSQL
    transaction.on_commit(lambda: _hand_out(ids))
    return notifications


def rules_for(event: str, subject):
    """The enabled rules that ask for `event` about `subject`: its job's and its application's."""
    application_id, job_id = scope_of(subject)
    scope = Q(application_id=application_id) | (Q(job_id=job_id) if job_id else Q(pk__in=[]))
    return (NotificationRule.objects.filter(scope, enabled=True, **{NotificationRule.EVENT_FIELDS[event]: True})
            .order_by("id"))


def scope_of(subject) -> tuple[int, int | None]:
    if isinstance(subject, Execution):
        return subject.application_id, subject.job_id
    return subject.flow.application_id, None  # a flow run


def describe(event: str, subject) -> dict:
    """The payload: what happened, to what, with a link to its console page."""
    at = timezone.now().isoformat()
    if isinstance(subject, Execution):
        job = subject.job.name
        text = {
            Event.EXECUTION_FAILED: f"{job}: execution #{subject.pk} failed (attempt {subject.attempt}): {subject.error}",
            Event.LONG_RUNNING: f"{job}: execution #{subject.pk} is running long ({_runtime(subject)})",
        }.get(event, f"{job}: execution #{subject.pk} {event}")
        return {"event": event, "at": at, "text": text, "object_type": "execution",
                "url": _link("admin:engine_execution_change", subject.pk),
                "execution": {"id": subject.pk, "job": job, "application": subject.application.name,
                              "status": subject.status, "attempt": subject.attempt, "trigger": subject.trigger,
                              "error": subject.error, "started_at": subject.started_at,
                              "finished_at": subject.finished_at, "flow_run": subject.flow_run_id}}
    flow = subject.flow
    text = f"{flow}: flow run #{subject.pk} for {subject.business_date} ended {subject.status}"
    return {"event": event, "at": at, "text": text, "object_type": "flow run",
            "url": _link("admin:flows_flowrun_change", subject.pk),
            "flow_run": {"id": subject.pk, "flow": flow.name, "application": flow.application.name,
                         "cycle": subject.cycle, "business_date": subject.business_date, "status": subject.status,
                         "started_at": subject.started_at, "finished_at": subject.finished_at}}


def _runtime(execution: Execution) -> str:
    runtime = execution.runtime
    return f"{runtime.total_seconds():.0f} s" if runtime is not None else "not started"


def _link(name: str, pk) -> str:
    try:
        return settings.BATCHDESK_BASE_URL.rstrip("/") + reverse(name, args=[pk])
    except Exception:  # a page that does not exist yet (the flow run page, before the flow work)
        return ""


def _hand_out(ids: list[int]) -> None:
    """After the commit: a worker sends them. Whatever fails here is logged, never raised into the
    code that finished the execution."""
    try:
        async_task("apps.notifications.services.deliver", ids, task_name=f"notify-{ids[0]}",
                   broker=lifecycle.queue_broker())
    except Exception:
        log.exception("could not queue notifications %s; they stay pending", ids)


def deliver(notification_ids: list[int]) -> int:
    """Send the pending notifications among `notification_ids` (a worker's task); returns how many
    were sent. A second delivery of the same task finds them sent and does nothing."""
    sent = 0
    for notification in Notification.objects.filter(pk__in=notification_ids, outcome=Outcome.PENDING).select_related(
            "rule"):
        sent += send(notification)
    return sent


def send(notification: Notification) -> bool:
    """Send one notification and record the outcome on it."""
    status = None
    try:
        if notification.channel == Channel.EMAIL:
            send_mail(f"[Batchdesk] {notification.subject}", _email_body(notification), None, [notification.target])
        else:
            status = _post(notification)
    except Exception as exc:  # recorded, never raised: a failing target affects nothing else
        error = f"{type(exc).__name__}: {exc}"[:2000]
        log.warning("notification %s to %s failed: %s", notification.pk, notification.target, error)
        Notification.objects.filter(pk=notification.pk).update(outcome=Outcome.FAILED, error=error,
                                                               response_status=status, sent_at=timezone.now())
        return False
    Notification.objects.filter(pk=notification.pk).update(outcome=Outcome.SENT, error="", response_status=status,
                                                           sent_at=timezone.now())
    return True


class WebhookRefused(Exception):
    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text[:200]}")
        self.status = status


def _post(notification: Notification) -> int:
    body = json.dumps(notification.payload, cls=DjangoJSONEncoder, sort_keys=True).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "Batchdesk",
               "X-Batchdesk-Event": notification.event, "X-Batchdesk-Delivery": str(notification.pk)}
    secret = _secret(notification.rule)
    if secret:
        headers[SIGNATURE_HEADER] = sign(secret, body)
    response = requests.post(notification.target, data=body, headers=headers,
                             timeout=settings.BATCHDESK["NOTIFY_TIMEOUT_SECONDS"], allow_redirects=False)
    if not 200 <= response.status_code < 300:
        raise WebhookRefused(response.status_code, response.text)
    return response.status_code


def sign(secret: str, body: bytes) -> str:
    """The signature header's value: `sha256=` and the hex HMAC-SHA256 of the exact body with the
    rule's shared secret. A receiver computes the same over the bytes it got and compares them with
    hmac.compare_digest."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _secret(rule: NotificationRule | None) -> str:
    from apps.connectors import crypto

    return crypto.decrypt(rule.secret_encrypted) if rule is not None and rule.secret_encrypted else ""


def _email_body(notification: Notification) -> str:
    payload = notification.payload
    lines = [payload.get("text", notification.subject), ""]
    if payload.get("url"):
        lines.append(payload["url"])
    lines.append(f"Event: {notification.event}, at {payload.get('at', '')}")
    return "\n".join(lines) + "\n"


# --- long running: found by the dispatcher, notified once per execution -------------------

_last_scan = 0.0


def notice_long_running(now: datetime | None = None, force: bool = False) -> int:
    """Mark (and notify) RUNNING executions that have become long running since the last look;
    looks at most every BATCHDESK_LONG_RUNNING_SCAN_SECONDS per process. Returns how many it marked."""
    global _last_scan
    if not force and time.monotonic() - _last_scan < settings.BATCHDESK["LONG_RUNNING_SCAN_SECONDS"]:
        return 0
    _last_scan = time.monotonic()
    candidates = (Execution.objects.filter(status=Status.RUNNING, started_at__isnull=False,
                                           long_running_mark__isnull=True)
                  .filter(Q(job__threshold_runtime_seconds__gt=0) | Q(job__average_runtime_seconds__isnull=False))
                  .select_related("job", "application"))
    marked = 0
    for execution in candidates:
        if not execution.long_running:
            continue
        try:
            with transaction.atomic():
                LongRunningMark.objects.create(execution=execution, detected_at=now or timezone.now())
                notify(Event.LONG_RUNNING, execution)
        except IntegrityError:
            continue  # another dispatcher marked it first
        marked += 1
    return marked
