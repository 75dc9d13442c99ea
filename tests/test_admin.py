"""The admin console: triggering, the execution page and its log, actions, and who may do what."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.catalog.models import Flow, JobType, Process
from apps.catalog.roles import ADMINISTRATOR, BATCH_APPS, VIEWER, is_administrator, is_viewer
from apps.engine.models import Execution, Status, Trigger
from apps.scheduling.models import Schedule

pytestmark = pytest.mark.django_db

JOBS = reverse("admin:catalog_jobdefinition_changelist")
EXECUTIONS = reverse("admin:engine_execution_changelist")


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    """The cast's logins are made with passwords: hash them cheaply."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def viewer_client(client, viewer):
    client.force_login(viewer)
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def trigger_url(job) -> str:
    return reverse("admin:catalog_jobdefinition_trigger", args=[job.pk])


def log_url(execution) -> str:
    return reverse("admin:engine_execution_log", args=[execution.pk])


def execution_of(job, **fields) -> Execution:
    return Execution.objects.create(job=job, application=job.application, **fields)


# --- triggering -------------------------------------------------------------------------


def test_it_triggers_selected_jobs_from_the_changelist_and_runs_them(
    admin_client_logged, make_job, sync_queue, django_capture_on_commit_callbacks
):
    job = make_job("hello", command='echo "hello from $BATCH_JOB_NAME"')
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_logged.post(JOBS, {"action": "trigger_now", "_selected_action": [job.pk]},
                                            follow=True)
    execution = Execution.objects.get(job=job)
    assert messages_of(response) == [f"Triggered 1: hello (#{execution.pk})."]
    assert (execution.status, execution.trigger, execution.triggered_by) == (Status.COMPLETED, Trigger.MANUAL, "ada")
    assert "hello from hello\n" in execution.log


def test_it_reports_jobs_it_refused_to_trigger(admin_client_logged, make_job):
    on, off = make_job("on"), make_job("off", enabled=False)
    response = admin_client_logged.post(JOBS, {"action": "trigger_now", "_selected_action": [on.pk, off.pk]},
                                        follow=True)
    assert Execution.objects.get().job == on
    assert messages_of(response)[1] == "Refused: off: Job off is disabled."


def test_it_shows_the_trigger_page_with_the_default_parameters(admin_client_logged, make_job):
    job = make_job("extract", parameters="region=EU||day=Mon")
    response = admin_client_logged.get(trigger_url(job))
    assert response.status_code == 200
    assert "region=EU||day=Mon" in response.content.decode()
    change_page = admin_client_logged.get(reverse("admin:catalog_jobdefinition_change", args=[job.pk]))
    assert trigger_url(job) in change_page.content.decode()


def test_it_triggers_one_job_with_parameters_from_its_trigger_page(
    admin_client_logged, make_job, sync_queue, django_capture_on_commit_callbacks
):
    job = make_job("extract", command='echo "$BATCH_PARAM_REGION on $BATCH_PARAM_DAY"', parameters="region=EU||day=Mon")
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_logged.post(trigger_url(job), {"parameters": "day=Tue"})
    execution = Execution.objects.get(job=job)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:engine_execution_change", args=[execution.pk])
    assert execution.parameters == "region=EU||day=Tue"
    assert execution.status == Status.COMPLETED
    assert "EU on Tue\n" in execution.log


def test_it_shows_why_the_trigger_page_refused(admin_client_logged, make_job):
    job = make_job("extract")
    response = admin_client_logged.post(trigger_url(job), {"parameters": "day=Tue||oops"})
    assert response.status_code == 200
    assert "INVALID_PARAMETERS: Malformed parameter pair &#x27;oops&#x27;" in response.content.decode()
    assert 'value="day=Tue||oops"' in response.content.decode()
    assert not Execution.objects.exists()


# --- the execution page and its log -------------------------------------------------------


def test_it_shows_the_log_on_the_execution_page(admin_client_logged, make_job):
    execution = execution_of(make_job(), status=Status.RUNNING, log="line one\n<b>not markup</b>\n")
    response = admin_client_logged.get(reverse("admin:engine_execution_change", args=[execution.pk]))
    page = response.content.decode()
    assert response.status_code == 200
    assert "line one\n&lt;b&gt;not markup&lt;/b&gt;" in page
    assert f'data-tail-url="{log_url(execution)}"' in page
    assert 'data-active="1"' in page
    assert f"{log_url(execution)}?download=1" in page


def test_it_serves_the_log_from_an_offset_for_the_live_tail(admin_client_logged, make_job):
    execution = execution_of(make_job(), status=Status.RUNNING, log="héllo\nworld\n")
    whole = admin_client_logged.get(log_url(execution)).json()
    assert whole == {"status": "RUNNING", "offset": 13, "text": "héllo\nworld\n", "active": True}
    assert admin_client_logged.get(log_url(execution), {"offset": 7}).json()["text"] == "world\n"
    assert admin_client_logged.get(log_url(execution), {"offset": 13}).json()["text"] == ""
    assert admin_client_logged.get(log_url(execution), {"offset": "junk"}).json()["text"] == "héllo\nworld\n"


def test_it_downloads_the_whole_log(admin_client_logged, make_job):
    execution = execution_of(make_job(), status=Status.COMPLETED, log="all\nof it\n")
    response = admin_client_logged.get(log_url(execution), {"download": "1"})
    assert response.content == b"all\nof it\n"
    assert response["Content-Disposition"] == f'attachment; filename="execution-{execution.pk}.log"'


def test_it_answers_404_for_the_log_of_an_unknown_execution(admin_client_logged):
    assert admin_client_logged.get(reverse("admin:engine_execution_log", args=[999999])).status_code == 404


# --- kill and restart -------------------------------------------------------------------


def test_it_kills_selected_executions(admin_client_logged, make_job):
    pending = execution_of(make_job("a"))
    running = execution_of(make_job("b"), status=Status.RUNNING)
    done = execution_of(make_job("c"), status=Status.COMPLETED)
    response = admin_client_logged.post(
        EXECUTIONS, {"action": "kill", "_selected_action": [pending.pk, running.pk, done.pk]}, follow=True
    )
    pending.refresh_from_db(), running.refresh_from_db(), done.refresh_from_db()
    assert (pending.status, pending.error) == (Status.ERROR, "killed by ada")
    assert (running.status, running.kill_requested_by) == (Status.RUNNING, "ada")  # its runner stops it
    assert done.status == Status.COMPLETED
    notes = messages_of(response)
    assert notes[0].startswith("Kill requested for 2: #")
    assert f"#{done.pk}: Execution {done.pk} is COMPLETED; only active executions can be killed." in notes[1]


def test_it_restarts_failed_executions_only(admin_client_logged, make_job, handed_out):
    failed = execution_of(make_job("a", parameters="day=Mon"), status=Status.ERROR, parameters="day=Tue")
    done = execution_of(make_job("b"), status=Status.COMPLETED)
    response = admin_client_logged.post(EXECUTIONS, {"action": "restart", "_selected_action": [failed.pk, done.pk]},
                                        follow=True)
    restarted = Execution.objects.get(restart_of=failed)
    assert (restarted.trigger, restarted.triggered_by, restarted.parameters) == (Trigger.RESTART, "ada", "day=Tue")
    assert not Execution.objects.filter(restart_of=done).exists()
    notes = messages_of(response)
    assert notes[0].startswith(f"Restarted 1: #{failed.pk} as #")
    assert "only executions in ERROR can be restarted" in notes[1]


# --- every page loads -------------------------------------------------------------------


@pytest.fixture
def some_of_everything(make_job, app):
    job = make_job("extract", lock_group="ledger")
    flow = Flow.objects.create(application=app, name="Nightly", cycle="Nightly")
    Process.objects.create(flow=flow, name="Close")
    JobType.objects.create(name="MOCKTYPE", url="http://ext", start_path="/start", status_path="/status")
    agent = Agent.objects.create(name="cluster@h:1", kind=AgentKind.CLUSTER, host="h", pid=1,
                                 last_heartbeat=timezone.now())
    Schedule.objects.create(job=job, kind="cron", cron="0 2 * * *")
    for status in Status.values:
        execution_of(job, status=status, agent=agent, started_at=timezone.now(), log="x")


def page_urls(model, model_admin, user) -> list[tuple[str, int]]:
    """Changelist, add page and the first object's change page, with the status each must give."""
    info = model._meta.app_label, model._meta.model_name
    request = RequestFactory().get("/")
    request.user = user
    urls = [(reverse("admin:%s_%s_changelist" % info), 200),
            (reverse("admin:%s_%s_add" % info), 200 if model_admin.has_add_permission(request) else 403)]
    first = model_admin.get_queryset(request).first()
    if first is not None:
        urls.append((reverse("admin:%s_%s_change" % info, args=[first.pk]), 200))
    return urls


def test_it_loads_every_admin_page_for_a_superuser(client, some_of_everything):
    superuser = User.objects.create_superuser("root", password="pw-root-123")
    client.force_login(superuser)
    checked = 0
    for model, model_admin in admin.site._registry.items():
        for url, status in page_urls(model, model_admin, superuser):
            assert client.get(url).status_code == status, url
            checked += 1
    assert checked > 20
    assert client.get(reverse("admin:index")).status_code == 200


def test_it_loads_every_batch_page_for_an_administrator(admin_client_logged, administrator, some_of_everything):
    batch_models = [(m, a) for m, a in admin.site._registry.items() if m._meta.app_label in BATCH_APPS]
    assert {m._meta.model_name for m, _ in batch_models} >= {
        "application", "flow", "process", "jobtype", "jobdefinition", "execution", "agent", "schedule"}
    for model, model_admin in batch_models:
        for url, status in page_urls(model, model_admin, administrator):
            assert admin_client_logged.get(url).status_code == status, url
    assert admin_client_logged.get(reverse("admin:engine_execution_add")).status_code == 403
    assert admin_client_logged.get(reverse("admin:agents_agent_add")).status_code == 403


# --- who may do what --------------------------------------------------------------------


def test_it_lets_a_viewer_see_jobs_but_not_trigger_them(viewer_client, make_job):
    job = make_job("extract")
    changelist = viewer_client.get(JOBS)
    assert changelist.status_code == 200
    assert "extract" in changelist.content.decode()
    assert "trigger_now" not in changelist.content.decode()

    viewer_client.post(JOBS, {"action": "trigger_now", "_selected_action": [job.pk]})
    assert viewer_client.get(trigger_url(job)).status_code == 403
    assert viewer_client.post(trigger_url(job), {"parameters": ""}).status_code == 403
    assert not Execution.objects.exists()

    change_page = viewer_client.get(reverse("admin:catalog_jobdefinition_change", args=[job.pk]))
    assert change_page.status_code == 200
    assert trigger_url(job) not in change_page.content.decode()
    assert viewer_client.get(reverse("admin:catalog_jobdefinition_add")).status_code == 403


def test_it_lets_a_viewer_read_executions_and_logs_but_not_kill_or_restart(viewer_client, make_job):
    running = execution_of(make_job(), status=Status.RUNNING, log="tail me\n")
    changelist = viewer_client.get(EXECUTIONS)
    assert changelist.status_code == 200
    assert 'value="kill"' not in changelist.content.decode()
    assert 'value="restart"' not in changelist.content.decode()
    assert viewer_client.get(reverse("admin:engine_execution_change", args=[running.pk])).status_code == 200
    assert viewer_client.get(log_url(running)).json()["text"] == "tail me\n"

    viewer_client.post(EXECUTIONS, {"action": "kill", "_selected_action": [running.pk]})
    running.refresh_from_db()
    assert (running.status, running.kill_requested_by) == (Status.RUNNING, "")


def test_it_lets_an_administrator_see_the_actions(admin_client_logged, make_job):
    execution_of(make_job(), status=Status.ERROR)
    assert 'value="trigger_now"' in admin_client_logged.get(JOBS).content.decode()
    page = admin_client_logged.get(EXECUTIONS).content.decode()
    assert 'value="kill"' in page and 'value="restart"' in page


@pytest.mark.parametrize("name", ["jobs", "trigger", "log", "execution"])
def test_it_sends_anonymous_visitors_to_the_login_page(client, make_job, name):
    job = make_job()
    execution = execution_of(job)
    url = {"jobs": JOBS, "trigger": trigger_url(job), "log": log_url(execution),
           "execution": reverse("admin:engine_execution_change", args=[execution.pk])}[name]
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login") + "?next=")
    assert client.post(url, {"parameters": ""}).status_code == 302
    assert Execution.objects.count() == 1


# --- agents -----------------------------------------------------------------------------


def test_it_blocks_and_unblocks_agents(admin_client_logged):
    def agent(name, status):
        return Agent.objects.create(name=name, kind=AgentKind.CLUSTER, host="h", pid=1, status=status,
                                    last_heartbeat=timezone.now())

    ready, offline = agent("ready", AgentStatus.READY), agent("offline", AgentStatus.OFFLINE)
    url = reverse("admin:agents_agent_changelist")
    response = admin_client_logged.post(url, {"action": "block", "_selected_action": [ready.pk, offline.pk]},
                                        follow=True)
    assert messages_of(response) == ["Blocked 1 agents."]
    assert dict(Agent.objects.values_list("name", "status")) == {"ready": AgentStatus.BLOCKED,
                                                                "offline": AgentStatus.OFFLINE}
    response = admin_client_logged.post(url, {"action": "unblock", "_selected_action": [ready.pk, offline.pk]},
                                        follow=True)
    assert messages_of(response) == ["Unblocked 1 agents."]
    assert dict(Agent.objects.values_list("name", "status")) == {"ready": AgentStatus.READY,
                                                                "offline": AgentStatus.OFFLINE}


def test_it_does_not_let_a_viewer_block_agents(viewer_client):
    agent = Agent.objects.create(name="ready", kind=AgentKind.CLUSTER, host="h", pid=1, last_heartbeat=timezone.now())
    viewer_client.post(reverse("admin:agents_agent_changelist"), {"action": "block", "_selected_action": [agent.pk]})
    agent.refresh_from_db()
    assert agent.status == AgentStatus.READY


# --- roles ------------------------------------------------------------------------------


def batch_permissions():
    return Permission.objects.filter(content_type__app_label__in=BATCH_APPS)


def test_it_creates_the_administrator_role_with_every_batch_permission(db):
    granted = set(Group.objects.get(name=ADMINISTRATOR).permissions.values_list("pk", flat=True))
    assert granted == set(batch_permissions().values_list("pk", flat=True))
    codenames = set(Group.objects.get(name=ADMINISTRATOR).permissions.values_list("codename", flat=True))
    assert {"add_jobdefinition", "change_jobdefinition", "delete_execution", "change_agent"} <= codenames


def test_it_creates_the_viewer_role_with_view_permissions_only(db):
    granted = set(Group.objects.get(name=VIEWER).permissions.values_list("codename", flat=True))
    assert granted == set(batch_permissions().filter(codename__startswith="view_").values_list("codename", flat=True))
    assert {"view_jobdefinition", "view_execution", "view_agent", "view_schedule"} <= granted


def test_it_tells_the_roles_apart(administrator, viewer):
    outsider = User.objects.create_user("out", is_staff=True)
    root = User.objects.create_superuser("root")
    assert (is_administrator(administrator), is_viewer(administrator)) == (True, True)
    assert (is_administrator(viewer), is_viewer(viewer)) == (False, True)
    assert (is_administrator(outsider), is_viewer(outsider)) == (False, False)
    assert is_administrator(root)


def test_it_refuses_a_nul_character_in_parameters_instead_of_failing(admin_client_logged, make_job):
    job = make_job("extract")
    response = admin_client_logged.post(trigger_url(job), {"parameters": "day=Tue\x00"})
    assert response.status_code == 200
    assert "INVALID_PARAMETERS" in response.content.decode()
    assert not Execution.objects.exists()


@pytest.mark.parametrize("url", [EXECUTIONS, reverse("admin:agents_agent_changelist"), JOBS])
def test_it_searches_with_any_text(admin_client_logged, make_job, url):
    execution = execution_of(make_job("extract"), status=Status.ERROR, error="disk full")
    for term in ["extract", "not-a-uuid", str(execution.agent_execution_id), "%_'\"", "disk"]:
        assert admin_client_logged.get(url, {"q": term}).status_code == 200, term
    found = admin_client_logged.get(EXECUTIONS, {"q": str(execution.agent_execution_id)})
    assert found.context["cl"].result_count == 1
