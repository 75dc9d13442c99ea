from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "apps.flows"
    verbose_name = "Flows"

    def ready(self) -> None:
        from apps.flows import steps  # noqa: F401  (the flow step listens to the engine's signals)
