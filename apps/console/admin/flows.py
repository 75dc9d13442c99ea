"""Flow runs in the console: the run list, the run page (its processes drawn as a dependency graph,
each job with its latest execution, and the operator's actions), and a flow's own page, which draws
its definition and starts a run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator
from django.views.decorators.http import require_POST

from apps.console.admin.base import BatchModelAdmin
from apps.console.admin.engine import STATUS_COLOURS
from apps.console.monitoring import timeline_of
from apps.console.operations import offered
from apps.errors import BatchError
from apps.flows import services as flows
from apps.flows.graph import Graph, critical_path, flow_graph
from apps.flows.models import FlowRun, RunStatus

RUN_COLOURS = {RunStatus.RUNNING: "#1565c0", RunStatus.COMPLETED: "#2e7d32", RunStatus.ERROR: "#c62828"}


def coloured(graph):
    """Each process node gets the colour of its status, as the console draws statuses everywhere."""
    for process in graph.processes:
        process.colour = STATUS_COLOURS.get(process.status, "")
    return graph


class FlowFilter(admin.RelatedFieldListFilter):
    """By flow, the flows read with their applications in one query (a flow is shown as
    application/flow: the plain filter read each flow's application on its own, a query per flow)."""

    def field_choices(self, field, request, model_admin):
        from apps.catalog.models import Flow

        return [(flow.pk, str(flow)) for flow in Flow.objects.select_related("application")]


@dataclass
class JobRow:
    """A job of the run as its page lists it: every cell made here, once (the template's url tags,
    date and number filters on each row were half of the page for a run of 1,000 jobs)."""

    process: str  # on the first job of its process only
    sequence: str
    job: str
    status: str
    shown_status: str
    href: str = ""
    number: str = ""
    attempt: str = ""
    started: str = ""
    ended: str = ""
    duration: str = ""
    reason: str = ""
    buttons: list[dict] = field(default_factory=list)


def job_rows(graph: Graph, run: FlowRun, user) -> list[JobRow]:
    """Each job of the run with its latest execution and the buttons that fit (when the run is open)."""
    link = reverse("admin:engine_execution_change", args=[0]).replace("/0/", "/{}/")
    operate = reverse("admin:engine_execution_operate", args=[0, "op"]).replace("/0/operate/op/", "/{}/operate/{}/")

    def clock(moment) -> str:
        return f"{timezone.localtime(moment):%H:%M:%S}" if moment else ""

    rows = []
    for process in graph.processes:
        for i, job in enumerate(process.jobs):
            row = JobRow(process.name if i == 0 else "", str(job.sequence), job.job, job.status, job.status)
            rows.append(row)
            execution = job.execution
            if execution is None:
                continue
            if execution.skipped_in_flow:
                row.shown_status = f"{job.status} ({execution.skipped_in_flow})"
            row.href, row.number = link.format(execution.pk), f"#{execution.pk}"
            row.attempt = f" attempt {execution.attempt}" if execution.attempt > 1 else ""
            row.started, row.ended = clock(execution.started_at), clock(execution.finished_at)
            runtime = execution.runtime
            row.duration = f"{runtime.total_seconds():.1f} s" if runtime else ""
            reason = execution.waiting_reason or execution.error
            row.reason = Truncator(reason).chars(80) if len(reason) > 80 else reason
            if run.is_open:
                row.buttons = [{"url": operate.format(execution.pk, op.name), "name": op.name, "label": op.label,
                                "confirm": op.confirm} for op in offered(execution, user)]
    return rows


@admin.register(FlowRun)
class FlowRunAdmin(BatchModelAdmin):
    list_display = ["id", "flow", "business_date", "status_badge", "held", "trigger", "triggered_by", "started_at",
                    "finished_at"]
    list_filter = ["status", "held", ("flow", FlowFilter), "business_date"]
    list_select_related = ["flow__application"]
    search_fields = ["flow__name", "triggered_by"]
    date_hierarchy = "business_date"
    show_full_result_count = False
    actions = ["hold", "release", "kill"]
    readonly_fields = ["flow", "cycle", "business_date", "status", "held", "trigger", "triggered_by", "parameters",
                       "created_at", "started_at", "finished_at"]
    change_form_template = "admin/flows/flowrun/change_form.html"

    def has_add_permission(self, request) -> bool:
        return False  # a run is started from its flow's page, the API or a schedule

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # a run moves by its executions and the operator's actions, never by a form

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def has_hold_permission(self, request) -> bool:
        return self.has_named_permission(request, "hold")

    def has_kill_permission(self, request) -> bool:
        return self.has_named_permission(request, "kill")

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: FlowRun) -> str:
        return format_html('<strong style="color:{}">{}</strong>', RUN_COLOURS.get(run.status, "#000"), run.status)

    @admin.action(description="Hold selected runs (no new starts)", permissions=["hold"])
    def hold(self, request, queryset):
        by = request.user.get_username()
        self.apply_to_each(request, queryset, lambda run: flows.hold(run, by=by), "Held")

    @admin.action(description="Release selected runs", permissions=["hold"])
    def release(self, request, queryset):
        by = request.user.get_username()
        self.apply_to_each(request, queryset, lambda run: flows.release(run, by=by), "Released")

    @admin.action(description="Kill selected runs (every active execution; the run ends ERROR)", permissions=["kill"])
    def kill(self, request, queryset):
        by = request.user.get_username()
        self.apply_to_each(request, queryset, lambda run: flows.kill(run, by=by), "Killed")

    def get_urls(self):
        return [
            path("<int:pk>/run/<str:action>/", self.admin_site.admin_view(require_POST(self.run_action)),
                 name="flows_flowrun_action"),
        ] + super().get_urls()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            graph = coloured(flow_graph(obj.flow, obj))
            chain = critical_path(graph)
            # The buttons of each job's latest execution, as everywhere.
            context.update(graph=graph, run=obj, jobs=job_rows(graph, obj, request.user),
                           can_hold=self.has_hold_permission(request),
                           can_kill=self.has_kill_permission(request), critical=[job.job for job in chain],
                           timeline=timeline_of(obj.executions.all(),
                                                critical={job.execution.job_id for job in chain}))
        return super().render_change_form(request, context, add, change, form_url, obj)

    @staticmethod
    def _back(pk: int):
        return redirect(reverse("admin:flows_flowrun_change", args=[pk]))

    def run_action(self, request: HttpRequest, pk: int, action: str):
        """Hold, release or kill the run from its page."""
        operations = {"hold": (flows.hold, "hold"), "release": (flows.release, "hold"), "kill": (flows.kill, "kill")}
        if action not in operations:
            return self._back(pk)
        operation, permission = operations[action]
        if not self.has_named_permission(request, permission):
            raise PermissionDenied
        self._report(request, lambda: operation(get_object_or_404(FlowRun, pk=pk), by=request.user.get_username()),
                     f"Run {pk}: {action} done.")
        return self._back(pk)

    def _report(self, request, operation, done: str) -> None:
        try:
            operation()
        except BatchError as exc:
            self.message_user(request, exc.message, level="ERROR")
        else:
            self.message_user(request, done)


@require_POST
def start_run_view(request: HttpRequest, pk: int, model_admin: BatchModelAdmin):
    """Start a run of the flow from its page, for a business date, with parameters."""
    from apps.catalog.models import Flow
    from apps.engine.models import Trigger

    if not request.user.has_perm("flows.add_flowrun"):
        raise PermissionDenied
    flow = get_object_or_404(Flow, pk=pk)
    try:
        day = date.fromisoformat(request.POST["business_date"]) if request.POST.get("business_date") else None
        run = flows.start_run(flow, business_date=day, parameters=request.POST.get("parameters", ""),
                              trigger=Trigger.MANUAL, triggered_by=request.user.get_username())
    except ValueError:
        model_admin.message_user(request, f"{request.POST['business_date']!r} is not a date such as 2026-12-01.",
                                 level="ERROR")
    except BatchError as exc:
        model_admin.message_user(request, f"{exc.code}: {exc.message}", level="ERROR")
    else:
        model_admin.message_user(request, f"Started run {run.pk} of {flow} for {run.business_date:%Y-%m-%d}.")
        return redirect(reverse("admin:flows_flowrun_change", args=[run.pk]))
    return redirect(reverse("admin:catalog_flow_change", args=[pk]))
