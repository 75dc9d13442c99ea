from django.urls import path

from apps.extsys import views

app_name = "extsys"

urlpatterns = [
    path("oauth/token", views.token, name="token"),
    path("health", views.health, name="health"),
    path("jobs/start", views.start, name="start"),
    path("jobs/status", views.status, name="status"),
    path("jobs/restart", views.restart, name="restart"),
    path("jobs/kill", views.kill, name="kill"),
    path("jobs/log", views.log, name="log"),
]
