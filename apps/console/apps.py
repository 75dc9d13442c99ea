from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "apps.console"
    verbose_name = "Console"

    def ready(self) -> None:
        from django.contrib import admin

        admin.site.site_header = "Batchdesk"
        admin.site.site_title = "Batchdesk"
        admin.site.index_title = "Batch operations console"
