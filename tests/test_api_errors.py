"""One error vocabulary: every code has its status and message, the README lists each one, and the
API answers JSON, never HTML, even for a path that does not exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from apps.errors import BatchError, ErrorCode

README = Path(__file__).resolve().parent.parent / "README.md"


def test_every_error_code_is_listed_in_the_readme():
    listed = set(re.findall(r"`([A-Z_]{4,})`", README.read_text()))
    assert [code.value for code in ErrorCode if code.value not in listed] == []


def test_a_code_carries_its_status_and_default_message():
    refused = BatchError(ErrorCode.FLOW_ALREADY_RUNNING)
    assert (refused.code, refused.status, refused.message) == (
        "FLOW_ALREADY_RUNNING", 409, "The flow already has an open run for that business date.")
    assert BatchError(ErrorCode.NOT_FOUND, "No job named 'x'.").message == "No job named 'x'."


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["get", "post", "put", "patch", "delete"])
@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v2/jobs", "/api/", "/api/v1/jobs/a/b/c/d"])
def test_an_unknown_api_path_answers_json_404_whatever_the_method(method, path, administrator):
    client = Client(enforce_csrf_checks=True)  # as a browser session would: no CSRF token sent
    client.force_login(administrator)
    response = getattr(client, method)(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "NOT_FOUND", "detail": f"No API endpoint at {path}."}
