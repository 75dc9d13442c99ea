"""Kinds that run inside the worker (EXEC, PYTHON, DUMMY): the run returns an Outcome, and
`supervise` keeps the execution's row up to date (its log, its lease) and honours kill requests
and timeouts meanwhile.

A run outlives a database outage: while the database does not answer, the process goes on, the
row's writes wait with back-off and are made once it answers, and the outcome is recorded then
(apps/faults.py). Only a timeout, a kill request or the row's end elsewhere stops a run early."""

from __future__ import annotations

import logging
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
from apps.faults import TRANSIENT_DB_ERRORS, Backoff, describe, reset_connection, retry_db

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    status: str
    error: str = ""
    exit_code: int | None = None
    warning: bool = False
    retry: bool = True


class SupervisedKind(Kind):
    def start(self, execution: Execution) -> None:
        """Run to the end and record the outcome; whatever the job raises is its failure, never the
        worker's. The outcome is recorded through a database outage (retried with back-off)."""
        log = BoundedLog(settings.BATCHDESK["LOG_MAX_BYTES"])
        try:
            outcome = self.run(execution, execution.job, log)
        except Exception as exc:
            log.write(traceback.format_exc())
            outcome = Outcome(Status.ERROR, error=f"{type(exc).__name__}: {exc}")
        retry_db(lambda: lifecycle.finish(execution, outcome.status, error=outcome.error, exit_code=outcome.exit_code,
                                          warning=outcome.warning, log_text=log.text(), log_bytes=log.total,
                                          retry=outcome.retry),
                 what=f"recording the end of execution {execution.pk}")

    def run(self, execution: Execution, job: JobDefinition, log: BoundedLog) -> Outcome:
        raise NotImplementedError


class RunRow:
    """What a supervised run writes to its row (its pid, the log so far, its lease) and reads back
    (a kill request, or that the row was ended elsewhere), at most once per back-off pause while
    the database does not answer."""

    def __init__(self, execution: Execution, log: BoundedLog, pid: int | None) -> None:
        self.pk = execution.pk
        self.log = log
        self.lease = settings.BATCHDESK["RUN_LEASE_SECONDS"]
        self.unwritten: dict = {"pid": pid} if pid else {}
        self.flushed = 0
        self.renewed = time.monotonic()
        self.backoff = Backoff()

    def sync(self) -> str:
        """Write what changed and read the row; returns why the run must stop, or "" to go on."""
        if not self.backoff.due:
            return ""
        try:
            reason = self._sync()
        except TRANSIENT_DB_ERRORS as exc:
            reset_connection()
            pause = self.backoff.failed()
            if self.backoff.failures == 1:
                log.warning("execution %s: the database did not answer (%s); the run goes on and its row is "
                            "written when it answers (next try in %.2g s)", self.pk, describe(exc), pause)
            return ""
        if self.backoff.failures:
            log.info("execution %s: the database answers again after %.1f s", self.pk, self.backoff.failing_for())
            self.backoff.succeeded()
        return reason

    def _sync(self) -> str:
        changes = dict(self.unwritten)
        total = self.log.total
        if total != self.flushed:
            changes.update(log=self.log.text(), log_bytes=total)
        renew = time.monotonic() - self.renewed > self.lease / 6
        if renew:
            changes["next_check_at"] = timezone.now() + timedelta(seconds=self.lease)
        if changes:
            Execution.objects.filter(pk=self.pk, status=Status.RUNNING).update(**changes)
            self.unwritten, self.flushed = {}, total
            if renew:
                self.renewed = time.monotonic()
        row = Execution.objects.filter(pk=self.pk).values_list("status", "kill_requested_by").first()
        if row is None or row[0] != Status.RUNNING:
            return "ended elsewhere"
        return f"killed by {row[1]}" if row[1] else ""


def supervise(execution: Execution, job: JobDefinition, log: BoundedLog, finished: threading.Event,
              stop: Callable[[], None], pid: int | None = None) -> str:
    """Wait for `finished`, keeping the row up to date; stop the run on a kill request, a timeout,
    or when the execution was ended elsewhere. Returns why it was stopped, or "" if it ended by itself.

    Whatever goes wrong here stops the run before it is raised: no process is left unsupervised."""
    check = settings.BATCHDESK["RUNNER_CHECK_SECONDS"]
    deadline = time.monotonic() + job.timeout_seconds if job.timeout_seconds else None
    row = RunRow(execution, log, pid)
    try:
        while True:
            # The timeout is measured here, so it holds while the database does not answer.
            reason = "timeout" if deadline is not None and time.monotonic() > deadline else row.sync()
            if reason:
                stop()
                return reason
            if finished.wait(check):
                return ""
    except BaseException:
        stop()
        raise


def stopped(reason: str, log: BoundedLog, exit_code: int | None = None) -> Outcome:
    log.write(f"\n[batchdesk] stopped: {reason}\n")
    # An operator's kill is final; a timeout is a failure like any other and is retried.
    return Outcome(Status.ERROR, error=reason, exit_code=exit_code, retry=not reason.startswith("killed"))
