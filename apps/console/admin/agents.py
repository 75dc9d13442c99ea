"""The agent admin: every qcluster and dispatcher process, block and unblock."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q

from apps.agents import services
from apps.agents.models import Agent
from apps.console.admin.base import BatchModelAdmin
from apps.engine.models import Status


@admin.register(Agent)
class AgentAdmin(BatchModelAdmin):
    list_display = ["name", "kind", "status", "host", "pid", "last_heartbeat", "running", "cpu_cores", "os_name"]
    list_filter = ["status", "kind", "host"]
    search_fields = ["name", "host", "=instance_id"]
    # Everything, `blocked` included: blocking is the block action's (agents.block_agent), which
    # moves the status too; the form would set the flag alone and leave the agent READY.
    readonly_fields = ["instance_id", "name", "kind", "host", "pid", "os_name", "os_version", "cpu_arch",
                       "cpu_cores", "stats", "status", "blocked", "started_at", "last_heartbeat"]
    actions = ["block", "unblock"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(
            running_count=Count("executions", filter=Q(executions__status=Status.RUNNING))
        )

    def has_add_permission(self, request) -> bool:
        return False  # agents register themselves

    @admin.display(description="running", ordering="running_count")
    def running(self, obj: Agent) -> int:
        return obj.running_count

    def has_block_permission(self, request) -> bool:
        return self.has_named_permission(request, "block")

    @admin.action(description="Block selected agents (no new executions start on them)", permissions=["block"])
    def block(self, request, queryset):
        done = sum(services.set_blocked(agent, True, by=request.user.get_username()) for agent in queryset)
        self.message_user(request, f"Blocked {done} agents.")

    @admin.action(description="Unblock selected agents", permissions=["block"])
    def unblock(self, request, queryset):
        done = sum(services.set_blocked(agent, False, by=request.user.get_username()) for agent in queryset)
        self.message_user(request, f"Unblocked {done} agents.")
