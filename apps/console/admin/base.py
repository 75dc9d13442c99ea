"""What every Batchdesk ModelAdmin shares: one permission vocabulary, one way to report an
action applied to each selected row, and the audit trail of every edit made in the admin."""

from __future__ import annotations

from typing import Callable

from django.contrib import admin, messages
from django.http import HttpRequest

from apps import audit
from apps.errors import BatchError


class BatchModelAdmin(admin.ModelAdmin):
    def has_named_permission(self, request: HttpRequest, name: str) -> bool:
        """The model's custom permission `<app>.<name>_<model>` (Meta.permissions), as the API asks it."""
        return request.user.has_perm(f"{self.opts.app_label}.{name}_{self.opts.model_name}")

    def apply_to_each(self, request: HttpRequest, queryset, operation: Callable, verb: str,
                      name: Callable = str, outcome: Callable | None = None) -> None:
        """Run `operation` on each selected row; report what was done (each row by `name`, with the
        `outcome` of the operation when given) and what was refused, and why."""
        done, refused = [], []
        for obj in queryset:
            try:
                result = operation(obj)
                done.append(name(obj) + (f" {outcome(result)}" if outcome else ""))
            except BatchError as exc:
                refused.append(f"{name(obj)}: {exc.message}")
        if done:
            self.message_user(request, f"{verb} {len(done)}: {', '.join(done)}.")
        if refused:
            self.message_user(request, "Refused: " + "; ".join(refused), level=messages.ERROR)

    # Edits through the admin go into the audit trail beside Django's own LogEntry (which the
    # history page shows), in the same transaction as the edit.

    def log_addition(self, request: HttpRequest, obj, message):
        entry = super().log_addition(request, obj, message)
        audit.record(request.user.get_username(), "create", obj, entry.get_change_message() if entry else "")
        return entry

    def log_change(self, request: HttpRequest, obj, message):
        entry = super().log_change(request, obj, message)
        audit.record(request.user.get_username(), "edit", obj, entry.get_change_message() if entry else "")
        return entry

    def log_deletions(self, request: HttpRequest, queryset):
        for obj in queryset:
            audit.record(request.user.get_username(), "delete", obj)
        return super().log_deletions(request, queryset)

    def audit_each(self, request: HttpRequest, queryset, action: str, detail: str = "") -> None:
        """Record an edit an admin action makes with a bulk update (enable, disable), row by row."""
        for obj in queryset:
            audit.record(request.user.get_username(), action, obj, detail)
