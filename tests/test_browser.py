"""The console in a real browser: Playwright drives Debian's Chromium (/usr/bin/chromium; no browser
is downloaded) against a real web server, dispatcher and cluster on the test database.

One server and one engine serve the whole module (starting them is most of the cost), so the
tests share the database: each makes the rows it needs, and the module empties the database when
it ends, as a transactional test would. A screenshot of each page is kept under var/screenshots/.
Marked `browser`: they run once, on the SQLite pass (tests/conftest.py skips them on PostgreSQL,
where the backend changes nothing a browser can see)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.db import connection

from apps.catalog.models import Application, JobDefinition
from apps.catalog.roles import ADMINISTRATOR, VIEWER
from apps.engine.models import Execution, Status
from bench.harness import ROOT, Processes, free_port
from tests.conftest import engine_env, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]
SHOTS = ROOT / "var" / "screenshots"
PASSWORDS = {"ada": "pw-ada-browser-1", "vic": "pw-vic-browser-1"}


@pytest.mark.django_db
def test_it_drives_debians_chromium_headless_and_downloads_no_browser():
    # Also what makes pytest-django set the test database up when this module runs alone: it does
    # so for the tests that ask for a database by marker, and the others here reach it through
    # `orm` below, outside any test transaction.
    assert Path(CHROMIUM).exists() and "--headless" in FLAGS
    assert "PLAYWRIGHT_BROWSERS_PATH" not in os.environ or not Path(os.environ["PLAYWRIGHT_BROWSERS_PATH"]).exists()


@pytest.fixture(scope="module")
def orm(django_db_setup, django_db_blocker):
    """The ORM, outside any test transaction: what the tests write, the server sees at once."""
    # Playwright's sync API runs an event loop in this thread; Django would take every query for
    # one made from async code.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with django_db_blocker.unblock():
        assert "test" in Path(connection.settings_dict["NAME"]).name, "not a test database"
        yield
        call_command("flush", interactive=False, verbosity=0)  # leave the database as a test would
        # Queries made while Playwright's event loop ran opened connections of that context, which
        # outlive it; PostgreSQL would refuse to drop the test database (this run's own) with them.
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


@pytest.fixture(scope="module")
def server(orm, tmp_path_factory):
    """runserver, a dispatcher and a cluster on the test database; the cast and a job to run."""
    for name, group in (("ada", ADMINISTRATOR), ("vic", VIEWER)):
        user = User.objects.create_user(name, password=PASSWORDS[name], is_staff=True)
        user.groups.add(Group.objects.get(name=group))
    port = free_port()
    env = {**engine_env(), "OAUTH_ALLOW_INSECURE_TRANSPORT": "true", "BATCHDESK_SYSTEM_CHECK_SECONDS": "2"}
    procs = Processes(env, tmp_path_factory.mktemp("browser") / "manage", grace=10)
    procs.start("runserver", f"127.0.0.1:{port}", "--noreload")
    procs.wait_for_agents(procs.start("run_dispatcher"), procs.start("qcluster"), timeout=60)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(f"{base}/admin/login/"), timeout=30, message="the web server")
    yield base
    procs.stop_all()
    print(procs.logs())


def _answers(url: str) -> bool:
    import urllib.request

    try:
        return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def browser(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()


def login(browser, server, name: str):
    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=server)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto("/admin/login/")
    page.fill("#id_username", name)
    page.fill("#id_password", PASSWORDS[name])
    page.click("input[type=submit]")
    page.wait_for_url(re.compile(r"/admin/$"))
    return page


@pytest.fixture
def ada(browser, server):
    page = login(browser, server, "ada")
    yield page
    page.context.close()


@pytest.fixture
def vic(browser, server):
    page = login(browser, server, "vic")
    yield page
    page.context.close()


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def job(name: str, command: str, **fields) -> JobDefinition:
    application, _ = Application.objects.get_or_create(name="BROWSER")
    return JobDefinition.objects.update_or_create(name=name, defaults={"application": application, "command": command,
                                                                       **fields})[0]


def change_page(obj) -> str:
    return f"/admin/{obj._meta.app_label}/{obj._meta.model_name}/{obj.pk}/change/"


# --- the tests ------------------------------------------------------------------------------


def test_it_logs_in_and_opens_the_health_agents_and_audit_pages(ada):
    assert ada.locator("text=Batch Monitoring").first.is_visible()
    shot(ada, "index")
    ada.goto("/admin/health/")
    ada.wait_for_selector("text=Custom job types")
    assert ada.locator("text=Clusters alive").is_visible()
    shot(ada, "health")
    ada.goto("/admin/agents/agent/")
    assert ada.locator(".bd-agent-ready").count() >= 2  # the dispatcher and the cluster
    shot(ada, "agents")
    ada.goto("/admin/audit/auditentry/")
    assert ada.locator("#changelist-filter").is_visible()
    shot(ada, "audit")


def test_it_uploads_the_example_workbook_through_its_dry_run_and_applies_it(ada):
    ada.goto("/admin/spreadsheet/")
    ada.set_input_files("input[type=file]", str(ROOT / "fixtures" / "batch_schedule_example.xlsx"))
    ada.click("input[value='Upload and check']")
    ada.wait_for_selector("text=/Checked \\d+ rows/")
    shot(ada, "spreadsheet-dry-run")
    ada.click("input[value^='Confirm: apply']")
    ada.wait_for_selector("text=/Applied batch_schedule_example.xlsx/")
    shot(ada, "spreadsheet-applied")
    assert JobDefinition.objects.count() > 0
    ada.goto("/admin/audit/auditentry/?action__exact=upload")
    assert ada.locator("text=batch_schedule_example.xlsx").first.is_visible()


def test_it_triggers_a_job_and_watches_its_log_tail_grow(ada):
    counting = job("browser_counting", "for i in $(seq 1 40); do echo \"line $i\"; sleep 0.15; done")
    ada.goto(change_page(counting))
    ada.click("text=Trigger…")
    ada.click("input[value='Trigger now']")
    ada.wait_for_url(re.compile(r"/admin/engine/execution/\d+/change/"))
    log = ada.locator("#execution-log")
    ada.wait_for_function("document.getElementById('execution-log').textContent.includes('line 5')")
    early = log.text_content()
    assert "line 40" not in early
    shot(ada, "execution-running")
    ada.wait_for_function("document.getElementById('execution-log').textContent.includes('line 40')", timeout=30_000)
    ada.wait_for_selector("text=Download log")  # the page reloads once the run is over
    assert len(ada.locator("#execution-log").text_content()) > len(early)
    execution = Execution.objects.filter(job=counting).get()
    wait_for(lambda: Execution.objects.get(pk=execution.pk).status == Status.COMPLETED, timeout=15)
    ada.goto(change_page(counting))
    ada.wait_for_selector("#job-report svg rect.bd-run-COMPLETED")
    shot(ada, "job")


def test_it_kills_a_running_job_from_its_page_after_a_confirmation(ada):
    sleeper = job("browser_sleeper", "echo started; sleep 600")
    ada.goto(change_page(sleeper))
    ada.click("text=Trigger…")
    ada.click("input[value='Trigger now']")
    ada.wait_for_url(re.compile(r"/admin/engine/execution/\d+/change/"))
    execution = Execution.objects.filter(job=sleeper).get()
    wait_for(lambda: Execution.objects.get(pk=execution.pk).status == Status.RUNNING, timeout=20)
    ada.reload()
    asked = []
    ada.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    ada.click("#execution-operations button[value=kill]")
    ada.wait_for_selector("text=/Kill #\\d+/")
    assert asked and asked[0].startswith("Kill this execution?")
    killed = wait_for(lambda: Execution.objects.filter(pk=execution.pk, status=Status.ERROR).first(), timeout=15)
    assert killed.error == "killed by ada"
    ada.reload()
    assert ada.locator("#execution-operations button[value=restart]").is_visible()
    assert ada.locator("#execution-operations button[value=kill]").count() == 0
    shot(ada, "execution-killed")


def test_it_restarts_a_failure_from_the_monitoring_page(ada):
    failing = job("browser_failing", "echo about to fail; exit 3")
    ada.goto(change_page(failing))
    ada.click("text=Trigger…")
    ada.click("input[value='Trigger now']")
    failed = wait_for(lambda: Execution.objects.filter(job=failing, status=Status.ERROR).first(), timeout=20)
    ada.goto("/admin/monitoring/")
    row = ada.locator(f"#failure-{failed.pk}")
    row.wait_for()
    assert "1 of 1" in row.text_content()
    ada.wait_for_selector("#bd-timeline rect.bd-bar.ERROR")
    shot(ada, "monitoring")
    row.locator("button.bd-op-restart").click()
    ada.wait_for_selector(f"text=Restart #{failed.pk} as #")
    restarted = wait_for(lambda: Execution.objects.filter(restart_of=failed, status=Status.ERROR).first(), timeout=20)
    # The page refreshes itself: the restart's failure replaces the first without a reload.
    ada.wait_for_selector(f"#failure-{restarted.pk}", timeout=30_000)
    assert ada.locator(f"#failure-{failed.pk}").count() == 0


def test_the_schedule_form_previews_the_next_fire_times_as_the_operator_types(ada):
    ada.goto("/admin/scheduling/schedule/add/")
    ada.fill("#id_cron", "0 30 6 ? * MON-FRI")
    ada.wait_for_selector("#cron-preview >> text=Next fire times")
    assert ada.locator("#cron-preview div").count() == 6  # the heading and five times
    shot(ada, "schedule-cron-preview")
    ada.fill("#id_cron", "0 0 0 30 2 ?")
    ada.wait_for_selector("#cron-preview.errornote")


def test_a_viewer_sees_every_page_and_no_action_that_writes(vic):
    execution = Execution.objects.order_by("-id").first()
    some_job = JobDefinition.objects.order_by("id").first()
    pages = {"index": "/admin/", "monitoring": "/admin/monitoring/", "health": "/admin/health/",
             "agents": "/admin/agents/agent/", "audit": "/admin/audit/auditentry/",
             "executions": "/admin/engine/execution/", "execution": change_page(execution),
             "jobs": "/admin/catalog/jobdefinition/", "job": change_page(some_job),
             "schedules": "/admin/scheduling/schedule/", "spreadsheet": "/admin/spreadsheet/",
             "notification-rules": "/admin/notifications/notificationrule/",
             "notifications": "/admin/notifications/notification/"}
    for name, url in pages.items():
        response = vic.goto(url)
        assert response.status == 200, f"{name}: {response.status}"
        writes = vic.locator("form[method=post]:not([action$='/logout/']) "
                             "input[type=submit], form[method=post]:not([action$='/logout/']) button")
        offered = [vic.evaluate("e => e.outerHTML", handle) for handle in writes.element_handles()]
        # The one POST form a viewer may use: the spreadsheet's dry run, which writes nothing.
        offered = [html for html in offered if "Upload and check" not in html]
        assert offered == [], f"{name} offers a viewer {offered}"
        assert vic.locator("a.addlink, a.deletelink, select[name=action]").count() == 0, name
        shot(vic, f"viewer-{name}")


def test_it_starts_a_flow_run_watches_it_on_monitoring_and_restarts_its_failure(ada, tmp_path):
    """A run started from its flow's page; its tile on Batch Monitoring moves by itself; its failed
    job (failing on its first try only) is restarted from the run's page and the run completes."""
    from apps.catalog.models import Flow, Process
    from apps.flows.models import FlowRun

    application, _ = Application.objects.get_or_create(name="BROWSER")
    flow = Flow.objects.create(application=application, name="Browser close", cycle="Nightly")
    first, second = (Process.objects.create(flow=flow, name=name) for name in ("Prepare", "Close"))
    second.predecessors.add(first)
    marker = tmp_path / "tried-once"
    job("browser_prepare", "sleep 1; echo prepared", process=first)
    job("browser_close", f"test -f {marker} || {{ touch {marker}; echo first try fails; exit 5; }}; echo closed",
        process=second)
    ada.goto(change_page(flow))
    ada.click("button[name=start]")
    ada.wait_for_selector("#flow-run")
    run = FlowRun.objects.get(flow=flow)
    ada.goto("/admin/monitoring/")
    tile = ada.locator("[data-flow='Browser close']")
    tile.wait_for()
    ada.wait_for_selector("[data-flow='Browser close'][data-state='error']", timeout=30_000)  # no reload
    assert "1 of 2 jobs" in tile.text_content()
    shot(ada, "monitoring-flow")
    ada.goto(change_page(run))
    ada.wait_for_selector("svg.bd-graph [data-process='Close'][data-status='ERROR']")
    shot(ada, "flow-run")
    ada.click("tr[data-job='browser_close'] button[name=restart]")
    wait_for(lambda: FlowRun.objects.filter(pk=run.pk, status="COMPLETED").exists(), timeout=30,
             message="the run to complete after the restart")
    ada.goto("/admin/monitoring/")
    ada.wait_for_selector("[data-flow='Browser close'][data-state='completed']")
    ada.goto(change_page(run))
    assert ada.locator("svg.bd-graph [data-status='COMPLETED']").count() == 2
