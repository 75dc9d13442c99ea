"""`manage.py trigger_task NAME [--param k=v ...] [--wait]`: the trigger of SPEC §2 from a shell."""

from __future__ import annotations

import getpass
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.agents.models import Agent, AgentKind
from apps.engine import services
from apps.engine.models import TERMINAL, Execution, Status, Trigger
from apps.errors import BatchError


class Command(BaseCommand):
    help = "Trigger a job now. With --wait, follow it to its end; exit 0 only on COMPLETED."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="The job's name.")
        parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                            help="Override a parameter (repeatable).")
        parser.add_argument("--wait", action="store_true", help="Follow the execution until it ends.")
        parser.add_argument("--timeout", type=float, default=0, help="With --wait: give up after this many seconds.")

    def handle(self, *args, name: str, param: list[str], wait: bool, timeout: float, **options) -> None:
        try:
            execution = services.trigger_by_name(
                name, parameters="||".join(param), trigger=Trigger.CLI, triggered_by=f"cli:{getpass.getuser()}"
            )
        except BatchError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        self.stdout.write(f"Execution {execution.pk} of {name} is {execution.status} ({execution.agent_execution_id}).")
        if not Agent.objects.alive(AgentKind.CLUSTER).exists():
            self.stderr.write("Warning: no qcluster agent is alive; the execution starts when one is.")
        if wait:
            self._follow(execution, timeout)

    def _follow(self, execution: Execution, timeout: float) -> None:
        deadline = time.monotonic() + timeout if timeout else None
        offset = 0
        while True:
            execution.refresh_from_db()
            text, offset = execution.log_since(offset)  # offsets over the whole output, elided middle included
            if text:
                self.stdout.write(text, ending="")
            if execution.status in TERMINAL:
                retry = Execution.objects.filter(retry_of=execution).first()
                if retry is None:
                    break
                self.stdout.write(f"Execution {execution.pk} ended {execution.status} ({execution.error}); "
                                  f"following its retry, execution {retry.pk}.")
                execution, offset = retry, 0
                continue
            if deadline and time.monotonic() > deadline:
                raise CommandError(f"Execution {execution.pk} is still {execution.status} after {timeout:g}s.")
            time.sleep(0.5)
        runtime = (execution.finished_at or timezone.now()) - (execution.started_at or execution.created_at)
        summary = f"Execution {execution.pk} ended {execution.status} after {runtime.total_seconds():.1f}s"
        if execution.status != Status.COMPLETED:
            raise CommandError(f"{summary}: {execution.error or 'no error recorded'}")
        self.stdout.write(summary + (" (warning exit code)" if execution.warning else ""))
