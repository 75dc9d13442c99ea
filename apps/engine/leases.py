"""The dispatcher's steps over leases: hand out pending work whose lease ran out, and end runs
whose worker is gone. Every pending or running row carries `next_check_at`; a lost task, a dead
worker or a dead dispatcher only lets a lease run out, and these steps pick the row up again."""

from __future__ import annotations

import os
import signal
import socket
import threading
from datetime import timedelta

import psutil
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.agents.models import AgentStatus
from apps.engine import lifecycle
from apps.engine.models import PENDING, Execution, Status
from apps.faults import attempt, each_row


class LeaseKeeper:
    """Keeps the leases of rows whose work is in flight (a Start, a batch of Status calls) from
    running out while it lasts: every third of the lease it moves `next_check_at` a lease ahead for
    the rows not yet `done`. It is a thread of the process doing the work, so a worker that dies
    takes it along and the leases run out as usual; work that ends within a third of the lease (the
    usual case) costs it no query at all.

        with LeaseKeeper(pks, seconds) as keeper:
            ...; keeper.done(pk)
    """

    def __init__(self, pks: list[int], seconds: float) -> None:
        self.pending = set(pks)
        self.seconds = seconds
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="lease-keeper", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()

    def done(self, pk: int) -> None:
        with self._lock:
            self.pending.discard(pk)

    def _keep(self) -> None:
        try:
            while not self._stop.wait(self.seconds / 3):
                with self._lock:
                    pks = list(self.pending)
                if pks:
                    attempt(lambda: Execution.objects.filter(pk__in=pks, status=Status.RUNNING).update(
                        next_check_at=timezone.now() + timedelta(seconds=self.seconds)), what="renewing leases")
        finally:
            connection.close()


def hand_out_due(limit: int = 500) -> int:
    """Hand out pending executions whose lease ran out (new, waiting, or whose start task was lost)."""
    now = timezone.now()
    with transaction.atomic():
        due = list(
            Execution.objects.select_for_update(skip_locked=True)
            .filter(status__in=PENDING, next_check_at__lte=now)
            .order_by("next_check_at")
            .values_list("pk", flat=True)[:limit]
        )
        if not due:
            return 0
        Execution.objects.filter(pk__in=due).update(
            next_check_at=now + timedelta(seconds=lifecycle.setting("DISPATCH_LEASE_SECONDS"))
        )
    lifecycle.hand_out(due)
    return len(due)


def recover_lost(limit: int = 500) -> int:
    """End runs held by a worker whose agent is offline or that stopped renewing the lease.

    They end in ERROR "agent lost" (and are retried as usual). A custom-type run whose
    external job has started (it has an `external_execution_id`) is held by no worker: it
    simply keeps being polled, whatever happened to the agent that started it.
    """
    lost = list(
        Execution.objects.filter(status=Status.RUNNING, external_execution_id="")
        .filter(Q(agent__status=AgentStatus.OFFLINE) | Q(next_check_at__lt=timezone.now()))
        .select_related("job", "application")
        .order_by("pk")[:limit]
    )
    return each_row(lost, _recover, what="recovering lost runs", set_aside=lifecycle.set_aside)


def _recover(execution: Execution) -> bool:
    _kill_orphan(execution)
    if execution.kill_requested_by:  # killed while its worker was gone: a kill is final, never retried
        return lifecycle.finish(execution, Status.ERROR, error=f"killed by {execution.kill_requested_by}", retry=False)
    return lifecycle.finish(execution, Status.ERROR, error="agent lost")


def _kill_orphan(execution: Execution) -> None:
    """Best effort: a lost worker's process group on this host must not run on unseen."""
    if not execution.pid or execution.host != socket.gethostname():
        return
    try:
        if execution.started_at and psutil.Process(execution.pid).create_time() > execution.started_at.timestamp() + 5:
            return  # the pid now belongs to an unrelated, younger process
    except psutil.Error:
        pass  # the leader is gone; Linux keeps its pid as the group id while members live
    try:
        os.killpg(execution.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
