"""The schedule admin: next fire times, recent fires, pause and resume."""

from __future__ import annotations

import zoneinfo
from datetime import timezone

from django.contrib import admin
from django.utils.html import format_html, format_html_join
from django_q.models import Schedule as QueueSchedule

from apps.console.admin.base import BatchModelAdmin
from apps.scheduling import services
from apps.scheduling.models import Schedule

UTC = timezone.utc

# Operators schedule jobs with Batchdesk's own schedules; django-q2's would only confuse them.
admin.site.unregister(QueueSchedule)


def _started(fire) -> str:
    """What a fire started: an execution of its job, or a run of its flow."""
    if fire.execution_id:
        return f"execution #{fire.execution_id}"
    return f"run #{fire.flow_run_id}" if fire.flow_run_id else "-"


@admin.register(Schedule)
class ScheduleAdmin(BatchModelAdmin):
    list_display = ["__str__", "kind", "timezone", "misfire", "active", "next_fire_at", "last_fired_at",
                    "fire_count", "inactive_reason"]
    list_filter = ["active", "kind", "misfire", "timezone"]
    search_fields = ["job__name", "flow__name", "cron"]
    list_select_related = ["job", "flow__application"]
    autocomplete_fields = ["job", "flow"]
    readonly_fields = ["next_fire_times", "next_fire_at", "last_fired_at", "fire_count", "inactive_reason",
                       "recent_fires"]
    fieldsets = [
        (None, {"description": "The target: a job (a fire triggers it) or a flow (a fire starts a run).",
                "fields": ["job", "flow", "kind", "cron", "interval_seconds", "start_at", "end_at", "repeats", "timezone",
                           "misfire", "active", "extra"]}),
        ("Firing", {"fields": ["next_fire_times", "last_fired_at", "fire_count", "inactive_reason", "recent_fires"]}),
    ]
    actions = ["pause", "resume"]

    class Media:
        js = ["batchdesk/cron_preview.js"]

    @admin.display(description="next 5 fire times")
    def next_fire_times(self, obj: Schedule) -> str:
        if obj.pk is None:
            return "-"
        times = obj.upcoming(5)
        if not times:
            return f"none ({obj.inactive_reason or 'inactive'})"
        zone = zoneinfo.ZoneInfo(obj.timezone)
        return format_html(
            "<table><tr><th>{}</th><th>UTC</th></tr>{}</table>",
            obj.timezone,
            format_html_join("", "<tr><td>{}</td><td>{}</td></tr>",
                             ((t.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z"),
                               t.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")) for t in times)),
        )

    @admin.display(description="recent fires")
    def recent_fires(self, obj: Schedule) -> str:
        fires = obj.fired_slots.select_related("execution")[:20] if obj.pk else []
        if not fires:
            return "none yet"
        return format_html(
            "<table><tr><th>slot (UTC)</th><th>late</th><th>outcome</th><th>started</th><th>reason</th></tr>{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}s</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                             ((f.slot.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                               f"{f.lateness.total_seconds():.2f}", f.outcome,
                               _started(f), f.reason) for f in fires)),
        )

    def save_model(self, request, obj: Schedule, form, change: bool) -> None:
        services.reschedule(obj)

    def has_pause_permission(self, request) -> bool:
        return self.has_named_permission(request, "pause")

    @admin.action(description="Pause selected schedules", permissions=["pause"])
    def pause(self, request, queryset):
        for schedule in queryset:
            services.pause(schedule, by=request.user.get_username())
        self.message_user(request, f"Paused {queryset.count()} schedules.")

    @admin.action(description="Resume selected schedules", permissions=["pause"])
    def resume(self, request, queryset):
        resumed = [services.resume(schedule, by=request.user.get_username()) for schedule in queryset]
        self.message_user(request, f"Resumed {sum(s.active for s in resumed)} of {len(resumed)} schedules.")
