"""The audit trail in the console: read-only, filterable by who, what and when."""

from __future__ import annotations

from django.contrib import admin

from apps.audit.models import AuditEntry
from apps.console.admin.base import BatchModelAdmin


@admin.register(AuditEntry)
class AuditEntryAdmin(BatchModelAdmin):
    list_display = ["at", "actor", "action", "target_type", "target", "detail"]
    list_filter = ["action", "target_type", "actor"]
    search_fields = ["actor", "target", "detail"]
    date_hierarchy = "at"
    show_full_result_count = False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
