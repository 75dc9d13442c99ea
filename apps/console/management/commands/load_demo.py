"""`manage.py load_demo`: demo jobs and an administrator login, idempotent, for `make run`."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from apps.catalog.models import Application, Flow, JobDefinition, JobType, Process
from apps.engine.models import Trigger
from apps.errors import BatchError
from apps.flows import services as flows
from apps.scheduling.models import Kind, Schedule
from apps.scheduling.services import reschedule

PASSWORD_FILE = settings.VAR_DIR / "admin-password.txt"

DEMO_JOBS = [
    # name, application, job_type, command, parameters, extra fields
    ("hello_world", "DEMO", "EXEC", 'echo "Hello from $BATCH_JOB_NAME (greeting: $BATCH_PARAM_GREETING)"',
     "greeting=hello", {}),
    ("count_to_ten", "DEMO", "EXEC", 'for i in $(seq 1 10); do echo "step $i"; sleep 1; done', "", {}),
    ("flaky_extract", "DEMO", "EXEC", 'echo "extracting…"; sleep 2; echo "source unavailable" >&2; exit 3', "",
     {"max_retries": 2, "retry_backoff_seconds": 5}),
    ("warn_on_partial", "DEMO", "EXEC", 'echo "12 of 13 files loaded"; exit 2', "",
     {"warning_exit_codes": "2"}),
    ("long_report", "DEMO", "EXEC", 'for i in $(seq 1 600); do echo "page $i"; sleep 1; done', "",
     {"timeout_seconds": 900, "threshold_runtime_seconds": 120}),
    ("ledger_close_a", "FINANCE", "EXEC", 'echo "closing ledger A"; sleep 5', "", {"lock_group": "ledger"}),
    ("ledger_close_b", "FINANCE", "EXEC", 'echo "closing ledger B"; sleep 5', "", {"lock_group": "ledger"}),
    ("nap", "DEMO", "PYTHON", "sleep_seconds", "seconds=10", {}),
    ("purge_executions", "HOUSEKEEPING", "PYTHON", "purge_executions", "days=30", {}),
    ("purge_queue_tasks", "HOUSEKEEPING", "PYTHON", "purge_queue_tasks", "days=7", {}),
    ("purge_offline_agents", "HOUSEKEEPING", "PYTHON", "purge_offline_agents", "days=7", {}),
    ("checkpoint", "DEMO", "DUMMY", "", "", {}),
    # Custom (Generic ReST) jobs run by the bundled reference external system, apps/extsys.
    ("ext_sales_extract", "RETAIL", "MOCKTYPE", "", "duration=8||lines=20", {}),
    ("ext_stock_load", "RETAIL", "MOCKTYPE", "", "duration=20||lines=40", {"process": ("Nightly", "Stock", "Load")}),
    ("ext_price_push", "RETAIL", "MOCKTYPE", "", "duration=5||outcome=ERROR||restart_outcome=COMPLETED",
     {"process": ("Nightly", "Stock", "Prices")}),
    ("ext_inventory_sync", "RETAIL", "MOCKTYPE", "", "duration=300||lines=300", {}),
    # The demo flow: a run finishes in about a minute, its sales load failing once (Restart completes it).
    ("close_extract_orders", "DEMO", "EXEC", 'for i in $(seq 1 6); do echo "orders batch $i"; sleep 1; done', "",
     {"process": ("Nightly", "Daily close", "Extract"), "sequence": 10}),
    ("close_extract_stock", "DEMO", "MOCKTYPE", "", "duration=8||lines=16",
     {"process": ("Nightly", "Daily close", "Extract"), "sequence": 10}),
    ("close_transform", "DEMO", "EXEC", 'echo "transforming"; sleep 5; echo "done"', "",
     {"process": ("Nightly", "Daily close", "Transform"), "sequence": 10}),
    ("close_validate", "DEMO", "DUMMY", "", "", {"process": ("Nightly", "Daily close", "Transform"), "sequence": 20}),
    ("close_load_sales", "DEMO", "MOCKTYPE", "", "duration=6||outcome=ERROR||restart_outcome=COMPLETED",
     {"process": ("Nightly", "Daily close", "Load sales"), "sequence": 10}),
    ("close_load_stock", "DEMO", "EXEC", 'echo "loading stock"; sleep 8', "",
     {"process": ("Nightly", "Daily close", "Load stock"), "sequence": 10}),
    ("close_report", "DEMO", "PYTHON", "sleep_seconds", "seconds=4",
     {"process": ("Nightly", "Daily close", "Report"), "sequence": 10}),
]
# Schedules that keep the demo alive from its first minute: (job, cron).
DEMO_SCHEDULES = [("hello_world", "* * * * *"), ("checkpoint", "*/30 * * * * ?"), ("count_to_ten", "*/5 * * * *")]
# The demo flow's dependencies: (application, flow, process, the processes it waits for).
DEMO_DEPENDENCIES = [
    ("DEMO", "Daily close", "Transform", ["Extract"]),
    ("DEMO", "Daily close", "Load sales", ["Transform"]),
    ("DEMO", "Daily close", "Load stock", ["Transform"]),
    ("DEMO", "Daily close", "Report", ["Load sales", "Load stock"]),
]


class Command(BaseCommand):
    help = "Create the demo applications and jobs and an administrator login (safe to run again)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--username", default="admin")
        parser.add_argument("--port", type=int, default=8000, help="Where the web server (and extsys) listens.")

    def handle(self, *args, username: str, port: int, **options) -> None:
        self._mock_job_type(port)
        apps = {name: Application.objects.get_or_create(name=name, defaults={"description": f"{name} demo"})[0]
                for name in {spec[1] for spec in DEMO_JOBS}}
        for name, app, job_type, command, parameters, extra in DEMO_JOBS:
            extra = dict(extra)
            if "process" in extra:
                extra["process"] = self._process(apps[app], *extra["process"])
            defaults = {"application": apps[app], "job_type": job_type, "command": command,
                        "parameters": parameters, **extra}
            if app == "FINANCE":
                defaults["process"] = self._process(apps[app], "Nightly", "Ledger", "Close")
            JobDefinition.objects.get_or_create(name=name, defaults=defaults)
        for app, flow, process, predecessors in DEMO_DEPENDENCIES:
            waiting = Process.objects.get(flow__application__name=app, flow__name=flow, name=process)
            waiting.predecessors.add(*Process.objects.filter(flow=waiting.flow, name__in=predecessors))
        for job, cron in DEMO_SCHEDULES:
            if not Schedule.objects.filter(job__name=job, kind=Kind.CRON, cron=cron).exists():
                reschedule(Schedule(job=JobDefinition.objects.get(name=job), kind=Kind.CRON, cron=cron))
        self.stdout.write(f"Demo data: {len(apps)} applications, {len(DEMO_JOBS)} jobs, "
                          f"{len(DEMO_SCHEDULES)} schedules that fire every minute or more often.")
        self._start_todays_run()
        self._admin_login(username)

    def _start_todays_run(self) -> None:
        """The demo flow's run for today, so that the console shows a batch at work from the start."""
        flow = Flow.objects.get(application__name="DEMO", name="Daily close")
        try:
            run = flows.start_run(flow, trigger=Trigger.CLI, triggered_by="make run")
        except BatchError as exc:
            self.stdout.write(f"Demo run: {exc.message}")
        else:
            self.stdout.write(f"Demo run: {flow} for {run.business_date:%Y-%m-%d} (run {run.pk}).")

    @staticmethod
    def _process(application: Application, cycle: str, flow: str, process: str) -> Process:
        flow_row = Flow.objects.get_or_create(application=application, name=flow, defaults={"cycle": cycle})[0]
        return Process.objects.get_or_create(flow=flow_row, name=process)[0]

    @staticmethod
    def _mock_job_type(port: int) -> None:
        """MOCKTYPE: the bundled external system, served by the same web server."""
        base = f"http://127.0.0.1:{port}/extsys"
        job_type, _ = JobType.objects.update_or_create(
            name="MOCKTYPE",
            defaults={
                "description": "The bundled reference external system (apps/extsys).",
                "url": base, "start_path": "/jobs/start", "status_path": "/jobs/status",
                "restart_path": "/jobs/restart", "kill_path": "/jobs/kill", "log_path": "/jobs/log",
                "check_path": "/health", "poll_interval_seconds": 2, "token_url": f"{base}/oauth/token",
                "client_id": settings.EXTSYS_CLIENT_ID,
            },
        )
        job_type.set_client_secret(settings.EXTSYS_CLIENT_SECRET)
        job_type.save(update_fields=["client_secret_encrypted"])

    def _admin_login(self, username: str) -> None:
        User = get_user_model()
        PASSWORD_FILE.parent.mkdir(parents=True, exist_ok=True)
        password = PASSWORD_FILE.read_text().strip() if PASSWORD_FILE.exists() else secrets.token_urlsafe(12)
        user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True, "is_superuser": True})
        if not user.check_password(password):
            user.set_password(password)
            user.save(update_fields=["password"])
        PASSWORD_FILE.write_text(password + "\n")
        PASSWORD_FILE.chmod(0o600)
        self.stdout.write(f"Admin login: {username} / {password}")
