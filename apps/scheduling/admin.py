from __future__ import annotations

from django.contrib import admin

from apps.scheduling.models import Schedule


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ["__str__", "kind", "timezone", "misfire", "active", "next_fire_at", "last_fired_at", "fire_count"]
    list_filter = ["active", "kind", "misfire", "timezone"]
    search_fields = ["job__name", "flow__name", "cron"]
    list_select_related = ["job", "flow__application"]
    readonly_fields = ["next_fire_at", "last_fired_at", "fire_count"]
    actions = ["pause", "resume"]

    @admin.action(description="Pause selected schedules", permissions=["change"])
    def pause(self, request, queryset):
        self.message_user(request, f"Paused {queryset.update(active=False)} schedules.")

    @admin.action(description="Resume selected schedules", permissions=["change"])
    def resume(self, request, queryset):
        self.message_user(request, f"Resumed {queryset.update(active=True)} schedules.")
