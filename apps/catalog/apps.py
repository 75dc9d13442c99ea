from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CatalogConfig(AppConfig):
    name = "apps.catalog"
    verbose_name = "Catalog"

    def ready(self) -> None:
        from apps.catalog.roles import grant_role_permissions

        # Not limited to this app: each app's permissions exist only after its own migrate.
        post_migrate.connect(grant_role_permissions)
