"""Custom (Generic ReST) job types over the POM contract, with `responses` standing in for
the external system and its token endpoint."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from urllib.parse import parse_qs, urlparse

import pytest
import requests
import responses
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from apps.catalog.models import Flow, JobType, Process
from apps.engine import polling, services
from apps.engine.models import Execution, Status, Trigger
from apps.errors import BatchError

BASE = "https://ext.example.com/pom"
TOKEN_URL = "https://auth.example.com/oauth/token"
SECRET = "s3cr3t-Value-Never-Shown"


@pytest.fixture
def job_type(db) -> JobType:
    job_type = JobType(
        name="MOCKTYPE", url=BASE, start_path="/start", status_path="/status", restart_path="/restart",
        kill_path="/kill", log_path="/log", check_path="/health", scope="batch", poll_interval_seconds=5,
        token_url=TOKEN_URL, client_id="batchdesk",
    )
    job_type.set_client_secret(SECRET)
    job_type.save()
    return job_type


@pytest.fixture
def rest_job(make_job, job_type):
    return make_job("extract_sales", job_type="MOCKTYPE", command="", parameters="store=12||day=mon")


@pytest.fixture
def api():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600})
        yield mock


# Every test commits, and the queue runs each task at once in this process: a trigger's start
# task runs when it commits, and the dispatcher's poll step runs its poll batch (whose threads
# have their own database connections, which see only what was committed).
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def queue_runs_tasks_at_once(sync_queue) -> None:
    pass


def start(job, **trigger_kwargs) -> Execution:
    """Trigger; the start task runs as a worker would. Returns the stored execution."""
    execution = services.trigger(job, **trigger_kwargs)
    return Execution.objects.select_related("job", "application").get(pk=execution.pk)


def poll(execution: Execution) -> None:
    """Make the execution's next poll due and let the dispatcher's step poll it (one Status call)."""
    Execution.objects.filter(pk=execution.pk).update(next_check_at=timezone.now())
    assert polling.claim_due_polls() == 1


def calls_to(mock, path: str) -> list:
    return [call for call in mock.calls if urlparse(call.request.url).path.endswith(path)]


def test_it_sends_exactly_the_contract_fields_on_start_and_stores_the_execution_id(api, rest_job):
    api.post(f"{BASE}/start", json={"executionId": "X-1", "status": "RUNNING", "executionInfo": "queued"})
    execution = start(rest_job, parameters="day=tue")
    body = json.loads(calls_to(api, "/start")[0].request.body)
    assert body == {
        "cycleName": "Adhoc", "flowName": "Adhoc", "processName": "extract_sales", "jobName": "extract_sales",
        "parameters": "store=12||day=tue", "agentExecutionId": str(execution.agent_execution_id),
    }
    assert calls_to(api, "/start")[0].request.headers["Authorization"] == "Bearer tok-1"
    assert execution.status == Status.RUNNING
    assert execution.external_execution_id == "X-1"
    assert execution.execution_info == "queued"
    assert timezone.now() + timedelta(seconds=4) < execution.next_check_at <= timezone.now() + timedelta(seconds=5)


def test_it_names_cycle_flow_and_process_of_a_job_inside_a_process(api, rest_job, app):
    flow = Flow.objects.create(application=app, name="SalesFlow", cycle="Nightly")
    rest_job.process = Process.objects.create(flow=flow, name="LoadSales")
    rest_job.save()
    api.post(f"{BASE}/start", json={"executionId": "X-2", "status": "RUNNING"})
    start(rest_job)
    body = json.loads(calls_to(api, "/start")[0].request.body)
    assert (body["cycleName"], body["flowName"], body["processName"]) == ("Nightly", "SalesFlow", "LoadSales")


def test_it_polls_status_with_the_contract_query_until_completed_and_stores_the_log(api, rest_job):
    api.post(f"{BASE}/start", json={"executionId": "X-3", "status": "RUNNING"})
    api.get(f"{BASE}/status", json={"executionId": "X-3", "status": "RUNNING", "executionInfo": "50%"})
    execution = start(rest_job)
    poll(execution)
    query = parse_qs(urlparse(calls_to(api, "/status")[0].request.url).query)
    assert query == {"processName": ["extract_sales"], "jobName": ["extract_sales"], "executionId": ["X-3"]}
    assert Execution.objects.get(pk=execution.pk).execution_info == "50%"

    api.replace(responses.GET, f"{BASE}/status", json={"executionId": "X-3", "status": "COMPLETED"})
    api.get(f"{BASE}/log", body="line 1\nline 2\nall done\n")
    poll(execution)
    done = Execution.objects.get(pk=execution.pk)
    assert done.status == Status.COMPLETED
    assert done.log == "line 1\nline 2\nall done\n"


def test_it_reuses_one_token_across_executions_and_refetches_once_after_a_401(api, make_job, rest_job):
    api.post(f"{BASE}/start", json={"executionId": "X-4", "status": "RUNNING"})
    other = make_job("extract_stock", job_type="MOCKTYPE", command="")
    start(rest_job)
    start(other)
    assert len(calls_to(api, "/oauth/token")) == 1

    api.replace(responses.POST, TOKEN_URL, json={"access_token": "tok-2", "expires_in": 3600})
    api.get(f"{BASE}/status", status=401)
    api.get(f"{BASE}/status", json={"executionId": "X-4", "status": "RUNNING"})
    execution = Execution.objects.select_related("job", "application").get(job=rest_job)
    poll(execution)
    assert len(calls_to(api, "/oauth/token")) == 2
    statuses = calls_to(api, "/status")
    assert [c.request.headers["Authorization"] for c in statuses] == ["Bearer tok-1", "Bearer tok-2"]
    assert Execution.objects.get(pk=execution.pk).poll_failures == 0


def test_it_sends_the_client_credentials_by_basic_auth_with_the_scope(api, rest_job):
    api.post(f"{BASE}/start", json={"executionId": "X-5", "status": "RUNNING"})
    start(rest_job)
    token_request = calls_to(api, "/oauth/token")[0].request
    assert token_request.headers["Authorization"].startswith("Basic ")
    form = parse_qs(token_request.body)
    assert form["grant_type"] == ["client_credentials"]
    assert form["scope"] == ["batch"]
    assert "client_secret" not in form


def test_it_ends_in_error_with_the_response_in_the_log_when_start_answers_500(api, rest_job):
    api.post(f"{BASE}/start", status=500, body="database is on fire")
    execution = start(rest_job)
    assert execution.status == Status.ERROR
    assert "HTTP 500" in execution.error
    assert "database is on fire" in execution.log


@pytest.mark.parametrize(
    "failure, expected",
    [
        (requests.ConnectTimeout("slow"), "no answer"),
        (requests.ConnectionError("Connection refused"), "cannot connect"),
    ],
    ids=["timeout", "connection-refused"],
)
def test_it_ends_in_error_when_start_cannot_reach_the_system(api, rest_job, failure, expected):
    api.post(f"{BASE}/start", body=failure)
    execution = start(rest_job)
    assert execution.status == Status.ERROR
    assert expected in execution.error


def test_it_ends_in_error_when_start_answers_without_an_execution_id_or_not_json(api, make_job, rest_job):
    api.post(f"{BASE}/start", body="<html>gateway</html>")
    assert "not a JSON object" in start(rest_job).error
    api.replace(responses.POST, f"{BASE}/start", json={"status": "RUNNING"})
    assert "no executionId" in start(make_job("other", job_type="MOCKTYPE", command="")).error


def test_it_treats_an_unknown_status_as_running_and_logs_it(api, rest_job):
    api.post(f"{BASE}/start", json={"executionId": "X-6", "status": "RUNNING"})
    api.get(f"{BASE}/status", json={"executionId": "X-6", "status": "PENDING"})
    execution = start(rest_job)
    poll(execution)
    polled = Execution.objects.get(pk=execution.pk)
    assert polled.status == Status.RUNNING
    assert "unknown status 'PENDING'" in polled.log


def test_it_backs_off_on_transient_status_failures_and_ends_in_error_at_the_limit(api, rest_job, settings):
    settings.BATCHDESK = {**settings.BATCHDESK, "POLL_FAILURE_LIMIT": 3}
    api.post(f"{BASE}/start", json={"executionId": "X-7", "status": "RUNNING"})
    execution = start(rest_job)
    api.get(f"{BASE}/status", status=503)
    api.get(f"{BASE}/status", body="not json")
    api.get(f"{BASE}/status", body=requests.ReadTimeout("slow"))
    delays = []
    for _ in range(2):
        before = timezone.now()
        poll(execution)
        polled = Execution.objects.get(pk=execution.pk)
        assert polled.status == Status.RUNNING
        delays.append(round((polled.next_check_at - before).total_seconds()))
    assert delays == [10, 20]  # poll interval 5 s × 2^failures
    poll(execution)
    ended = Execution.objects.get(pk=execution.pk)
    assert ended.status == Status.ERROR
    assert ended.error.startswith("status polling failed 3 times in a row: status: no answer")


def test_a_successful_poll_resets_the_failure_count(api, rest_job):
    api.post(f"{BASE}/start", json={"executionId": "X-8", "status": "RUNNING"})
    execution = start(rest_job)
    api.get(f"{BASE}/status", status=502)
    api.get(f"{BASE}/status", json={"executionId": "X-8", "status": "RUNNING"})
    poll(execution)
    assert Execution.objects.get(pk=execution.pk).poll_failures == 1
    poll(execution)
    assert Execution.objects.get(pk=execution.pk).poll_failures == 0


def test_it_ends_in_error_when_the_external_job_fails_and_restarts_with_the_failed_execution_id(api, rest_job):
    api.post(f"{BASE}/start", json={"executionId": "X-9", "status": "RUNNING"})
    api.get(f"{BASE}/status", json={"executionId": "X-9", "status": "ERROR", "executionInfo": "bad input file"})
    api.get(f"{BASE}/log", body="failed at line 7\n")
    execution = start(rest_job)
    poll(execution)
    failed = Execution.objects.get(pk=execution.pk)
    assert (failed.status, failed.error, failed.log) == (Status.ERROR, "bad input file", "failed at line 7\n")

    api.post(f"{BASE}/restart", json={"executionId": "X-10", "status": "RUNNING"})
    restarted = services.restart(failed, by="ops")
    body = json.loads(calls_to(api, "/restart")[0].request.body)
    assert body["executionId"] == "X-9"
    assert body["jobName"] == "extract_sales" and body["agentExecutionId"] == str(restarted.agent_execution_id)
    restarted.refresh_from_db()
    assert (restarted.trigger, restarted.restart_of_id, restarted.external_execution_id) == (Trigger.RESTART, failed.pk, "X-10")


def test_restart_falls_back_to_start_when_the_type_defines_no_restart(api, rest_job, job_type):
    job_type.restart_path = ""
    job_type.save()
    api.post(f"{BASE}/start", json={"executionId": "X-11", "status": "ERROR"})
    failed = start(rest_job)
    assert failed.status == Status.ERROR
    services.restart(failed, by="ops")
    assert len(calls_to(api, "/start")) == 2
    assert "executionId" not in json.loads(calls_to(api, "/start")[1].request.body)


def test_kill_calls_the_kill_endpoint_and_ends_the_execution_in_error(api, rest_job):
    api.post(f"{BASE}/start", json={"executionId": "X-12", "status": "RUNNING"})
    api.post(f"{BASE}/kill", json={"executionId": "X-12", "status": "ERROR"})
    execution = start(rest_job)
    killed = services.kill(execution, by="ops")
    assert json.loads(calls_to(api, "/kill")[0].request.body) == {
        "processName": "extract_sales", "jobName": "extract_sales", "executionId": "X-12"}
    assert (killed.status, killed.error) == (Status.ERROR, "killed by ops")
    assert not Execution.objects.filter(retry_of=killed).exists()


def test_kill_is_refused_when_the_type_defines_no_kill(api, rest_job, job_type):
    job_type.kill_path = ""
    job_type.save()
    api.post(f"{BASE}/start", json={"executionId": "X-13", "status": "RUNNING"})
    execution = start(rest_job)
    with pytest.raises(BatchError) as refused:
        services.kill(execution, by="ops")
    assert refused.value.message == "Kill is not defined for job type MOCKTYPE"
    assert Execution.objects.get(pk=execution.pk).status == Status.RUNNING


def test_a_failed_kill_call_changes_nothing(api, rest_job):
    api.post(f"{BASE}/start", json={"executionId": "X-14", "status": "RUNNING"})
    api.post(f"{BASE}/kill", status=500)
    execution = start(rest_job)
    with pytest.raises(BatchError) as refused:
        services.kill(execution, by="ops")
    assert refused.value.code == "KILL_FAILED"
    assert Execution.objects.get(pk=execution.pk).status == Status.RUNNING


def test_it_kills_and_ends_a_run_past_its_timeout(api, rest_job):
    rest_job.timeout_seconds = 60
    rest_job.save()
    api.post(f"{BASE}/start", json={"executionId": "X-15", "status": "RUNNING"})
    api.post(f"{BASE}/kill", json={})
    execution = start(rest_job)
    Execution.objects.filter(pk=execution.pk).update(started_at=timezone.now() - timedelta(seconds=61))
    poll(execution)
    ended = Execution.objects.get(pk=execution.pk)
    assert (ended.status, ended.error) == (Status.ERROR, "timeout")
    assert len(calls_to(api, "/kill")) == 1


def test_the_log_can_be_fetched_on_demand(api, rest_job):
    api.post(f"{BASE}/start", json={"executionId": "X-16", "status": "RUNNING"})
    api.get(f"{BASE}/log", body="halfway\n")
    execution = start(rest_job)
    assert services.fetch_log(execution).log == "halfway\n"


@pytest.mark.parametrize("status, up", [(200, True), (204, True), (201, False), (500, False)])
def test_the_system_check_is_up_only_on_200_or_204(api, job_type, status, up):
    api.get(f"{BASE}/health", status=status)
    result = services.system_check(job_type)
    assert (result.up, result.status_code) == (up, status)
    job_type.refresh_from_db()
    assert job_type.last_check_up is up


def test_the_system_check_is_down_when_nothing_answers(api, job_type):
    api.get(f"{BASE}/health", body=requests.ConnectionError("refused"))
    result = services.system_check(job_type)
    assert not result.up and "cannot connect" in result.error


def test_plain_http_is_refused_unless_the_installation_allows_it(api, rest_job, job_type, settings):
    settings.OAUTH_ALLOW_INSECURE_TRANSPORT = False
    job_type.url = "http://ext.example.com/pom"
    job_type.save()
    execution = start(rest_job)
    assert execution.status == Status.ERROR
    assert "Refusing plain http://" in execution.error
    assert not api.calls


def test_configure_environment_points_one_application_at_another_url(api, rest_job, app):
    other_base = "https://uat.example.com/pom"
    call_command("configure_environment", app.name, "--job-type", "MOCKTYPE", "--url", other_base, "--scope", "uat")
    api.post(f"{other_base}/start", json={"executionId": "U-1", "status": "RUNNING"})
    execution = start(rest_job)
    assert execution.external_execution_id == "U-1"
    assert parse_qs(calls_to(api, "/oauth/token")[0].request.body)["scope"] == ["uat"]
    assert JobType.objects.get(name="MOCKTYPE").url == BASE  # the definition itself is untouched


@pytest.mark.parametrize(
    "args, message",
    [
        (["NOPE", "--job-type", "MOCKTYPE", "--url", "https://x.example"], "No application named 'NOPE'"),
        (["RMS", "--job-type", "NOPE", "--url", "https://x.example"], "Unknown job type 'NOPE'"),
        (["RMS", "--job-type", "MOCKTYPE", "--url", "not a url"], "is not an http(s) URL"),
    ],
)
def test_configure_environment_refuses_bad_input_with_a_clear_message(job_type, app, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call_command("configure_environment", *args)
    assert not app.job_type_environments.exists()


def test_the_secret_is_stored_encrypted_and_never_logged(api, rest_job, job_type, caplog):
    caplog.set_level(logging.DEBUG)
    assert SECRET not in job_type.client_secret_encrypted
    api.post(f"{BASE}/start", status=500, body="nope")
    execution = start(rest_job)
    assert SECRET not in execution.log + execution.error
    assert SECRET not in caplog.text


def test_the_secret_never_appears_on_an_admin_page(admin_client_logged, job_type):
    for url in ["/admin/catalog/jobtype/", f"/admin/catalog/jobtype/{job_type.pk}/change/"]:
        page = admin_client_logged.get(url)
        assert page.status_code == 200
        assert SECRET not in page.content.decode()
        assert job_type.client_secret_encrypted not in page.content.decode()


def test_the_admin_stores_a_new_secret_encrypted_and_keeps_it_when_left_blank(admin_client_logged, job_type):
    url = f"/admin/catalog/jobtype/{job_type.pk}/change/"
    form = {field: getattr(job_type, field) for field in [
        "name", "description", "url", "start_path", "status_path", "restart_path", "kill_path", "log_path",
        "check_path", "scope", "poll_interval_seconds", "request_timeout_seconds", "token_url", "client_id"]}
    form.update({"environments-TOTAL_FORMS": "0", "environments-INITIAL_FORMS": "0"})
    response = admin_client_logged.post(url, {**form, "client_secret": ""})
    assert response.status_code == 302
    job_type.refresh_from_db()
    assert job_type.endpoint().credentials.client_secret == SECRET
    admin_client_logged.post(url, {**form, "client_secret": "rotated-secret"})
    job_type.refresh_from_db()
    assert job_type.endpoint().credentials.client_secret == "rotated-secret"
    assert "rotated-secret" not in job_type.client_secret_encrypted


def test_a_poll_batch_polls_its_executions_concurrently_and_skips_finished_ones(api, make_job, job_type):
    for i in range(6):
        api.post(f"{BASE}/start", json={"executionId": f"B-{i}", "status": "RUNNING"})
    executions = [start(make_job(f"batch_{i}", job_type="MOCKTYPE", command="")) for i in range(6)]
    api.get(f"{BASE}/status", json={"status": "COMPLETED"})
    api.get(f"{BASE}/log", body="ok\n")
    Execution.objects.filter(pk=executions[0].pk).update(status=Status.COMPLETED)
    assert polling.poll_batch([e.pk for e in executions]) == 5
    assert Execution.objects.filter(status=Status.COMPLETED).count() == 6


def test_the_dispatcher_hands_out_only_due_polls_and_moves_their_lease(api, make_job, job_type, monkeypatch):
    from django_q.conf import Conf

    api.post(f"{BASE}/start", json={"executionId": "D-1", "status": "RUNNING"})
    api.get(f"{BASE}/status", json={"status": "RUNNING"})
    due = start(make_job("due", job_type="MOCKTYPE", command=""))
    later = start(make_job("later", job_type="MOCKTYPE", command=""))
    Execution.objects.filter(pk=due.pk).update(next_check_at=timezone.now() - timedelta(seconds=1))
    monkeypatch.setattr(Conf, "SYNC", True)  # the poll batch runs here, at once
    assert polling.claim_due_polls() == 1
    assert len(calls_to(api, "/status")) == 1
    assert Execution.objects.get(pk=later.pk).next_check_at == later.next_check_at
