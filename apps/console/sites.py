"""The operator's console: one admin site that owns the index and every custom page (Batch
Monitoring, the Health Check, the batch schedule spreadsheet) beside the models' admins.

It replaces Django's default site (apps.console.apps.BatchdeskAdminConfig.default_site), so
`admin.site` and `@admin.register` mean this site everywhere."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from apps.console import views
from apps.spreadsheet import views as spreadsheet


class BatchdeskAdminSite(admin.AdminSite):
    site_header = "Batchdesk"
    site_title = "Batchdesk"
    index_title = "Batch operations console"
    index_template = "admin/batchdesk_index.html"

    def get_urls(self):
        page = self.admin_view
        return [
            path("monitoring/", page(views.monitoring_page), name="monitoring"),
            path("monitoring/live/", page(views.monitoring_live), name="monitoring_live"),
            path("health/", page(views.health), name="health"),
            path("health/check/", page(views.run_checks), name="run_checks"),
            path("spreadsheet/", page(spreadsheet.upload), name="spreadsheet_upload"),
            path("spreadsheet/export/", page(spreadsheet.download), name="spreadsheet_export"),
            path("spreadsheet/<str:token>/", page(spreadsheet.preview), name="spreadsheet_preview"),
            path("spreadsheet/<str:token>/apply/", page(spreadsheet.apply), name="spreadsheet_apply"),
        ] + super().get_urls()
