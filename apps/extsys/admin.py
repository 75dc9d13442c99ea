from __future__ import annotations

from django.contrib import admin
from django.utils import timezone

from apps.extsys.models import ExternalExecution


@admin.register(ExternalExecution)
class ExternalExecutionAdmin(admin.ModelAdmin):
    """Read-only: what the reference system was asked to run, for the demo. Tokens stay out."""

    list_display = [
        "execution_id", "job_name", "process_name", "started_at", "duration", "current_status", "restart_of_id",
    ]
    list_filter = ["outcome"]
    search_fields = ["execution_id", "job_name", "process_name", "agent_execution_id"]
    ordering = ["-started_at"]
    show_full_result_count = False

    @admin.display(description="status")
    def current_status(self, execution: ExternalExecution) -> str:
        return execution.status(timezone.now())

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
