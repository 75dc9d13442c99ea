"""The agent admin: every qcluster and dispatcher process, what its machine is and how loaded,
what it runs, its heartbeat (offline and silent agents stand out), block and unblock."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.agents import services
from apps.agents.models import Agent, AgentStatus
from apps.console.admin.base import BatchModelAdmin
from apps.engine.models import Execution, Status

STATE_COLOURS = {"ready": "#2e7d32", "blocked": "#ef6c00", "offline": "#c62828", "silent": "#c62828"}
RUNNING_LISTED = 50


def state_of(agent: Agent) -> tuple[str, str]:
    """(state, why): offline as recorded, or silent when it has missed its heartbeats and the
    dispatcher has not marked it yet; else blocked or ready."""
    silence = max((timezone.now() - agent.last_heartbeat).total_seconds(), 0)
    if agent.status == AgentStatus.OFFLINE:
        return "offline", f"last heard {_ago(silence)} ago"
    if silence > settings.BATCHDESK["AGENT_LOST_SECONDS"]:
        return "silent", f"no heartbeat for {_ago(silence)}"
    return agent.status, ""


@admin.register(Agent)
class AgentAdmin(BatchModelAdmin):
    list_display = ["name", "kind", "state", "host", "platform", "cpu", "memory", "swap", "load", "running",
                    "heartbeat"]
    list_filter = ["status", "kind", "host"]
    search_fields = ["name", "host", "=instance_id"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "state", "instance_id", "started_at", "heartbeat"]}),
        ("Machine", {"fields": ["host", "pid", "platform", "cpu", "memory", "swap", "load"]}),
        ("Running now", {"fields": ["running_executions"]}),
    ]
    # Every field shown is read-only (`blocked` is not even in the form): an agent reports itself, and
    # blocking is the block action's (agents.block_agent), which moves the status with the flag.
    readonly_fields = ["name", "kind", "state", "instance_id", "started_at", "heartbeat", "host", "pid", "platform",
                       "cpu", "memory", "swap", "load", "running_executions"]
    actions = ["block", "unblock"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            running_count=Count("executions", filter=Q(executions__status=Status.RUNNING))
        )

    def has_add_permission(self, request) -> bool:
        return False  # agents register themselves

    @admin.display(description="state", ordering="status")
    def state(self, obj: Agent) -> str:
        state, why = state_of(obj)
        return format_html('<strong class="bd-agent-{}" style="color:{}">{}</strong>{}', state, STATE_COLOURS[state],
                           state.upper(), format_html(" <small>({})</small>", why) if why else "")

    @admin.display(description="OS")
    def platform(self, obj: Agent) -> str:
        return f"{obj.os_name} {obj.os_version}".strip() or "-"

    @admin.display(description="CPU", ordering="cpu_cores")
    def cpu(self, obj: Agent) -> str:
        return f"{obj.cpu_arch or '?'}, {obj.cpu_cores} cores"

    @admin.display(description="memory")
    def memory(self, obj: Agent) -> str:
        stats = obj.stats or {}
        if "memory_percent" not in stats:
            return "-"
        return f"{stats['memory_percent']:.0f}% used, {stats.get('memory_available_mb', 0):,} MB free"

    @admin.display(description="swap")
    def swap(self, obj: Agent) -> str:
        stats = obj.stats or {}
        return f"{stats['swap_percent']:.0f}% used" if "swap_percent" in stats else "-"

    @admin.display(description="load (1, 5, 15 min)")
    def load(self, obj: Agent) -> str:
        load = (obj.stats or {}).get("load")
        return " / ".join(f"{value:.2f}" for value in load) if load else "-"

    @admin.display(description="running", ordering="running_count")
    def running(self, obj: Agent) -> int:
        return obj.running_count

    @admin.display(description="last heartbeat", ordering="last_heartbeat")
    def heartbeat(self, obj: Agent) -> str:
        ago = max((timezone.now() - obj.last_heartbeat).total_seconds(), 0)
        return format_html("{} <small>({} ago)</small>", timezone.localtime(obj.last_heartbeat).strftime(
            "%Y-%m-%d %H:%M:%S"), _ago(ago))

    @admin.display(description="executions")
    def running_executions(self, obj: Agent) -> str:
        running = (Execution.objects.filter(agent=obj, status=Status.RUNNING).select_related("job")
                   .order_by("started_at")[:RUNNING_LISTED])
        if not running:
            return "none"
        return format_html("<ul>{}</ul>", format_html_join(
            "", '<li><a href="{}">#{} {}</a>, since {}</li>',
            ((reverse("admin:engine_execution_change", args=[e.pk]), e.pk, e.job.name,
              timezone.localtime(e.started_at).strftime("%H:%M:%S")) for e in running)))

    def has_block_permission(self, request) -> bool:
        return self.has_named_permission(request, "block")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and self.has_block_permission(request) and obj.status != AgentStatus.OFFLINE:
            context["block_action"] = "unblock" if obj.status == AgentStatus.BLOCKED else "block"
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.action(description="Block selected agents (no new executions start on them)", permissions=["block"])
    def block(self, request, queryset):
        done = sum(services.set_blocked(agent, True, by=request.user.get_username()) for agent in queryset)
        self.message_user(request, f"Blocked {done} agents.")

    @admin.action(description="Unblock selected agents", permissions=["block"])
    def unblock(self, request, queryset):
        done = sum(services.set_blocked(agent, False, by=request.user.get_username()) for agent in queryset)
        self.message_user(request, f"Unblocked {done} agents.")


def _ago(seconds: float) -> str:
    delta = timedelta(seconds=round(seconds))
    if delta < timedelta(minutes=2):
        return f"{delta.seconds} s"
    if delta < timedelta(hours=2):
        return f"{delta.seconds // 60} min"
    return f"{delta.days * 24 + delta.seconds // 3600} h"
