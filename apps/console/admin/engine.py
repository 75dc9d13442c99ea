"""The execution admin: the record of what ran, its live log, and the operator's actions."""

from __future__ import annotations

import re
import uuid

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from apps.catalog.models import JobDefinition
from apps.console.admin.base import BatchModelAdmin
from apps.console.operations import OPERATIONS, offered
from apps.console.paging import EstimatedCountPaginator
from apps.engine import services
from apps.engine.models import Execution, Status
from apps.errors import BatchError

STATUS_COLOURS = {
    Status.COMPLETED: "#2e7d32", Status.ERROR: "#c62828", Status.RUNNING: "#1565c0",
    Status.WAITING: "#ef6c00", Status.LOADED: "#6a1b9a", Status.SKIPPED: "#757575", Status.HELD: "#5d4037",
}


# Jobs whose names a partial search matches, at most.
JOBS_SEARCHED = 500
# What the execution page shows of a log at first; the download has the whole.
PAGE_LOG_BYTES = 256 * 1024


def number(execution: Execution) -> str:
    return f"#{execution.pk}"


def bulk(operation, description: str, verb: str, outcome=None):
    """The changelist action of one operation: the same service and permission as its button."""
    def action(model_admin, request, queryset):
        by = request.user.get_username()
        model_admin.apply_to_each(request, model_admin._with_jobs(queryset), lambda e: operation.run(e, by=by), verb,
                                  name=number, outcome=outcome)
    action.__name__ = operation.name
    return admin.action(description=description, permissions=[operation.name])(action)


class JobFilter(admin.SimpleListFilter):
    """One job, exactly (`?job__id__exact=<id>`, as the job page links it): an indexed lookup, where
    a search over the joined job name would scan the history. Lists only the chosen job, so that it
    shows and can be cleared; no list of every job."""

    title = "job"
    parameter_name = "job__id__exact"

    def lookups(self, request, model_admin):
        value = self.value()
        if not (value and value.isdigit()):
            return []
        return list(JobDefinition.objects.filter(pk=value).values_list("pk", "name"))

    def queryset(self, request, queryset):
        value = self.value()
        if value and value.isdigit():
            return queryset.filter(job_id=int(value))
        return queryset


class ExecutionChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        # The list never shows a log (up to BATCHDESK_LOG_MAX_BYTES each): not read for 50 rows a page.
        return super().get_queryset(request, exclude_parameters).defer("log", "execution_info")


@admin.register(Execution)
class ExecutionAdmin(BatchModelAdmin):
    list_display = ["id", "job", "application", "status_badge", "trigger", "attempt", "created_at",
                    "started_at", "runtime_display", "agent", "error"]
    list_filter = ["status", ("created_at", admin.DateFieldListFilter), "trigger", "application", JobFilter,
                   "job__kind", "warning"]
    # The search is get_search_results below: by job (exact name, or part of one), id, agent or
    # external execution id, or who triggered it; never a scan of the history's text.
    search_fields = ["job__name"]
    search_help_text = ("A job's name (or part of one), #id, an agent or external execution id, or who "
                        "triggered it.")
    list_select_related = ["job", "application", "agent"]
    # No date_hierarchy: its month links cost a DISTINCT over the whole history (0.2 s for a million
    # rows); the "created" filter (today, past 7 days, this month, …) costs nothing more than the page.
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 50
    actions = ["kill", "restart", "hold", "release", "skip", "fetch_log"]
    readonly_fields = [
        "agent_execution_id", "job", "application", "status", "trigger", "triggered_by", "parameters",
        "attempt", "restart_of", "retry_of", "external_execution_id", "execution_info", "exit_code",
        "warning", "error", "waiting_reason", "created_at", "started_at", "finished_at", "runtime_display",
        "long_running", "agent", "host", "pid", "kill_requested_by",
    ]
    fieldsets = [
        (None, {"fields": ["job", "application", "status", "error", "waiting_reason", "exit_code", "warning",
                           "long_running"]}),
        ("Trigger", {"fields": ["trigger", "triggered_by", "parameters", "attempt", "restart_of", "retry_of"]}),
        ("Timing", {"fields": ["created_at", "started_at", "finished_at", "runtime_display"]}),
        ("Where", {"fields": ["agent", "host", "pid", "agent_execution_id", "external_execution_id",
                             "execution_info", "kill_requested_by"]}),
    ]
    # The page (templates/admin/engine/execution/change_form.html) adds the operator's buttons above
    # and the live log, full width, below.

    def get_changelist(self, request: HttpRequest, **kwargs):
        return ExecutionChangeList

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        """A job's exact name filters by its id (the index execution_job_recent); part of a name
        looks in the jobs table first (small) and filters by those ids; a number is an execution id,
        a UUID an agent execution id; the term also matches an external id or who triggered, exactly."""
        term = search_term.strip()
        if not term:
            return queryset, False
        job = JobDefinition.objects.filter(name=term).values_list("pk", flat=True).first()
        if job is not None:
            return queryset.filter(job_id=job), False
        found = Q(job_id__in=JobDefinition.objects.filter(name__icontains=term).values("pk")[:JOBS_SEARCHED])
        found |= Q(external_execution_id=term) | Q(triggered_by=term)
        if re.fullmatch(r"#?[0-9]{1,18}", term):
            found |= Q(pk=int(term.lstrip("#")))
        try:
            found |= Q(agent_execution_id=uuid.UUID(term))
        except ValueError:
            pass
        return queryset.filter(found), False

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

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(self.log_context(obj), operations=offered(obj, request.user))
        return super().render_change_form(request, context, add, change, form_url, obj)

    @staticmethod
    def log_context(execution: Execution) -> dict:
        """The log as the page first shows it: its last PAGE_LOG_BYTES (the whole log is a download),
        and the offset from which the live tail goes on."""
        data = execution.log.encode()
        shown = data[-PAGE_LOG_BYTES:]
        return {"log_url": reverse("admin:engine_execution_log", args=[execution.pk]),
                "log_text": shown.decode("utf-8", errors="replace"), "log_cut": len(data) - len(shown),
                "log_offset": execution.log_since(len(data))[1], "log_active": execution.is_active,
                "log_bytes": execution.log_bytes}

    def get_urls(self):
        return [
            path("<int:pk>/log/", self.admin_site.admin_view(self.log_tail), name="engine_execution_log"),
            path("<int:pk>/operate/<slug:operation>/", self.admin_site.admin_view(require_POST(self.operate)),
                 name="engine_execution_operate"),
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

    def operate(self, request: HttpRequest, pk: int, operation: str):
        """One operation (kill, restart, hold, release, skip) on one execution, from a button of its
        page or of the monitoring page; back to where the button was, with what happened."""
        op = OPERATIONS.get(operation)
        if op is None:
            raise Http404(f"No operation {operation!r}.")
        if not request.user.has_perm(op.permission):
            raise PermissionDenied
        execution = get_object_or_404(self._with_jobs(Execution.objects.all()), pk=pk)
        try:
            result = op.run(execution, by=request.user.get_username())
        except BatchError as exc:
            self.message_user(request, f"#{execution.pk}: {exc.message}", level=messages.ERROR)
        else:
            done = f" as #{result.pk}" if result.pk != execution.pk else f": {result.status}"
            self.message_user(request, f"{op.label} #{execution.pk}{done}.")
        back = request.POST.get("next", "")
        if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
            back = reverse("admin:engine_execution_change", args=[execution.pk])
        return redirect(back)

    def has_hold_permission(self, request: HttpRequest) -> bool:
        return self.has_named_permission(request, "hold")

    def has_release_permission(self, request: HttpRequest) -> bool:
        return self.has_named_permission(request, "release")

    def has_skip_permission(self, request: HttpRequest) -> bool:
        return self.has_named_permission(request, "skip")

    kill = bulk(OPERATIONS["kill"], "Kill selected executions", "Kill requested for")
    restart = bulk(OPERATIONS["restart"], "Restart selected executions (ERROR only)", "Restarted",
                   outcome=lambda new: f"as #{new.pk}")
    hold = bulk(OPERATIONS["hold"], "Hold selected executions (LOADED or WAITING)", "Held")
    release = bulk(OPERATIONS["release"], "Release selected executions (HELD)", "Released")
    skip = bulk(OPERATIONS["skip"], "Skip selected executions (LOADED, WAITING or HELD)", "Skipped")

    @admin.action(description="Fetch the external system's log now (custom job types)", permissions=["fetch_log"])
    def fetch_log(self, request, queryset):
        self.apply_to_each(request, self._with_jobs(queryset), services.fetch_log, "Fetched the log of",
                           name=number)

    @staticmethod
    def _with_jobs(queryset):
        return queryset.select_related("job__custom_type", "job__process__flow", "application")

    class Media:
        js = ["batchdesk/log_tail.js"]

