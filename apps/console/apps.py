from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ConsoleConfig(AppConfig):
    name = "apps.console"
    verbose_name = "Console"
    default = True

    def ready(self) -> None:
        from apps.console import checks  # noqa: F401  (registers the system checks)


class BatchdeskAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with the Batchdesk site as its default site."""

    default = False
    default_site = "apps.console.sites.BatchdeskAdminSite"
