"""SPEC §5: "No input, however malformed, produces a 500." Each request here is refused with a
fitting 4xx and an error body: {"error", "detail"}, or the envelope on the §5.1 endpoints."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from apps.engine.models import Execution, Status
from apps.scheduling.models import Schedule
from tests.conftest import token_client

pytestmark = pytest.mark.django_db

HUGE = 10**40
JSON = "application/json"

# (method, path, body, content type, status); {schedule} and {execution} are the fixtures' ids.
MALFORMED = [
    # malformed JSON, or not JSON at all
    ("post", "/api/v1/apps", '{"name": "X"', JSON, 400),
    ("post", "/api/v1/apps", "\xff\xfe\x00", JSON, 400),
    ("post", "/api/v1/jobs", "[", JSON, 400),
    ("patch", "/api/v1/jobs/extract", "nan", JSON, 400),
    ("post", "/api/v1/apps", "name=X", "text/plain", 415),
    ("post", "/api/v1/apps", "<app/>", "application/xml", 415),
    ("post", "/api/v1/apps/RMS/configure", '"job_types"', JSON, 400),
    # a JSON value of the wrong shape
    ("post", "/api/v1/apps", "[]", JSON, 400),
    ("post", "/api/v1/apps", "null", JSON, 400),
    ("post", "/api/v1/apps", "12", JSON, 400),
    ("post", "/api/v1/jobs/extract/schedules", "[]", JSON, 400),
    ("post", "/api/v1/jobs/extract/schedules", '"cron"', JSON, 400),
    ("post", "/api/v1/jobs/extract/executions", "[1, 2]", JSON, 400),
    ("put", "/api/v1/schedules/{schedule}", "[]", JSON, 400),
    # wrong types
    ("post", "/api/v1/apps", {"name": ["RMS2"]}, JSON, 400),
    ("post", "/api/v1/apps", {"name": {"$ne": 1}}, JSON, 400),
    ("post", "/api/v1/jobs", {"name": "x", "application": ["RMS"], "command": "true"}, JSON, 400),
    ("post", "/api/v1/jobs", {"name": "x", "application": "RMS", "command": "true", "enabled": "maybe"}, JSON, 400),
    ("patch", "/api/v1/schedules/{schedule}", {"start_at": 12}, JSON, 400),
    ("patch", "/api/v1/schedules/{schedule}", {"start_at": "0000-00-00T00:00:00Z"}, JSON, 400),
    ("patch", "/api/v1/schedules/{schedule}", {"start_at": "0001-01-01T00:00:00+01:00"}, JSON, 400),
    ("patch", "/api/v1/schedules/{schedule}", {"active": "yes please"}, JSON, 400),
    ("post", "/api/v1/apps/RMS/configure", {"job_types": "MOCKTYPE"}, JSON, 400),
    ("post", "/api/v1/apps/RMS/configure", {"job_types": {"MOCKTYPE": {"url": ["x"]}}}, JSON, 400),
    # huge numbers
    ("post", "/api/v1/apps", {"name": "X", "throttle_limit": HUGE}, JSON, 400),
    ("post", "/api/v1/apps", {"name": "X", "throttle_limit": 1e308}, JSON, 400),
    ("post", "/api/v1/apps", {"name": "X", "throttle_limit": 2**31}, JSON, 400),  # PostgreSQL's limit, everywhere
    ("post", "/api/v1/jobs", {"name": "x", "application": "RMS", "command": "true", "timeout_seconds": HUGE},
     JSON, 400),
    ("post", "/api/v1/job-types", {"name": "T", "start_path": "/s", "status_path": "/t",
                                   "poll_interval_seconds": HUGE}, JSON, 400),
    ("patch", "/api/v1/schedules/{schedule}", {"repeats": -HUGE}, JSON, 400),
    ("patch", "/api/v1/schedules/{schedule}", {"kind": "interval", "interval_seconds": HUGE}, JSON, 400),
    ("get", "/api/v1/executions?page=" + "9" * 50, None, None, 404),
    ("get", "/api/v1/executions/{execution}/log?offset=-" + "9" * 5000, None, None, 400),
    # null characters (PostgreSQL refuses them even in a query)
    ("post", "/api/v1/apps", {"name": "X\x00"}, JSON, 400),
    ("post", "/api/v1/jobs", {"name": "x", "application": "RMS", "command": "true\x00"}, JSON, 400),
    ("patch", "/api/v1/schedules/{schedule}", {"job": "\x00"}, JSON, 400),
    ("get", "/api/v1/executions?application=%00", None, None, 400),
    ("get", "/api/v1/jobs?job_type=%00", None, None, 400),
    ("post", "/api/v1/backgroundtasks/trigger/a%00b", None, None, 404),
    # bad ids
    ("get", "/api/v1/executions/0", None, None, 404),
    ("get", "/api/v1/executions/9223372036854775808", None, None, 404),
    ("post", "/api/v1/executions/-5/kill", None, None, 404),
    ("get", "/api/v1/schedules/1.5", None, None, 404),
    ("get", "/api/v1/agents/zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz", None, None, 404),
    ("get", "/api/v1/apps/NOPE/stats", None, None, 404),
    ("get", "/api/v1/jobs/" + "x" * 500, None, None, 404),
    ("get", "/api/v1/no-such-endpoint", None, None, 404),
    ("get", "/api/v1/jobs/", None, None, 404),  # no trailing slashes in this API
    ("get", "/api/v1/jobs/a%2Fb", None, None, 404),
    # wrong methods
    ("delete", "/api/v1/apps", None, None, 405),
    ("put", "/api/v1/executions/{execution}", None, None, 405),
    ("delete", "/api/v1/executions/{execution}", None, None, 405),
    ("get", "/api/v1/executions/{execution}/kill", None, None, 405),
    ("post", "/api/v1/health", None, None, 405),
    ("post", "/api/v1/schedules", None, None, 405),
    ("patch", "/api/v1/agents/{agent}", None, None, 405),
]


@pytest.fixture
def ids(make_job) -> dict[str, object]:
    from django.utils import timezone

    from apps.agents.models import Agent, AgentKind

    job = make_job("extract")
    return {
        "schedule": Schedule.objects.create(job=job, kind="cron", cron="0 2 * * *").pk,
        "execution": Execution.objects.create(job=job, application=job.application, status=Status.ERROR).pk,
        "agent": Agent.objects.create(name="a", kind=AgentKind.CLUSTER, host="h", pid=1,
                                      last_heartbeat=timezone.now()).instance_id,
    }


@pytest.mark.parametrize(("method", "path", "body", "content_type", "status"), MALFORMED,
                         ids=[f"{m.upper()} {p[:60]} {str(b)[:40]!r}" for m, p, b, _, _ in MALFORMED])
def test_it_refuses_malformed_input_with_a_4xx_and_an_error_body(administrator, ids, method, path, body,
                                                                 content_type, status):
    client: APIClient = token_client(administrator)
    path = path.format(**ids)
    if isinstance(body, str):
        response = client.generic(method.upper(), path, body.encode("latin-1"), content_type)
    elif body is not None:
        response = getattr(client, method)(path, body, format="json")
    else:
        response = getattr(client, method)(path)
    assert response.status_code == status, response.content
    payload = response.json()
    if path.startswith("/api/v1/backgroundtasks"):
        assert payload["params"]["status"] == "failure" and payload["params"]["err"]
    else:
        assert set(payload) - {"fields"} == {"error", "detail"} and payload["error"] and payload["detail"]


def test_it_answers_a_405_with_the_allowed_methods(administrator, ids):
    response = token_client(administrator).delete("/api/v1/apps")
    assert response.json() == {"error": "METHOD_NOT_ALLOWED", "detail": 'Method "DELETE" not allowed.'}
    assert set(response["Allow"].replace(" ", "").split(",")) == {"GET", "POST", "HEAD", "OPTIONS"}


def test_it_answers_406_to_an_accept_it_cannot_serve(administrator):
    response = token_client(administrator).get("/api/v1/apps", HTTP_ACCEPT="application/xml")
    assert response.status_code == 406
    assert response.json()["error"] == "NOT_ACCEPTABLE"
