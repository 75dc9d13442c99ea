"""Periodic system checks of the custom job types (SPEC §3 "Validation", §8 Health Check).

A dispatcher step (`run_due`) finds the types whose last check is older than
BATCHDESK_SYSTEM_CHECK_SECONDS and hands each to the workers (`check_task`), which call the
check and keep its answer on the type (services.system_check): the Health Check page and
/api/v1/health read it. The HTTP call never holds the dispatcher's tick.

Several dispatchers: a type is claimed by a conditional update of `last_check_at` (its old value
in the WHERE), so one dispatcher hands it out per period. The claim moves `last_check_at` to now
before the answer comes; the task writes the answer a moment later. A lost task leaves the
previous answer in place for one more period.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task

from apps.catalog.models import JobType
from apps.engine import lifecycle, services


def run_due(now: datetime | None = None) -> int:
    """Hand out the system check of every custom job type that is due; returns how many."""
    period = settings.BATCHDESK["SYSTEM_CHECK_SECONDS"]
    if period <= 0:
        return 0  # periodic checks turned off: only the button and the API run them
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=period)
    due = (JobType.objects.exclude(check_path="").filter(Q(last_check_at__isnull=True) | Q(last_check_at__lt=cutoff))
           .values_list("pk", "last_check_at"))
    handed = 0
    for pk, last in due:
        if JobType.objects.filter(pk=pk, last_check_at=last).update(last_check_at=now):
            async_task("apps.engine.system_checks.check_task", pk, task_name=f"system-check-{pk}",
                       broker=lifecycle.queue_broker())
            handed += 1
    return handed


def check_task(job_type_id: int) -> str:
    """Run one type's system check (a worker's task); a type deleted meanwhile is nothing to do."""
    job_type = JobType.objects.filter(pk=job_type_id).first()
    if job_type is None:
        return "gone"
    return "up" if services.system_check(job_type).up else "down"
