"""The spreadsheet pages on the admin site (linked from the admin index, templates/admin/index.html).

The project uses Django's default admin site, and config/urls.py mounts `admin.site.urls`,
which calls `admin.site.get_urls()` when the URLconf is first imported: after admin
autodiscovery has imported this module. Extending that list here keeps the pages inside the
admin (its login, `admin_view` protection and `admin:` namespace) without a custom AdminSite.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from apps.spreadsheet import views


def spreadsheet_urls(site: admin.AdminSite) -> list:
    return [
        path("spreadsheet/", site.admin_view(views.upload), name="spreadsheet_upload"),
        path("spreadsheet/export/", site.admin_view(views.download), name="spreadsheet_export"),
        path("spreadsheet/<str:token>/", site.admin_view(views.preview), name="spreadsheet_preview"),
        path("spreadsheet/<str:token>/apply/", site.admin_view(views.apply), name="spreadsheet_apply"),
    ]


def _with_spreadsheet_urls(get_urls):
    def get_urls_with_spreadsheet():
        return spreadsheet_urls(admin.site) + get_urls()

    return get_urls_with_spreadsheet


admin.site.get_urls = _with_spreadsheet_urls(admin.site.get_urls)
