"""Kinds that run inside the worker (EXEC, PYTHON, DUMMY): the run returns an Outcome, and
`supervise` streams the log to the database and honours kill requests and timeouts meanwhile."""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from django.conf import settings
from django.utils import timezone

from apps.catalog.models import JobDefinition
from apps.engine import lifecycle
from apps.engine.kinds.base import Kind
from apps.engine.logbuffer import BoundedLog
from apps.engine.models import Execution, Status


@dataclass
class Outcome:
    status: str
    error: str = ""
    exit_code: int | None = None
    warning: bool = False
    retry: bool = True


class SupervisedKind(Kind):
    def start(self, execution: Execution) -> None:
        """Run to the end and record the outcome; whatever the job raises is its failure, never the worker's."""
        log = BoundedLog(settings.BATCHDESK["LOG_MAX_BYTES"])
        try:
            outcome = self.run(execution, execution.job, log)
        except Exception as exc:
            log.write(traceback.format_exc())
            outcome = Outcome(Status.ERROR, error=f"{type(exc).__name__}: {exc}")
        lifecycle.finish(execution, outcome.status, error=outcome.error, exit_code=outcome.exit_code,
                         warning=outcome.warning, log_text=log.text(), log_bytes=log.total, retry=outcome.retry)

    def run(self, execution: Execution, job: JobDefinition, log: BoundedLog) -> Outcome:
        raise NotImplementedError


def supervise(execution: Execution, job: JobDefinition, log: BoundedLog, finished: threading.Event,
              stop: Callable[[], None]) -> str:
    """Wait for `finished`, flushing the log; stop the run on a kill request, a timeout, or when
    the execution was ended elsewhere. Returns why it was stopped, or "" if it ended by itself."""
    check = settings.BATCHDESK["RUNNER_CHECK_SECONDS"]
    lease = settings.BATCHDESK["RUN_LEASE_SECONDS"]
    deadline = time.monotonic() + job.timeout_seconds if job.timeout_seconds else None
    flushed, renewed = 0, time.monotonic()
    while not finished.wait(check):
        changes = {}
        if log.total != flushed:
            flushed = log.total
            changes.update(log=log.text(), log_bytes=flushed)
        if time.monotonic() - renewed > lease / 6:
            renewed = time.monotonic()
            changes["next_check_at"] = timezone.now() + timedelta(seconds=lease)
        if changes:
            Execution.objects.filter(pk=execution.pk, status=Status.RUNNING).update(**changes)
        row = Execution.objects.filter(pk=execution.pk).values_list("status", "kill_requested_by").first()
        reason = ""
        if row is None or row[0] != Status.RUNNING:
            reason = "ended elsewhere"
        elif row[1]:
            reason = f"killed by {row[1]}"
        elif deadline is not None and time.monotonic() > deadline:
            reason = "timeout"
        if reason:
            stop()
            return reason
    return ""


def stopped(reason: str, log: BoundedLog, exit_code: int | None = None) -> Outcome:
    log.write(f"\n[batchdesk] stopped: {reason}\n")
    # An operator's kill is final; a timeout is a failure like any other and is retried.
    return Outcome(Status.ERROR, error=reason, exit_code=exit_code, retry=not reason.startswith("killed"))
