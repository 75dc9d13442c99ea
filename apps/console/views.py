"""Custom console pages of the admin site (apps/console/sites.py): Batch Monitoring and the
Health Check (SPEC §8). The site's admin_view makes them need a staff login; each page asks the
one permission vocabulary for the rest."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import JsonResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.catalog.models import Flow, JobType
from apps.console import monitoring
from apps.console.health import health_report
from apps.engine import services



def _page(request, template: str, title: str, **context) -> TemplateResponse:
    return TemplateResponse(request, template, {**admin.site.each_context(request), "title": title, **context})


def _require(request, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _chosen(request) -> monitoring.Day:
    """The business date (?date=YYYY-MM-DD, default today in TIME_ZONE) and cycle (?cycle=)."""
    try:
        day = date.fromisoformat(request.GET.get("date", ""))
    except ValueError:
        day = timezone.localdate()
    return monitoring.Day(day, request.GET.get("cycle", "")[:64])


def _sections(request, day: monitoring.Day) -> dict:
    user = request.user
    return {
        "counts": monitoring.counts(day),
        "tiles": monitoring.flow_tiles(day),
        "running": monitoring.running(day, user),
        "failures": monitoring.failures(day, user),
        "waiting": monitoring.waiting(day, user),
        "held": monitoring.held(day, user),
        "activity": monitoring.activity(day),
        "limit": monitoring.LIMIT,
        "back": _page_url(day),  # where a button brings the operator back
    }


def _page_url(day: monitoring.Day) -> str:
    return reverse("admin:monitoring") + "?" + urlencode({"date": day.date.isoformat(),
                                                          **({"cycle": day.cycle} if day.cycle else {})})


def monitoring_page(request):
    """Batch Monitoring for a business date: counts, running now, failures that need a hand,
    what waits and why, held work, the activity feed and the day's timeline."""
    _require(request, "engine.view_execution")
    day = _chosen(request)
    now = timezone.now()
    return _page(
        request, "console/monitoring.html", "Batch Monitoring",
        day=day.date, cycle=day.cycle, cycles=Flow.objects.exclude(cycle="").order_by("cycle").values_list("cycle", flat=True)
        .distinct(), today=timezone.localdate(), previous=day.date - timedelta(days=1),
        next=day.date + timedelta(days=1), now=now, timeline=monitoring.timeline(day, now),
        live_url=reverse("admin:monitoring_live"), refresh_seconds=REFRESH_SECONDS, **_sections(request, day),
    )


def monitoring_live(request):
    """The refresh of Batch Monitoring without a reload: the sections of unfinished work (each a
    bounded query) and the timeline's bars of executions open at the last refresh or started since
    (`open`, `since`); with `timeline=1`, the whole timeline (when a new lane appeared)."""
    _require(request, "engine.view_execution")
    day = _chosen(request)
    now = timezone.now()
    if request.GET.get("timeline"):
        html = render_to_string("console/_timeline.html", {"timeline": monitoring.timeline(day, now)}, request)
        return JsonResponse({"timeline": html, "now": now.timestamp()})
    open_ids = [int(i) for i in request.GET.get("open", "").split(",") if i.isdigit()]
    try:
        since = datetime.fromtimestamp(float(request.GET.get("since", "")), tz=UTC)
    except (ValueError, OverflowError, OSError):
        since = now
    sections = _sections(request, day)
    html = {name: render_to_string(f"console/_{name}.html", {**sections, "request": request}, request)
            for name in LIVE_SECTIONS}
    return JsonResponse({"sections": html, "bars": monitoring.updates(day, open_ids, since, now),
                         "now": now.timestamp()})


REFRESH_SECONDS = 10
LIVE_SECTIONS = ["flows", "counts", "running", "failures", "waiting", "held", "activity"]


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
