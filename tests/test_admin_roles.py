"""The console's role matrix (STYLE habit 6): every admin page and every admin action, for an
anonymous visitor, a viewer and an administrator.

Nothing here lists the pages or the actions by hand. They are read from the admin site:
- model pages: for each ModelAdmin registered on `admin.site`, its changelist, add, change,
  delete and history pages, and whatever else its `get_urls()` adds;
- site pages: the site's own URLs beside the models' (`AdminSite.get_urls()`: Django's index,
  login, … and the console's monitoring, health and spreadsheet pages);
- actions: every action a superuser is offered by each ModelAdmin (`get_actions`).
The standard model pages and `delete_selected` follow one rule for every model. A page or an
action a ModelAdmin or the site adds needs an entry in PAGES or ACTIONS below, which says what
a viewer and an administrator get; one without an entry fails its own test by name, and an
entry that no longer matches anything fails `test_it_has_a_rule_for_every_page_and_action`.

The roles cover the batch apps (apps.catalog.roles.BATCH_APPS). The other admins (django-q2's
task records, users, groups, tokens, the demo external system) are outside both roles: a viewer
and an administrator are refused everywhere there, and a superuser opens them.
"""

from __future__ import annotations

import io
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Callable

import pytest
import responses
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.test import Client, RequestFactory, TestCase
from django.urls import URLPattern, reverse
from django.utils import timezone
from django.views.generic import RedirectView
from django_q.models import OrmQ, Task
from django_q.signing import SignedPackage
from rest_framework.authtoken.models import Token

from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.audit.models import AuditEntry
from apps.catalog.models import Application, Flow, JobDefinition, JobType, Process
from apps.catalog.roles import BATCH_APPS
from apps.engine.models import Execution, Status, Trigger
from apps.extsys.models import ExternalExecution
from apps.flows import services as flows
from apps.flows.models import FlowRun
from apps.notifications.models import Notification, NotificationRule
from apps.scheduling import services as scheduling
from apps.scheduling.models import Schedule
from apps.spreadsheet import exporter, loader
from tests.spreadsheets import Sheets

pytestmark = pytest.mark.django_db

SITE = admin.site
EXTERNAL = "https://ext.example.com/pom"
TOKEN_URL = "https://auth.example.com/oauth/token"
LOGIN = reverse("admin:login")
ROLES = ["viewer", "administrator"]

# --- what there is: read from the admin site ---------------------------------------------

STANDARD = ("changelist", "add", "change", "delete", "history")
MODEL_ADMINS: dict[str, admin.ModelAdmin] = {
    model._meta.label_lower: model_admin for model, model_admin in SITE._registry.items()
}
BATCH = sorted(label for label in MODEL_ADMINS if label.split(".")[0] in BATCH_APPS)
OUTSIDE = sorted(set(MODEL_ADMINS) - set(BATCH))

# What no one may do, superusers included: the admin is built that way, not a matter of role.
CLOSED_BY_DESIGN = {
    "agents.agent": {"add"},  # agents register themselves
    "engine.execution": {"add", "change", "delete"},  # the record of what ran; kill/restart are actions
    "flows.flowrun": {"add", "change", "delete"},  # started from its flow; moved by its executions and actions
    "audit.auditentry": {"add", "change", "delete"},  # written by the services, never by hand
    "notifications.notification": {"add", "change", "delete"},  # the record of what was sent
}


@dataclass(frozen=True)
class Page:
    name: str  # in the `admin` namespace
    owner: str  # the ModelAdmin's "app.model", or "site"
    params: tuple[str, ...]  # the URL's keyword arguments

    @property
    def standard(self) -> str | None:
        """changelist, add, change, delete or history for a model's standard page."""
        prefix = self.owner.replace(".", "_") + "_"
        kind = self.name.removeprefix(prefix)
        return kind if self.owner != "site" and kind in STANDARD else None


def named_pages(patterns, owner: str) -> list[Page]:
    return [Page(p.name, owner, tuple(p.pattern.regex.groupindex)) for p in patterns
            if isinstance(p, URLPattern) and p.name]


def unnamed_urls() -> list[str]:
    """Every admin URL without a name, but Django's own redirects (model/<id>/ → change page) and
    the site's catch-all: a page the matrix cannot reverse."""
    patterns = list(SITE.get_urls()) + [p for a in MODEL_ADMINS.values() for p in a.get_urls()]
    return [str(p.pattern) for p in patterns if isinstance(p, URLPattern) and not p.name
            and getattr(p.callback, "view_class", None) is not RedirectView
            and p.callback.__name__ != "catch_all_view"]


PAGES_OF: dict[str, list[Page]] = {
    "site": named_pages(SITE.get_urls(), "site"),
    **{label: named_pages(model_admin.get_urls(), label) for label, model_admin in MODEL_ADMINS.items()},
}
# The pages with a rule of their own: the site's and those a batch ModelAdmin adds.
CONSOLE_PAGES = [page for label in ["site", *BATCH] for page in PAGES_OF[label] if page.standard is None]


def offered(model_admin: admin.ModelAdmin, user) -> list[str]:
    request = RequestFactory().get("/")
    request.user = user
    return list(model_admin.get_actions(request))


# An unsaved superuser: has_perm answers without the database, so actions are found at collection.
ROOT = User(username="root", is_superuser=True, is_staff=True, is_active=True)
ALL_ACTIONS = [f"{label}.{name}" for label, model_admin in MODEL_ADMINS.items() for name in offered(model_admin, ROOT)]


# --- the world the pages and actions work on -----------------------------------------------


@dataclass
class World:
    app: Application
    spare_app: Application  # disabled, nothing attached
    job_type: JobType  # every path, used by a job
    job: JobDefinition  # EXEC, enabled
    custom_job: JobDefinition  # MOCKTYPE
    spare_job: JobDefinition  # disabled, never ran
    schedule: Schedule
    paused: Schedule
    ready: Agent
    blocked: Agent
    loaded: Execution
    running: Execution  # of the custom job, started on the external system
    failed: Execution
    held: Execution
    flow: Flow
    run: FlowRun  # open, its one job waiting
    held_run: FlowRun
    handed_out: list[int] = field(default_factory=list)


@pytest.fixture
def world(app, make_job, administrator, handed_out) -> World:
    spare_app = Application.objects.create(name="SPARE", enabled=False)
    flow = Flow.objects.create(application=app, name="Nightly", cycle="Nightly")
    Flow.objects.create(application=app, name="Spare")  # no runs: it may be deleted
    process = Process.objects.create(flow=flow, name="Close")
    job_type = JobType(name="MOCKTYPE", url=EXTERNAL, start_path="/start", status_path="/status",
                       restart_path="/restart", kill_path="/kill", log_path="/log", check_path="/health",
                       token_url=TOKEN_URL, client_id="batchdesk")
    job_type.set_client_secret("s3cr3t")
    job_type.save()
    JobType.objects.create(name="SPARETYPE", url=EXTERNAL, start_path="/start", status_path="/status")
    job = make_job("nightly", process=process, description="The nightly close")
    custom_job = make_job("extract_sales", job_type="MOCKTYPE", command="")
    spare_job = make_job("spare", enabled=False)
    paused = Schedule.objects.create(job=custom_job, kind="cron", cron="0 3 * * *")
    now = timezone.now()
    ready = Agent.objects.create(name="cluster@h:1", kind=AgentKind.CLUSTER, host="h", pid=1, last_heartbeat=now)
    execution = {"job": job, "application": app}
    world = World(
        app=app, spare_app=spare_app, job_type=job_type, job=job, custom_job=custom_job, spare_job=spare_job,
        schedule=Schedule.objects.create(job=job, kind="cron", cron="0 2 * * *"),
        paused=scheduling.pause(paused, by="setup"),
        ready=ready,
        blocked=Agent.objects.create(name="cluster@h:2", kind=AgentKind.CLUSTER, host="h", pid=2, blocked=True,
                                     status=AgentStatus.BLOCKED, last_heartbeat=now),
        loaded=Execution.objects.create(**execution),
        running=Execution.objects.create(job=custom_job, application=app, status=Status.RUNNING, started_at=now,
                                         agent=ready, external_execution_id="X-1", log="so far\n"),
        failed=Execution.objects.create(**execution, status=Status.ERROR, started_at=now, finished_at=now,
                                        error="exit code 1", log="boom\n"),
        held=Execution.objects.create(**execution, status=Status.HELD, waiting_reason="held by setup"),
        flow=flow,
        run=flows.start_run(flow, business_date=date(2026, 12, 1), triggered_by="setup"),
        held_run=flows.hold(flows.start_run(flow, business_date=date(2026, 12, 2), triggered_by="setup"), by="setup"),
        handed_out=handed_out,
    )
    AuditEntry.objects.create(actor="setup", action="trigger", target_type="job definition", target="nightly")
    rule = NotificationRule.objects.create(application=app, channel="email", target="ops@example.com",
                                           on_long_running=True)
    NotificationRule.objects.create(job=job, channel="email", target="spare@example.com")  # may be deleted
    Notification.objects.create(rule=rule, event="execution_failed", channel="email", target="ops@example.com",
                                subject="nightly failed", object_type="execution", object_id="1")
    # Outside the batch roles: one row for each of the other admins.
    ExternalExecution.objects.create(cycle_name="Nightly", flow_name="Nightly", process_name="Close", duration=5,
                                     job_name="extract_sales", agent_execution_id="X-1", outcome="COMPLETED")
    for success in (True, False):
        Task.objects.create(id=uuid.uuid4().hex, name=f"task-{success}", func="math.floor", started=now, stopped=now,
                            success=success)
    OrmQ.objects.create(key="batchdesk", lock=now, payload=SignedPackage.dumps(
        {"id": uuid.uuid4().hex, "name": "queued", "func": "math.floor", "args": (1.5,), "kwargs": {}}))
    Token.objects.create(user=administrator)
    return world


@pytest.fixture
def cast(administrator, viewer) -> dict[str, Client]:
    clients = {"anonymous": Client()}
    for role, user in (("viewer", viewer), ("administrator", administrator)):
        clients[role] = Client()
        clients[role].force_login(user)
    return clients


@pytest.fixture
def superuser_client() -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("root", password="pw-root-123"))
    return client


@pytest.fixture(autouse=True)
def external_system():
    """The job type's system check and log calls, answered."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(TOKEN_URL, json={"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600})
        mock.get(f"{EXTERNAL}/health", status=204)
        mock.get(f"{EXTERNAL}/log", body="from the external system\n")
        yield mock


@pytest.fixture(autouse=True)
def uploads_in_tmp(settings, tmp_path) -> None:
    settings.VAR_DIR = tmp_path


# --- helpers ------------------------------------------------------------------------------


def ask(client: Client, who: str, method: str, url: str, status: int | tuple[int, ...], data=None, **extra):
    """The response to `method url`; fails naming the role, the request and the answer."""
    response = getattr(client, method.lower())(url, data or {}, **extra)
    allowed = status if isinstance(status, tuple) else (status,)
    assert response.status_code in allowed, (
        f"{who}: {method} {url} answered {response.status_code}, the matrix says {status}")
    return response


def snapshot() -> dict[str, list[dict]]:
    """Every row of every model the admin shows."""
    return {model._meta.label: list(model._base_manager.order_by("pk").values()) for model in SITE._registry}


@contextmanager
def unchanged(what: str):
    before = snapshot()
    yield
    after = snapshot()
    changed = [label for label in before if before[label] != after[label]]
    assert not changed, f"{what} changed {', '.join(changed)}"


def to_login(response, who: str, method: str, url: str) -> None:
    assert response.status_code == 302 and response["Location"].startswith(f"{LOGIN}?next="), (
        f"{who}: {method} {url} answered {response.status_code} {response.get('Location', '')}, "
        f"not a redirect to the login page")


def request_of(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


def shown(label: str):
    """The object the change, history and extra pages show: the first of the admin's list."""
    model_admin = MODEL_ADMINS[label]
    first = model_admin.get_queryset(request_of(ROOT)).order_by("pk").first()
    assert first is not None, f"{label}: the world has no row to show; add one to the `world` fixture"
    return first


def deletable(label: str, user):
    """A row that `user` may delete with nothing protected: what the delete page and delete_selected
    get (deleting the others is refused for a reason of their own)."""
    model_admin = MODEL_ADMINS[label]
    request = request_of(user)
    if not designed(label, None)["delete"]:
        return shown(label)  # no row is: the page and the action are closed to everyone
    for obj in model_admin.get_queryset(request).order_by("pk"):
        _, _, perms_needed, protected = model_admin.get_deleted_objects([obj], request)
        if not perms_needed and not protected:
            return obj
    pytest.fail(f"{label}: the world has no row {user} may delete; add a spare one to the `world` fixture")


def designed(label: str, obj) -> dict[str, bool]:
    """What the admin offers at all, asked as a superuser."""
    model_admin, request = MODEL_ADMINS[label], request_of(ROOT)
    return {"add": model_admin.has_add_permission(request), "change": model_admin.has_change_permission(request, obj),
            "delete": model_admin.has_delete_permission(request, obj)}


def url_of(page: Page, obj=None, **kwargs) -> str:
    if page.params and not kwargs:
        assert len(page.params) == 1 and obj is not None, f"admin:{page.name} needs {page.params}"
        kwargs = {page.params[0]: quote(obj.pk)}
    return reverse(f"admin:{page.name}", kwargs=kwargs)


def model_urls(label: str, obj) -> dict[str, str]:
    return {page.standard: url_of(page, obj) for page in PAGES_OF[label] if page.standard}


def posted(bound: forms.BoundField) -> dict:
    """What a browser sends for one field of a form shown with its current values."""
    value, widget = bound.value(), bound.field.widget
    if isinstance(widget, forms.MultiWidget):
        parts = widget.decompress(value)
        return {bound.html_name + suffix: part for suffix, part in zip(widget.widgets_names, parts) if part is not None}
    if isinstance(widget, forms.CheckboxInput):
        return {bound.html_name: "on"} if value else {}
    return {} if value is None else {bound.html_name: value}


def edited_form(client: Client, url: str) -> tuple[dict, str | None, object]:
    """The change form as the administrator's page fills it, with one field edited: (the data,
    the edited field, its new value); (data, None, None) when no field can be edited."""
    page = client.get(url)
    form = page.context["adminform"].form
    inline_forms = [f for inline in page.context["inline_admin_formsets"]
                    for f in (inline.formset.management_form, *inline.formset.forms)]
    data = {"_save": "Save"}
    for one in (form, *inline_forms):
        for bound in one:
            data.update(posted(bound))
    for bound in form:
        if isinstance(bound.field.widget, forms.Textarea):
            data[bound.html_name] = f"{bound.value() or 'Text'} (edited)"
            return data, bound.name, data[bound.html_name]
    for bound in form:
        if isinstance(bound.field.widget, forms.CheckboxInput):
            flipped = not bound.value()
            data.pop(bound.html_name, None)
            data.update({bound.html_name: "on"} if flipped else {})
            return data, bound.name, flipped
    return data, None, None


def errors(page) -> list:
    return [page.context["adminform"].form.errors] + [i.formset.errors for i in page.context["inline_admin_formsets"]]


def notes(response) -> list[tuple[int, str]]:
    return [(m.level, str(m)) for m in response.context["messages"]] if response.context else []


# --- the rules for the pages the site and the ModelAdmins add ----------------------------


@dataclass(frozen=True)
class Rule:
    """`check(role, client, world)` asserts what a viewer or an administrator gets; `kwargs`
    fill the URL for an anonymous visit; `public`: Django's own pages that need no login."""

    check: Callable[[str, Client, World], None]
    kwargs: dict[str, str] = field(default_factory=dict)
    public: bool = False


def reads(url: Callable[[World], str], also: Callable[[str, object], None] | None = None) -> Callable:
    """A page for reading: 200 for a viewer and an administrator alike (and what `also` asserts)."""
    def check(role: str, client: Client, world: World) -> None:
        response = ask(client, role, "GET", url(world), 200)
        if also:
            also(role, response)
    return check


def app_lists(role: str, client: Client, world: World) -> None:
    for app_label in BATCH_APPS:
        ask(client, role, "GET", reverse("admin:app_list", args=[app_label]), 200)


def health_offers_checks(role: str, response) -> None:
    assert response.context["can_check"] is (role == "administrator"), f"{role}: the health page's check button"


def is_a_workbook(role: str, response) -> None:
    assert response["Content-Type"] == exporter.CONTENT_TYPE, f"{role}: the export is not a workbook"


def tails_the_log(role: str, response) -> None:
    assert response.json()["text"] == "so far\n", f"{role}: the log tail"


def run_checks(role: str, client: Client, world: World) -> None:
    url = reverse("admin:run_checks")
    ask(client, role, "GET", url, 405)
    if role == "viewer":
        with unchanged("a viewer's POST to the health check"):
            ask(client, role, "POST", url, 403)
        return
    assert ask(client, role, "POST", url, 302)["Location"] == reverse("admin:health")
    world.job_type.refresh_from_db()
    assert world.job_type.last_check_up is True


def uploaded(role: str, client: Client) -> tuple[str, str, bytes]:
    """Upload the sample workbook and read its dry run: (the preview URL, its page, the workbook)."""
    data = Sheets.base().xlsx()
    file = io.BytesIO(data)
    file.name = "schedule.xlsx"
    preview = ask(client, role, "POST", reverse("admin:spreadsheet_upload"), 302, {"workbook": file})["Location"]
    page = ask(client, role, "GET", preview, 200)
    return preview, b"".join(page.streaming_content).decode(), data


def spreadsheet_preview(role: str, client: Client, world: World) -> None:
    _, html, _ = uploaded(role, client)
    assert "Checked 14 rows" in html, f"{role}: the dry run"
    assert ('name="fingerprint"' in html) is (role == "administrator"), f"{role}: the dry run's confirm button"


def spreadsheet_apply(role: str, client: Client, world: World) -> None:
    preview, _, data = uploaded(role, client)
    confirm = {"fingerprint": loader.dry_run(data).fingerprint()}
    if role == "viewer":
        with unchanged("a viewer's spreadsheet apply"):
            ask(client, role, "POST", preview + "apply/", 403, confirm)
        return
    applied = ask(client, role, "POST", preview + "apply/", 302, confirm)
    assert applied["Location"] == reverse("admin:spreadsheet_upload")
    assert JobDefinition.objects.filter(name="extract_items").exists()


def trigger_page(role: str, client: Client, world: World) -> None:
    url = reverse("admin:catalog_jobdefinition_trigger", args=[world.job.pk])
    if role == "viewer":
        with unchanged("a viewer's trigger"):
            ask(client, role, "GET", url, 403)
            ask(client, role, "POST", url, 403, {"parameters": ""})
        return
    ask(client, role, "GET", url, 200)
    with TestCase.captureOnCommitCallbacks(execute=True):  # the hand-out to the queue, recorded
        response = ask(client, role, "POST", url, 302, {"parameters": "day=Tue"})
    execution = Execution.objects.get(job=world.job, triggered_by="ada")
    assert (execution.parameters, execution.trigger) == ("day=Tue", Trigger.MANUAL)
    assert world.handed_out == [execution.pk]
    assert response["Location"] == reverse("admin:engine_execution_change", args=[execution.pk])


def no_page_outside_the_admin(role: str, client: Client, world: World) -> None:
    """Django's "view on site" redirect: no console model has a page of its own elsewhere."""
    job = ContentType.objects.get_for_model(JobDefinition).pk
    ask(client, role, "GET", reverse("admin:view_on_site", args=[job, world.job.pk]), 404)


def logout(role: str, client: Client, world: World) -> None:
    ask(client, role, "POST", reverse("admin:logout"), 200)
    to_login(client.get(reverse("admin:index")), role, "GET", "/admin/ after logging out")


def operate_page(role: str, client: Client, world: World) -> None:
    url = reverse("admin:engine_execution_operate", args=[world.loaded.pk, "hold"])
    ask(client, role, "GET", url, 405)
    if role == "viewer":
        with unchanged("a viewer's operation on an execution"):
            ask(client, role, "POST", url, 403)
        return
    ask(client, role, "POST", url, 302)
    world.loaded.refresh_from_db()
    assert world.loaded.status == Status.HELD


def start_run_page(role: str, client: Client, world: World) -> None:
    url = reverse("admin:catalog_flow_start", args=[world.flow.pk])
    ask(client, role, "GET", url, 405)
    if role == "viewer":
        with unchanged("a viewer's start of a run"):
            ask(client, role, "POST", url, 403, {"business_date": "2026-12-24"})
        return
    response = ask(client, role, "POST", url, 302, {"business_date": "2026-12-24"})
    run = FlowRun.objects.get(flow=world.flow, business_date=date(2026, 12, 24))
    assert response["Location"] == reverse("admin:flows_flowrun_change", args=[run.pk])


def run_action_page(role: str, client: Client, world: World) -> None:
    url = reverse("admin:flows_flowrun_action", args=[world.held_run.pk, "release"])
    ask(client, role, "GET", url, 405)
    if role == "viewer":
        with unchanged("a viewer's action on a run"):
            ask(client, role, "POST", url, 403)
        return
    ask(client, role, "POST", url, 302)
    world.held_run.refresh_from_db()
    assert not world.held_run.held


PAGES: dict[str, Rule] = {
    # Django's pages of the site.
    "index": Rule(reads(lambda w: reverse("admin:index"))),
    "app_list": Rule(app_lists, kwargs={"app_label": "catalog"}),
    "jsi18n": Rule(reads(lambda w: reverse("admin:jsi18n"))),
    "autocomplete": Rule(reads(lambda w: reverse("admin:autocomplete") + "?app_label=scheduling&model_name=schedule"
                                                                          "&field_name=job&term=night")),
    "password_change": Rule(reads(lambda w: reverse("admin:password_change"))),  # one's own password
    "password_change_done": Rule(reads(lambda w: reverse("admin:password_change_done"))),
    "login": Rule(lambda role, client, w: ask(client, role, "GET", LOGIN, 302), public=True),  # signed in: index
    "logout": Rule(logout, public=True),
    "view_on_site": Rule(no_page_outside_the_admin, kwargs={"content_type_id": "1", "object_id": "1"}, public=True),
    # The console's pages (apps/console/sites.py).
    "monitoring": Rule(reads(lambda w: reverse("admin:monitoring"))),
    "monitoring_live": Rule(reads(lambda w: reverse("admin:monitoring_live"))),
    "health": Rule(reads(lambda w: reverse("admin:health"), health_offers_checks)),
    "run_checks": Rule(run_checks),
    "spreadsheet_upload": Rule(reads(lambda w: reverse("admin:spreadsheet_upload"))),
    "spreadsheet_export": Rule(reads(lambda w: reverse("admin:spreadsheet_export"), is_a_workbook)),
    "spreadsheet_preview": Rule(spreadsheet_preview, kwargs={"token": "unknown"}),
    "spreadsheet_apply": Rule(spreadsheet_apply, kwargs={"token": "unknown"}),
    # Pages the ModelAdmins add (get_urls).
    "catalog_jobdefinition_trigger": Rule(trigger_page),
    "catalog_flow_start": Rule(start_run_page),
    "engine_execution_operate": Rule(operate_page, kwargs={"pk": "1", "operation": "hold"}),
    "flows_flowrun_action": Rule(run_action_page, kwargs={"pk": "1", "action": "hold"}),
    "engine_execution_log": Rule(reads(lambda w: reverse("admin:engine_execution_log", args=[w.running.pk]),
                                       tails_the_log)),
}


# --- the rules for the actions the ModelAdmins add ----------------------------------------


@dataclass(frozen=True)
class Act:
    """`pick` the row the action fits (None: a row the administrator may delete); `done` tells,
    from that row read again, that the action did its work."""

    pick: Callable[[World], models.Model] | None
    done: Callable[[models.Model, World], bool]


def made_and_handed_out(executions, world: World) -> bool:
    """The action made these executions, and they (and only they) were handed to the queue."""
    return list(executions.values_list("pk", flat=True)) == world.handed_out != []


DELETE = Act(pick=None, done=lambda obj, world: not type(obj)._base_manager.filter(pk=obj.pk).exists())

ACTIONS: dict[str, Act] = {
    "catalog.application.enable": Act(lambda w: w.spare_app, lambda app, w: app.enabled),
    "catalog.application.disable": Act(lambda w: w.app, lambda app, w: not app.enabled),
    "catalog.jobdefinition.trigger_now": Act(lambda w: w.job, lambda job, w: made_and_handed_out(
        Execution.objects.filter(job=job, trigger=Trigger.MANUAL, triggered_by="ada"), w)),
    "catalog.jobdefinition.enable": Act(lambda w: w.spare_job, lambda job, w: job.enabled),
    "catalog.jobdefinition.disable": Act(lambda w: w.job, lambda job, w: not job.enabled),
    "catalog.jobtype.system_check": Act(lambda w: w.job_type, lambda job_type, w: job_type.last_check_up is True),
    "engine.execution.kill": Act(lambda w: w.loaded,
                                 lambda e, w: (e.status, e.error) == (Status.ERROR, "killed by ada")),
    "engine.execution.restart": Act(lambda w: w.failed, lambda e, w: made_and_handed_out(
        Execution.objects.filter(restart_of=e, trigger=Trigger.RESTART, triggered_by="ada"), w)),
    "engine.execution.fetch_log": Act(lambda w: w.running, lambda e, w: e.log == "from the external system\n"),
    "scheduling.schedule.pause": Act(lambda w: w.schedule, lambda s, w: not s.active),
    "scheduling.schedule.resume": Act(lambda w: w.paused, lambda s, w: s.active and s.next_fire_at is not None),
    "agents.agent.block": Act(lambda w: w.ready, lambda a, w: (a.status, a.blocked) == (AgentStatus.BLOCKED, True)),
    "agents.agent.unblock": Act(lambda w: w.blocked, lambda a, w: (a.status, a.blocked) == (AgentStatus.READY, False)),
    "engine.execution.hold": Act(lambda w: w.loaded, lambda e, w: e.status == Status.HELD),
    "engine.execution.release": Act(lambda w: w.held, lambda e, w: e.status == Status.WAITING),
    "engine.execution.skip": Act(lambda w: w.loaded, lambda e, w: (e.status, e.error) == (Status.SKIPPED,
                                                                                          "skipped by ada")),
    "flows.flowrun.hold": Act(lambda w: w.run, lambda run, w: run.held),
    "flows.flowrun.release": Act(lambda w: w.held_run, lambda run, w: not run.held),
    "flows.flowrun.kill": Act(lambda w: w.run, lambda run, w: (run.status, run.is_open) == ("ERROR", False)),
}


def rule_of_action(action: str) -> Act | None:
    return ACTIONS.get(action) or (DELETE if action.endswith(".delete_selected") else None)


# --- coverage -----------------------------------------------------------------------------


def test_it_has_a_rule_for_every_page_and_action():
    """Both ways: what the site has, the matrix checks; what the matrix names, the site has."""
    assert not unnamed_urls(), "admin URLs without a name cannot be checked: name them"
    console = {page.name for page in CONSOLE_PAGES}
    assert console - set(PAGES) == set(), "pages without a rule in PAGES"
    assert set(PAGES) - console == set(), "rules in PAGES for pages the site no longer has"
    batch_actions = {action for action in ALL_ACTIONS if action.rsplit(".", 1)[0] in BATCH}
    assert {a for a in batch_actions if rule_of_action(a) is None} == set(), "actions without a rule in ACTIONS"
    assert set(ACTIONS) - batch_actions == set(), "rules in ACTIONS for actions no admin offers"
    # The enumeration itself finds what is known to be there.
    assert {"catalog_jobdefinition_trigger", "engine_execution_log", "monitoring", "health", "run_checks",
            "spreadsheet_apply"} <= console
    assert {"catalog.jobdefinition.trigger_now", "engine.execution.kill", "catalog.application.delete_selected"
            } <= set(ALL_ACTIONS)
    model_pages = sum(len(PAGES_OF[label]) for label in MODEL_ADMINS)
    print(f"\nrole matrix: {len(MODEL_ADMINS)} model admins ({len(BATCH)} batch), {model_pages} model pages, "
          f"{len(PAGES_OF['site'])} site pages, {len(ALL_ACTIONS)} actions ({len(batch_actions)} batch)")


def test_it_closes_only_what_the_admins_are_built_to_close(world):
    """The pages no role opens, because the ModelAdmin does not offer them even to a superuser."""
    closed = {}
    for label in BATCH:
        refused = {what for what, allowed in designed(label, shown(label)).items() if not allowed}
        if refused:
            closed[label] = refused
    assert closed == CLOSED_BY_DESIGN


# --- anonymous ------------------------------------------------------------------------------


@pytest.mark.parametrize("owner", ["site", *MODEL_ADMINS])
def test_it_sends_anonymous_visitors_to_the_login_page(world, cast, owner):
    client = cast["anonymous"]
    obj = None if owner == "site" else shown(owner)
    with unchanged(f"anonymous requests to the pages of {owner}"):
        for page in PAGES_OF[owner]:
            rule = PAGES.get(page.name)
            if owner == "site" or (owner in BATCH and page.standard is None):
                assert rule is not None, f"admin:{page.name} ({owner}) has no rule in PAGES"
                if rule.public:
                    continue
            with_kwargs = rule and (owner == "site" or len(page.params) > 1)  # the object alone cannot fill them
            url = url_of(page, obj, **(rule.kwargs if with_kwargs else {}))
            for method in ("GET", "POST"):
                to_login(getattr(client, method.lower())(url, {"_save": "Save", "post": "yes"}), "anonymous",
                         method, url)


# --- the standard pages of the batch models -------------------------------------------------


@pytest.mark.parametrize("label", BATCH)
def test_it_lets_a_viewer_read_every_batch_model_page_and_change_nothing(world, cast, label):
    client, obj, spare = cast["viewer"], shown(label), deletable(label, ROOT)
    urls, spare_urls = model_urls(label, obj), model_urls(label, spare)
    ask(client, "viewer", "GET", urls["changelist"], 200)
    ask(client, "viewer", "GET", urls["history"], 200)
    change_page = ask(client, "viewer", "GET", urls["change"], 200)
    assert change_page.context["has_change_permission"] is False, f"viewer: {urls['change']} is not read-only"
    data, _, _ = edited_form(cast["administrator"], urls["change"])
    with unchanged(f"a viewer's writes to {label}"):
        ask(client, "viewer", "GET", urls["add"], 403)
        ask(client, "viewer", "POST", urls["add"], 403, data)
        ask(client, "viewer", "POST", urls["change"], 403, data)
        ask(client, "viewer", "GET", spare_urls["delete"], 403)
        ask(client, "viewer", "POST", spare_urls["delete"], 403, {"post": "yes"})


@pytest.mark.parametrize("label", BATCH)
def test_it_lets_an_administrator_open_and_save_every_batch_model_page(world, cast, label):
    client, obj, spare = cast["administrator"], shown(label), deletable(label, ROOT)
    urls, spare_urls = model_urls(label, obj), model_urls(label, spare)
    allowed = designed(label, obj)
    ask(client, "administrator", "GET", urls["changelist"], 200)
    ask(client, "administrator", "GET", urls["history"], 200)
    ask(client, "administrator", "GET", urls["change"], 200)
    ask(client, "administrator", "GET", urls["add"], 200 if allowed["add"] else 403)

    data, edited, value = edited_form(client, urls["change"])
    if allowed["change"]:
        saved = ask(client, "administrator", "POST", urls["change"], (302, 200), data)
        assert saved.status_code == 302, f"administrator: the change form of {label} refused {data}: {errors(saved)}"
        if edited:
            obj.refresh_from_db()
            assert getattr(obj, edited) == value, f"administrator: {edited} of {label} was not saved"
    else:
        with unchanged(f"an administrator's change of {label}"):
            ask(client, "administrator", "POST", urls["change"], 403, data)

    if allowed["delete"]:
        ask(client, "administrator", "GET", spare_urls["delete"], 200)
        ask(client, "administrator", "POST", spare_urls["delete"], 302, {"post": "yes"})
        assert not type(spare)._base_manager.filter(pk=spare.pk).exists(), f"administrator: {label} not deleted"
    else:
        with unchanged(f"an administrator's delete of {label}"):
            ask(client, "administrator", "GET", spare_urls["delete"], 403)
            ask(client, "administrator", "POST", spare_urls["delete"], 403, {"post": "yes"})


# --- the pages the site and the batch ModelAdmins add --------------------------------------


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", [page.name for page in CONSOLE_PAGES])
def test_it_applies_the_role_matrix_to_every_console_page(world, cast, name, role):
    rule = PAGES.get(name)
    assert rule is not None, f"admin:{name} has no rule in PAGES: say what a viewer and an administrator get"
    rule.check(role, cast[role], world)


# --- the admins outside the batch roles ----------------------------------------------------


@pytest.mark.parametrize("label", OUTSIDE)
def test_it_leaves_the_admins_outside_the_batch_roles_to_superusers(world, cast, superuser_client, label):
    obj = shown(label)
    allowed = designed(label, obj)
    for page in PAGES_OF[label]:
        url = url_of(page, obj)
        for role in ROLES:
            with unchanged(f"a {role}'s requests to {url}"):
                ask(cast[role], role, "GET", url, 403)
                ask(cast[role], role, "POST", url, 403, {"_save": "Save", "post": "yes"})
        closed = page.standard in ("add", "delete") and not allowed[page.standard]
        ask(superuser_client, "superuser", "GET", url, 403 if closed else 200)


# --- actions --------------------------------------------------------------------------------


@pytest.mark.parametrize("action", ALL_ACTIONS)
def test_it_applies_the_role_matrix_to_every_action(world, cast, viewer, administrator,
                                                    django_capture_on_commit_callbacks, action):
    label, name = action.rsplit(".", 1)
    model_admin = MODEL_ADMINS[label]
    url = reverse(f"admin:{label.replace('.', '_')}_changelist")
    rule = rule_of_action(action)
    if label in BATCH:
        assert rule is not None, f"{action} has no rule in ACTIONS: say which row it fits and what it changes"
        target = rule.pick(world) if rule.pick else deletable(label, administrator)
    else:
        target = shown(label)
    post = {"action": name, "_selected_action": [quote(target.pk)], "post": "yes"}

    with unchanged(f"anonymous {action}"), django_capture_on_commit_callbacks(execute=True):
        to_login(cast["anonymous"].post(url, post), "anonymous", "POST", f"{url} {action}")
    if label in BATCH:  # elsewhere the changelist itself is refused, whatever it would offer
        assert name not in offered(model_admin, viewer), f"viewer: {action} is offered"
    with unchanged(f"a viewer's {action}"), django_capture_on_commit_callbacks(execute=True):
        if label in BATCH:
            refused = ask(cast["viewer"], "viewer", "POST", url, 200, post, follow=True)
            assert {text for _, text in notes(refused)} <= {"No action selected."}, f"viewer: {action} {notes(refused)}"
        else:
            ask(cast["viewer"], "viewer", "POST", url, 403, post)
    assert not world.handed_out

    if label not in BATCH:
        with unchanged(f"an administrator's {action}"):
            ask(cast["administrator"], "administrator", "POST", url, 403, post)
        return
    assert name in offered(model_admin, administrator), f"administrator: {action} is not offered"
    with django_capture_on_commit_callbacks(execute=True):
        done = ask(cast["administrator"], "administrator", "POST", url, 200, post, follow=True)
    refusals = [text for level, text in notes(done) if level >= messages.WARNING]
    assert not refusals and done.redirect_chain, f"administrator: {action} on {target}: {notes(done)}"
    if type(target)._base_manager.filter(pk=target.pk).exists():
        target.refresh_from_db()
    assert rule.done(target, world), f"administrator: {action} on {target} did not do its work: {notes(done)}"


def test_it_leaves_blocking_an_agent_to_the_block_action(world, cast):
    """The agent's change form has no `blocked` of its own: blocking asks agents.block_agent and
    moves the status with the flag (apps.agents.services.set_blocked)."""
    url = reverse("admin:agents_agent_change", args=[world.ready.pk])
    ask(cast["administrator"], "administrator", "POST", url, 302, {"blocked": "on", "_save": "Save"})
    world.ready.refresh_from_db()
    assert (world.ready.status, world.ready.blocked) == (AgentStatus.READY, False)
