from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "apps.scheduling"
    verbose_name = "Scheduling"

    def ready(self) -> None:
        from django.core import checks

        from apps.scheduling.checks import check_stored_cron_expressions

        checks.register(check_stored_cron_expressions, checks.Tags.database)
