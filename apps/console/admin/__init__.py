"""Every model's admin, on the Batchdesk admin site (apps/console/sites.py). Django's admin autodiscovery
imports this package; the modules below register their ModelAdmins."""

from apps.console.admin import (  # noqa: F401  (they register)
    agents, audit, catalog, engine, flows, notifications, scheduling,
)
