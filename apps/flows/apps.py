from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "apps.flows"
    verbose_name = "Flows"
