"""Secrets stay out of jobs and tracebacks: EXEC jobs get an allow-list environment, and the client
secret of a custom job type never shows in a repr, a DEBUG page or an error report."""

from __future__ import annotations

import sys

import pytest
from django.test import RequestFactory
from django.views.debug import ExceptionReporter

from apps.catalog.models import JobType
from apps.connectors.client import Endpoint
from apps.connectors.oauth import Credentials
from apps.engine.kinds.exec import environment
from apps.engine.models import Execution

SECRET = "s3cr3t-Value-Never-Shown"

pytestmark = pytest.mark.once


@pytest.fixture
def execution(make_job):
    job = make_job("envdump", command="env", parameters="day=Mon", extra="{}")
    return Execution(pk=7, job=job, application=job.application, parameters="day=Mon")


def test_an_exec_job_gets_only_the_allowed_environment(execution, monkeypatch, settings):
    for name, value in {"PATH": "/usr/bin:/bin", "HOME": "/home/batch", "LC_TIME": "C", "AWS_SECRET_ACCESS_KEY": "k",
                        "PGPASSWORD": "p", "SENTRY_DSN": "https://key@sentry", "MY_TOOL_HOME": "/opt/tool",
                        "BATCH_PARAM_SNEAKY": "from the worker"}.items():
        monkeypatch.setenv(name, value)
    settings.BATCHDESK = {**settings.BATCHDESK, "EXEC_ENV": ["PATH", "HOME", "LC_*", "MY_TOOL_HOME"]}
    env = environment(execution, execution.job)
    assert {key for key in env if not key.startswith("BATCH_")} == {"PATH", "HOME", "LC_TIME", "MY_TOOL_HOME"}
    assert env["BATCH_PARAM_DAY"] == "Mon" and env["BATCH_PARAMS"] == "day=Mon"
    assert env["BATCH_JOB_NAME"] == "envdump" and env["BATCH_EXECUTION_ID"] == "7"
    assert "BATCH_PARAM_SNEAKY" not in env  # only the execution's own BATCH_* variables


def test_the_default_allow_list_passes_what_a_shell_needs_and_nothing_else(execution, monkeypatch):
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "config.settings")
    monkeypatch.setenv("SOME_API_TOKEN", "t0ken")
    env = environment(execution, execution.job)
    assert "PATH" in env
    assert "DJANGO_SETTINGS_MODULE" not in env and "SOME_API_TOKEN" not in env


def credentials() -> Credentials:
    return Credentials(token_url="https://auth.example.com/token", client_id="batchdesk", client_secret=SECRET,
                       scope="batch")


def test_credentials_and_endpoints_never_show_the_secret_in_a_repr(db):
    job_type = JobType(name="MOCKTYPE", url="https://ext.example.com", start_path="/s", status_path="/t",
                       token_url="https://auth.example.com/token", client_id="batchdesk")
    job_type.set_client_secret(SECRET)
    endpoint = job_type.endpoint()
    assert endpoint.credentials.client_secret == SECRET  # still there for the token request
    for shown in (repr(credentials()), repr(endpoint), str(endpoint), f"{endpoint!r}"):
        assert SECRET not in shown
        assert "batchdesk" in shown


def a_failing_call(endpoint: Endpoint, credentials: Credentials) -> None:
    raise RuntimeError("the external system failed")


@pytest.mark.parametrize("debug", [True, False], ids=["debug-page", "error-report"])
def test_a_traceback_through_the_connector_never_shows_the_secret(db, settings, debug):
    settings.DEBUG = debug
    endpoint = Endpoint(name="MOCKTYPE", url="https://ext.example.com", scope="batch", paths={"start": "/s"},
                        timeout=30, poll_interval=5, credentials=credentials())
    try:
        a_failing_call(endpoint, endpoint.credentials)
    except RuntimeError:
        reporter = ExceptionReporter(RequestFactory().get("/admin/"), *sys.exc_info())
    html, text = reporter.get_traceback_html(), reporter.get_traceback_text()
    assert "a_failing_call" in text  # the frame and its variables are there ...
    assert SECRET not in html and SECRET not in text  # ... the secret is not
