"""Custom console pages of the admin site (apps/console/admin/site.py): Batch Monitoring and the
Health Check (SPEC §8). The site's admin_view makes them need a staff login; each page asks the
one permission vocabulary for the rest."""

from __future__ import annotations

from datetime import datetime, time, timedelta

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.catalog.models import JobType
from apps.console.health import health_report
from apps.engine import services
from apps.engine.models import Execution, Status

TIMELINE_LIMIT = 300


def _page(request, template: str, title: str, **context) -> TemplateResponse:
    return TemplateResponse(request, template, {**admin.site.each_context(request), "title": title, **context})


def _day_bounds(now: datetime) -> tuple[datetime, datetime]:
    start = timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))
    return start, start + timedelta(days=1)


def _require(request, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def monitoring(request):
    """Status counts, running now, recent failures, activity and today's timeline."""
    _require(request, "engine.view_execution")
    now = timezone.now()
    day_start, day_end = _day_bounds(now)
    today = Execution.objects.filter(created_at__gte=day_start, created_at__lt=day_end)
    counts = dict(today.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    related = Execution.objects.select_related("job", "application", "agent")
    running = list(related.filter(status=Status.RUNNING).order_by("started_at")[:100])
    timeline = []
    for execution in related.filter(started_at__lt=day_end).exclude(started_at=None).filter(
            finished_at__gte=day_start).order_by("started_at")[:TIMELINE_LIMIT]:
        timeline.append(_bar(execution, day_start, now))
    for execution in running:
        timeline.append(_bar(execution, day_start, now))
    return _page(
        request, "console/monitoring.html", "Batch Monitoring",
        counts=[(status, counts.get(status, 0)) for status in Status.values],
        running=[(execution, execution.long_running) for execution in running],
        failures=related.filter(status=Status.ERROR).order_by("-finished_at")[:20],
        activity=related.order_by("-created_at")[:30],
        waiting=related.filter(status__in=[Status.LOADED, Status.WAITING]).order_by("created_at")[:50],
        timeline=timeline, day=day_start, now=now,
    )


def _bar(execution: Execution, day_start: datetime, now: datetime) -> dict:
    """Where an execution's bar sits on today's 24-hour axis, in percent."""
    day = timedelta(days=1).total_seconds()
    start = max(execution.started_at, day_start)
    end = min(execution.finished_at or now, day_start + timedelta(days=1))
    left = (start - day_start).total_seconds() / day * 100
    width = max((end - start).total_seconds() / day * 100, 0.15)
    return {"execution": execution, "left": round(left, 3), "width": round(width, 3)}


def health(request):
    _require(request, "agents.view_agent")
    return _page(request, "console/health.html", "Health Check", report=health_report(),
                 can_check=request.user.has_perm("catalog.check_jobtype"))


@require_POST
def run_checks(request):
    """Run every custom job type's system check now."""
    _require(request, "catalog.check_jobtype")
    for job_type in JobType.objects.order_by("name"):
        result = services.system_check(job_type)
        level = messages.SUCCESS if result.up else messages.ERROR
        messages.add_message(request, level, f"{job_type.name}: {'up' if result.up else 'down'} {result.error}")
    return redirect("admin:health")
