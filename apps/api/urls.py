from django.http import JsonResponse
from django.urls import include, path, re_path
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from apps.api import backgroundtasks, views


@csrf_exempt  # a POST to no endpoint is a 404, not Django's HTML CSRF page
def no_endpoint(request) -> JsonResponse:
    """An unknown /api/ path (or an id of the wrong shape), whatever the method, answers like every
    API error, never with Django's HTML page."""
    return JsonResponse({"error": "NOT_FOUND", "detail": f"No API endpoint at {request.path}."}, status=404)


router = SimpleRouter(trailing_slash=False)
router.register("apps", views.ApplicationViewSet, basename="application")
router.register("job-types", views.JobTypeViewSet, basename="jobtype")
router.register("jobs", views.JobViewSet, basename="job")
router.register("schedules", views.ScheduleViewSet, basename="schedule")
router.register("executions", views.ExecutionViewSet, basename="execution")
router.register("agents", views.AgentViewSet, basename="agent")
router.register("flows", views.FlowViewSet, basename="flow")
router.register("flow-runs", views.FlowRunViewSet, basename="flowrun")

urlpatterns = [
    path("v1/backgroundtasks", backgroundtasks.BackgroundTaskList.as_view(), name="backgroundtasks"),
    path("v1/backgroundtasks/trigger/<str:task_name>", backgroundtasks.TriggerBackgroundTask.as_view(),
         name="backgroundtasks-trigger"),
    path("v1/health", views.HealthView.as_view(), name="health"),
    path("v1/cron/preview", views.CronPreviewView.as_view(), name="cron-preview"),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    re_path(r"", no_endpoint),  # last: whatever under /api/ the routes above did not match
]
