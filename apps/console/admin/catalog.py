"""Admins of the catalog: applications, flows, processes, custom job types and job definitions."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, OuterRef, Subquery
from django.http import HttpRequest
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from apps.catalog.dependencies import check_no_cycle
from apps.catalog.models import (
    BUILTIN_KINDS,
    Application,
    Flow,
    JobDefinition,
    JobType,
    JobTypeEnvironment,
    Process,
)
from apps.console.admin.base import BatchModelAdmin
from apps.console.admin.flows import FlowFilter, coloured, start_run_view
from apps.flows.graph import flow_graph
from apps.console.reports import job_report
from apps.engine import services
from apps.engine.models import Execution, Trigger
from apps.errors import BatchError


@admin.register(Application)
class ApplicationAdmin(BatchModelAdmin):
    list_display = ["name", "enabled", "throttle_limit", "job_count", "description"]
    list_filter = ["enabled"]
    search_fields = ["name", "description"]
    actions = ["enable", "disable"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(job_count=Count("jobs"))

    @admin.display(description="jobs", ordering="job_count")
    def job_count(self, obj: Application) -> int:
        return obj.job_count

    @admin.action(description="Enable selected applications", permissions=["change"])
    def enable(self, request, queryset):
        self.audit_each(request, queryset, "enable")
        self.message_user(request, f"Enabled {queryset.update(enabled=True)} applications.")

    @admin.action(description="Disable selected applications", permissions=["change"])
    def disable(self, request, queryset):
        self.audit_each(request, queryset, "disable")
        self.message_user(request, f"Disabled {queryset.update(enabled=False)} applications.")


class ProcessInline(admin.TabularInline):
    model = Process
    fields = ["name", "description"]
    extra = 0
    show_change_link = True


@admin.register(Flow)
class FlowAdmin(BatchModelAdmin):
    list_display = ["name", "application", "cycle", "description"]
    list_filter = ["application", "cycle"]
    search_fields = ["name", "cycle", "application__name"]
    list_select_related = ["application"]
    inlines = [ProcessInline]
    change_form_template = "admin/catalog/flow/change_form.html"

    def get_urls(self):
        start = self.admin_site.admin_view(lambda request, pk: start_run_view(request, pk, model_admin=self))
        return [path("<int:pk>/start/", start, name="catalog_flow_start")] + super().get_urls()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context.update(graph=coloured(flow_graph(obj)), today=timezone.localdate(),
                           can_start=request.user.has_perm("flows.add_flowrun"),
                           runs=obj.runs.order_by("-created_at")[:10])
        return super().render_change_form(request, context, add, change, form_url, obj)


class ProcessForm(forms.ModelForm):
    class Meta:
        model = Process
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("flow") and "predecessors" in cleaned:
            self.instance.flow = cleaned["flow"]
            try:
                check_no_cycle(self.instance, cleaned["predecessors"])
            except ValidationError as exc:
                self.add_error("predecessors", exc)
        return cleaned


@admin.register(Process)
class ProcessAdmin(BatchModelAdmin):
    form = ProcessForm
    list_display = ["name", "flow", "description"]
    list_filter = ["flow__application", ("flow", FlowFilter)]
    search_fields = ["name", "flow__name"]
    list_select_related = ["flow__application"]
    filter_horizontal = ["predecessors"]


class JobTypeForm(forms.ModelForm):
    """The client secret is write-only: typed in, stored encrypted, never rendered back."""

    client_secret = forms.CharField(
        required=False, strip=False, widget=forms.PasswordInput(render_value=False),
        help_text="Write-only. Leave blank to keep the stored secret.",
    )
    clear_client_secret = forms.BooleanField(
        required=False, help_text="Forget the stored secret (OAUTH_CLIENT_SECRET applies again)."
    )

    class Meta:
        model = JobType
        fields = "__all__"

    def save(self, commit: bool = True) -> JobType:
        job_type = super().save(commit=False)
        if self.cleaned_data.get("clear_client_secret"):
            job_type.client_secret_encrypted = ""
        elif self.cleaned_data.get("client_secret"):
            job_type.set_client_secret(self.cleaned_data["client_secret"])
        if commit:
            job_type.save()
        return job_type


class JobTypeEnvironmentInline(admin.TabularInline):
    model = JobTypeEnvironment
    extra = 0
    autocomplete_fields = ["application"]
    verbose_name = "application environment"


@admin.register(JobType)
class JobTypeAdmin(BatchModelAdmin):
    form = JobTypeForm
    list_display = ["name", "url", "poll_interval_seconds", "secret_stored", "last_check", "description"]
    search_fields = ["name", "url", "description"]
    readonly_fields = ["last_check_at", "last_check_up", "last_check_error"]
    inlines = [JobTypeEnvironmentInline]
    actions = ["system_check"]
    fieldsets = [
        (None, {"fields": ["name", "description", "url"]}),
        ("Endpoints", {"fields": ["start_path", "status_path", "restart_path", "kill_path", "log_path", "check_path"]}),
        ("Polling", {"fields": ["poll_interval_seconds", "request_timeout_seconds"]}),
        ("OAuth2 client credentials", {"fields": ["token_url", "client_id", "client_secret", "clear_client_secret",
                                                  "scope"]}),
        ("Last system check", {"fields": ["last_check_at", "last_check_up", "last_check_error"]}),
    ]

    @admin.display(description="secret", boolean=True)
    def secret_stored(self, obj: JobType) -> bool:
        return obj.has_client_secret

    @admin.display(description="last check")
    def last_check(self, obj: JobType) -> str:
        if obj.last_check_at is None:
            return "never"
        return f"{'up' if obj.last_check_up else 'DOWN'} at {obj.last_check_at:%Y-%m-%d %H:%M:%S}"

    def has_check_permission(self, request) -> bool:
        return self.has_named_permission(request, "check")

    @admin.action(description="Run the system check now", permissions=["check"])
    def system_check(self, request, queryset):
        for job_type in queryset:
            result = services.system_check(job_type)
            level = messages.SUCCESS if result.up else messages.ERROR
            self.message_user(request, f"{job_type.name}: {'up' if result.up else 'down'} {result.error}", level=level)


class JobDefinitionForm(forms.ModelForm):
    """The job type as one choice, as operators name it: a built-in kind or a custom type."""

    job_type = forms.ChoiceField(help_text="EXEC, PYTHON, DUMMY or a custom (Generic ReST) job type.")

    class Meta:
        model = JobDefinition
        exclude = ["kind", "custom_type"]

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        custom = [(name, name) for name in JobType.objects.order_by("name").values_list("name", flat=True)]
        builtin = [(kind.value, kind.label) for kind in BUILTIN_KINDS]
        self.fields["job_type"].choices = [("Built-in", builtin), ("Custom job types", custom)]
        self.initial.setdefault("job_type", self.instance.job_type)

    def clean(self):
        cleaned = super().clean()
        if "job_type" in cleaned:
            self.instance.job_type = cleaned["job_type"]
            # The model's own clean() runs after this and checks the command against the kind.
        return cleaned


@admin.register(JobDefinition)
class JobDefinitionAdmin(BatchModelAdmin):
    form = JobDefinitionForm
    list_display = ["name", "application", "job_type", "enabled", "concurrency", "lock_group", "latest_status"]
    list_filter = ["enabled", "kind", "custom_type", "concurrency", "application"]
    search_fields = ["name", "command", "description", "lock_group"]
    list_select_related = ["application", "process__flow", "custom_type"]
    autocomplete_fields = ["application"]
    actions = ["trigger_now", "enable", "disable"]
    show_full_result_count = False
    fieldsets = [
        (None, {"fields": ["name", "application", "process", "sequence", "description", "enabled"]}),
        ("What runs", {"fields": ["job_type", "command", "parameters", "extra"]}),
        ("Behaviour", {"fields": ["concurrency", "lock_group", "max_retries", "retry_backoff_seconds",
                                  "timeout_seconds", "warning_exit_codes", "skip_on_error",
                                  "threshold_runtime_seconds"]}),
    ]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "process":  # each choice reads as application/flow/process: one query, not two a process
            kwargs["queryset"] = Process.objects.select_related("flow__application")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def get_queryset(self, request):
        latest = Execution.objects.filter(job=OuterRef("pk")).order_by("-created_at", "-id").values("status")[:1]
        return super().get_queryset(request).annotate(latest_status=Subquery(latest))

    @admin.display(description="latest run")
    def latest_status(self, obj: JobDefinition) -> str:
        return obj.latest_status or "-"

    def get_urls(self):
        return [
            path("<int:pk>/trigger/", self.admin_site.admin_view(self.trigger_view), name="catalog_jobdefinition_trigger"),
        ] + super().get_urls()

    def trigger_view(self, request: HttpRequest, pk: int):
        """Trigger one job with parameters that override its defaults."""
        job = get_object_or_404(JobDefinition.objects.select_related("application"), pk=pk)
        if not self.has_trigger_permission(request):
            raise PermissionDenied  # a viewer: refused plainly, as the admin refuses its own pages
        error = ""
        if request.method == "POST":
            try:
                execution = services.trigger(job, parameters=request.POST.get("parameters", ""),
                                             trigger=Trigger.MANUAL, triggered_by=request.user.get_username())
            except BatchError as exc:
                error = f"{exc.code}: {exc.message}"
            else:
                self.message_user(request, f"Triggered {job.name}: execution {execution.pk}.")
                return redirect(reverse("admin:engine_execution_change", args=[execution.pk]))
        context = {**self.admin_site.each_context(request), "title": f"Trigger {job.name}", "job": job,
                   "error": error, "opts": self.model._meta, "parameters": request.POST.get("parameters", "")}
        return TemplateResponse(request, "admin/catalog/jobdefinition/trigger.html", context)

    def has_trigger_permission(self, request) -> bool:
        return self.has_named_permission(request, "trigger")

    @admin.action(description="Trigger selected jobs now", permissions=["trigger"])
    def trigger_now(self, request, queryset):
        by = request.user.get_username()
        self.apply_to_each(request, queryset.select_related("application", "custom_type"),
                           lambda job: services.trigger(job, trigger=Trigger.MANUAL, triggered_by=by), "Triggered",
                           outcome=lambda execution: f"(#{execution.pk})")

    @admin.action(description="Enable selected jobs", permissions=["change"])
    def enable(self, request, queryset):
        self.audit_each(request, queryset, "enable")
        self.message_user(request, f"Enabled {queryset.update(enabled=True)} jobs.")

    @admin.action(description="Disable selected jobs", permissions=["change"])
    def disable(self, request, queryset):
        self.audit_each(request, queryset, "disable")
        self.message_user(request, f"Disabled {queryset.update(enabled=False)} jobs.")

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None and self.has_trigger_permission(request):
            context["trigger_url"] = reverse("admin:catalog_jobdefinition_trigger", args=[obj.pk])
        if obj is not None:
            context["report"] = job_report(obj)
        return super().render_change_form(request, context, add, change, form_url, obj)
