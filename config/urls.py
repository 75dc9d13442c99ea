from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from apps.console import views as console

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/monitoring/", console.monitoring, name="console-monitoring"),
    path("admin/health/", console.health, name="console-health"),
    path("admin/health/check/", console.run_checks, name="console-run-checks"),
    path("admin/", admin.site.urls),
    path("api/", include("apps.api.urls")),
    path("extsys/", include("apps.extsys.urls")),
]
