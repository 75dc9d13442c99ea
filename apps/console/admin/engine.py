"""The execution admin: the record of what ran, its live log, and the operator's actions."""

from __future__ import annotations

import re

from django.contrib import admin
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from apps.console.admin.base import BatchModelAdmin
from apps.engine import services
from apps.engine.models import Execution, Status

STATUS_COLOURS = {
    Status.COMPLETED: "#2e7d32", Status.ERROR: "#c62828", Status.RUNNING: "#1565c0",
    Status.WAITING: "#ef6c00", Status.LOADED: "#6a1b9a", Status.SKIPPED: "#757575", Status.HELD: "#5d4037",
}


def number(execution: Execution) -> str:
    return f"#{execution.pk}"


@admin.register(Execution)
class ExecutionAdmin(BatchModelAdmin):
    list_display = ["id", "job", "application", "status_badge", "trigger", "attempt", "created_at",
                    "started_at", "runtime_display", "agent", "error"]
    list_filter = ["status", "trigger", "application", "job__kind", "warning"]
    search_fields = ["job__name", "=agent_execution_id", "external_execution_id", "triggered_by", "error"]
    list_select_related = ["job", "application", "agent"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    list_per_page = 50
    actions = ["kill", "restart", "fetch_log"]
    readonly_fields = [
        "agent_execution_id", "job", "application", "status", "trigger", "triggered_by", "parameters",
        "attempt", "restart_of", "retry_of", "external_execution_id", "execution_info", "exit_code",
        "warning", "error", "waiting_reason", "created_at", "started_at", "finished_at", "runtime_display",
        "long_running", "agent", "host", "pid", "kill_requested_by", "log_view",
    ]
    fieldsets = [
        (None, {"fields": ["job", "application", "status", "error", "waiting_reason", "exit_code", "warning",
                           "long_running"]}),
        ("Trigger", {"fields": ["trigger", "triggered_by", "parameters", "attempt", "restart_of", "retry_of"]}),
        ("Timing", {"fields": ["created_at", "started_at", "finished_at", "runtime_display"]}),
        ("Where", {"fields": ["agent", "host", "pid", "agent_execution_id", "external_execution_id",
                             "execution_info", "kill_requested_by"]}),
        ("Log", {"fields": ["log_view"]}),
    ]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # executions come from triggers, never from a form

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # the record of what ran is not edited; kill/restart are actions

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # history is removed only by the purge_executions housekeeping task

    def has_kill_permission(self, request: HttpRequest) -> bool:
        return self.has_named_permission(request, "kill")

    def has_restart_permission(self, request: HttpRequest) -> bool:
        return self.has_named_permission(request, "restart")

    def has_fetch_log_permission(self, request: HttpRequest) -> bool:
        return self.has_named_permission(request, "fetch_log")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj: Execution) -> str:
        label = obj.status + (" ⚠" if obj.warning else "")
        return format_html('<strong style="color:{}">{}</strong>', STATUS_COLOURS.get(obj.status, "#000"), label)

    @admin.display(description="runtime")
    def runtime_display(self, obj: Execution) -> str:
        runtime = obj.runtime
        return f"{runtime.total_seconds():.1f}s" if runtime is not None else "-"

    @admin.display(description="log")
    def log_view(self, obj: Execution) -> str:
        tail_url = reverse("admin:engine_execution_log", args=[obj.pk])
        return format_html(
            '<pre id="execution-log" data-tail-url="{}" data-offset="{}" data-active="{}" '
            'style="max-height:40em;overflow:auto;white-space:pre-wrap;background:#111;color:#eee;padding:1em">{}</pre>'
            '<p><a href="{}?download=1">Download log</a></p>',
            tail_url, obj.log_since(0)[1], "1" if obj.is_active else "", obj.log or "(no output yet)", tail_url,
        )

    def get_urls(self):
        return [
            path("<int:pk>/log/", self.admin_site.admin_view(self.log_tail), name="engine_execution_log"),
        ] + super().get_urls()

    def log_tail(self, request: HttpRequest, pk: int):
        """The log from byte `offset` on, for the page's live tail (and `download=1` for the whole)."""
        if not self.has_view_permission(request):
            return JsonResponse({"error": "FORBIDDEN"}, status=403)
        execution = get_object_or_404(Execution, pk=pk)
        if request.GET.get("download"):
            response = HttpResponse(execution.log.encode(), content_type="text/plain; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="execution-{pk}.log"'
            return response
        raw = request.GET.get("offset", "0")
        text, next_offset = execution.log_since(int(raw) if re.fullmatch(r"[0-9]{1,18}", raw) else 0)
        return JsonResponse({"status": execution.status, "offset": next_offset, "text": text,
                             "active": execution.is_active})

    @admin.action(description="Kill selected executions", permissions=["kill"])
    def kill(self, request, queryset):
        by = request.user.get_username()
        self.apply_to_each(request, self._with_jobs(queryset), lambda e: services.kill(e, by=by), "Kill requested for",
                           name=number)

    @admin.action(description="Restart selected executions (ERROR only)", permissions=["restart"])
    def restart(self, request, queryset):
        by = request.user.get_username()
        self.apply_to_each(request, self._with_jobs(queryset), lambda e: services.restart(e, by=by), "Restarted",
                           name=number, outcome=lambda new: f"as #{new.pk}")

    @admin.action(description="Fetch the external system's log now (custom job types)", permissions=["fetch_log"])
    def fetch_log(self, request, queryset):
        self.apply_to_each(request, self._with_jobs(queryset), services.fetch_log, "Fetched the log of",
                           name=number)

    @staticmethod
    def _with_jobs(queryset):
        return queryset.select_related("job__custom_type", "job__process__flow", "application")

    class Media:
        js = ["batchdesk/log_tail.js"]

