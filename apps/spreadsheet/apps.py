from django.apps import AppConfig


class SpreadsheetConfig(AppConfig):
    name = "apps.spreadsheet"
    verbose_name = "Batch schedule spreadsheet"
