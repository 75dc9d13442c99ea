"""Notifications in the console: the rules (who is told what), and the record of what was sent."""

from __future__ import annotations

from django import forms
from django.contrib import admin

from apps.console.admin.base import BatchModelAdmin
from apps.notifications.models import Channel, Notification, NotificationRule


class NotificationRuleForm(forms.ModelForm):
    """The webhook's shared secret is write-only: typed in, stored encrypted, never rendered back."""

    secret = forms.CharField(required=False, strip=False, widget=forms.PasswordInput(render_value=False),
                             help_text="Webhooks: the shared secret of the HMAC-SHA256 signature header "
                                       "(X-Batchdesk-Signature). Write-only; leave blank to keep the stored one.")
    clear_secret = forms.BooleanField(required=False, help_text="Forget the stored secret (send unsigned).")

    class Meta:
        model = NotificationRule
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("secret") and cleaned.get("channel") != Channel.WEBHOOK:
            self.add_error("secret", "Only webhooks are signed.")
        return cleaned

    def save(self, commit: bool = True) -> NotificationRule:
        rule = super().save(commit=False)
        if self.cleaned_data.get("clear_secret"):
            rule.secret_encrypted = ""
        elif self.cleaned_data.get("secret"):
            rule.set_secret(self.cleaned_data["secret"])
        if commit:
            rule.save()
        return rule


@admin.register(NotificationRule)
class NotificationRuleAdmin(BatchModelAdmin):
    form = NotificationRuleForm
    list_display = ["__str__", "channel", "on_failure", "on_long_running", "on_flow_run_end", "enabled", "signed"]
    list_filter = ["channel", "enabled", "on_failure", "on_long_running", "on_flow_run_end", "application"]
    search_fields = ["target", "description", "application__name", "job__name"]
    list_select_related = ["application", "job"]
    autocomplete_fields = ["application", "job"]
    fieldsets = [
        ("Whose events", {"fields": ["application", "job"]}),
        ("Which events", {"fields": ["on_failure", "on_long_running", "on_flow_run_end"]}),
        ("To whom", {"fields": ["channel", "target", "secret", "clear_secret"]}),
        (None, {"fields": ["enabled", "description"]}),
    ]

    @admin.display(description="signed", boolean=True)
    def signed(self, obj: NotificationRule) -> bool:
        return obj.has_secret


@admin.register(Notification)
class NotificationAdmin(BatchModelAdmin):
    """The record of every notification: read-only."""

    list_display = ["created_at", "event", "channel", "target", "subject", "outcome", "response_status", "error"]
    list_filter = ["outcome", "event", "channel"]
    search_fields = ["target", "subject", "=object_id"]
    date_hierarchy = "created_at"
    show_full_result_count = False
    readonly_fields = ["rule", "event", "channel", "target", "subject", "payload", "object_type", "object_id",
                       "created_at", "sent_at", "outcome", "response_status", "error"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
