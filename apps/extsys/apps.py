from django.apps import AppConfig


class ExtsysConfig(AppConfig):
    name = "apps.extsys"
    verbose_name = "Reference external system"
