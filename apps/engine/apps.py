from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class EngineConfig(AppConfig):
    name = "apps.engine"
    verbose_name = "Engine"

    def ready(self) -> None:
        # PYTHON jobs: every app's `batch_tasks` module registers its callables.
        autodiscover_modules("batch_tasks")
