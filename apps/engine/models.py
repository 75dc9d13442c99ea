"""Executions: the record of every run, and the lease fields the dispatcher works from."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Status(models.TextChoices):
    LOADED = "LOADED"
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"
    SKIPPED = "SKIPPED"
    HELD = "HELD"


# The marker BoundedLog puts where it elided the middle of a long log.
ELISION = re.compile(rb"\n\[\.\.\. (\d+) bytes elided \.\.\.\]\n")

ACTIVE = [Status.LOADED, Status.WAITING, Status.RUNNING, Status.HELD]
TERMINAL = [Status.COMPLETED, Status.ERROR, Status.SKIPPED]
PENDING = [Status.LOADED, Status.WAITING]

# The guarded state machine: a status change not listed here never happens.
TRANSITIONS: dict[str, set[str]] = {
    Status.LOADED: {Status.WAITING, Status.RUNNING, Status.HELD, Status.ERROR, Status.SKIPPED},
    Status.WAITING: {Status.WAITING, Status.RUNNING, Status.HELD, Status.ERROR, Status.SKIPPED},
    Status.HELD: {Status.LOADED, Status.WAITING, Status.ERROR, Status.SKIPPED},
    Status.RUNNING: {Status.COMPLETED, Status.ERROR},
    Status.COMPLETED: set(),
    Status.ERROR: set(),
    Status.SKIPPED: set(),
}


def sources_of(target: str) -> list[str]:
    return [source for source, targets in TRANSITIONS.items() if target in targets]


class Trigger(models.TextChoices):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    API = "api"
    CLI = "cli"
    FLOW = "flow"
    RETRY = "retry"
    RESTART = "restart"


class ExecutionQuerySet(models.QuerySet):
    def active(self) -> "ExecutionQuerySet":
        return self.filter(status__in=ACTIVE)

    def move(self, target: str, **fields) -> int:
        """Move rows to `target` only from a status the state machine allows; returns the row count."""
        return self.filter(status__in=sources_of(target)).update(status=target, **fields)


class Execution(models.Model):
    agent_execution_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    job = models.ForeignKey("catalog.JobDefinition", on_delete=models.PROTECT, related_name="executions")
    # Copied from the job at trigger time: throttle counts and filters need no join.
    application = models.ForeignKey("catalog.Application", on_delete=models.PROTECT, related_name="executions")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.LOADED)
    trigger = models.CharField(max_length=10, choices=Trigger.choices, default=Trigger.MANUAL)
    triggered_by = models.CharField(max_length=150, blank=True)
    parameters = models.TextField(blank=True)
    attempt = models.PositiveIntegerField(default=1)
    restart_of = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="restarts"
    )
    retry_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="retries")
    external_execution_id = models.CharField(max_length=200, blank=True)
    execution_info = models.TextField(blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    warning = models.BooleanField(default=False, help_text="Completed with a warning exit code.")
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    agent = models.ForeignKey(
        "agents.Agent", on_delete=models.SET_NULL, null=True, blank=True, related_name="executions"
    )
    host = models.CharField(max_length=255, blank=True)
    pid = models.IntegerField(null=True, blank=True, help_text="Process group leader of an EXEC run.")
    log = models.TextField(blank=True)
    log_bytes = models.BigIntegerField(default=0, help_text="Bytes of output produced, elided ones included.")

    # Engine bookkeeping.
    exclusive = models.BooleanField(default=False, help_text="concurrency=forbid: one active execution per job.")
    lock_group = models.CharField(max_length=100, blank=True)
    waiting_reason = models.CharField(max_length=300, blank=True)
    next_check_at = models.DateTimeField(
        null=True, blank=True, help_text="When the dispatcher next hands this execution out (its lease)."
    )
    not_before = models.DateTimeField(null=True, blank=True, help_text="A retry does not start before this.")
    poll_failures = models.PositiveIntegerField(default=0)
    kill_requested_by = models.CharField(max_length=150, blank=True)

    # Flow runs (SPEC §2a, apps/flows): the run it belongs to; whether the flow still holds it back
    # (its process's predecessors, or the jobs before it in its process, are not done); and why the
    # flow counts a failed execution as done (skipped on error, or by an operator) while it keeps ERROR.
    flow_run = models.ForeignKey("flows.FlowRun", on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="executions")
    awaits_flow = models.BooleanField(default=False)
    skipped_in_flow = models.CharField(max_length=150, blank=True)

    objects = ExecutionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        permissions = [
            ("kill_execution", "Can kill executions"),
            ("restart_execution", "Can restart executions"),
            ("hold_execution", "Can hold executions"),
            ("release_execution", "Can release executions"),
            ("skip_execution", "Can skip executions"),
            ("fetch_log_execution", "Can fetch the external log of executions"),
        ]
        indexes = [
            models.Index(fields=["status", "next_check_at"], name="execution_due"),
            models.Index(fields=["job", "-created_at"], name="execution_job_recent"),
            models.Index(fields=["application", "status"], name="execution_app_status"),
            models.Index(fields=["agent", "status"], name="execution_agent_status"),
            models.Index(fields=["flow_run", "job"], name="execution_run_job"),
        ]
        constraints = [
            # Race-proof concurrency=forbid: the database admits one active execution per job.
            models.UniqueConstraint(
                fields=["job"],
                condition=Q(exclusive=True, status__in=ACTIVE),
                name="execution_one_active_per_forbid_job",
            ),
            # Race-proof lock groups: at most one RUNNING execution per group.
            models.UniqueConstraint(
                fields=["lock_group"],
                condition=Q(status=Status.RUNNING) & ~Q(lock_group=""),
                name="execution_one_running_per_lock_group",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.job_id and self.job.name} {self.status}"

    def batch_context(self) -> dict[str, str]:
        """What a job of a flow run is told of its run: BATCH_BUSINESS_DATE, BATCH_FLOW, BATCH_PROCESS
        and BATCH_CYCLE (EXEC jobs as environment variables, PYTHON tasks in their values)."""
        if not self.flow_run_id:
            return {}
        run, job = self.flow_run, self.job
        return {"BATCH_BUSINESS_DATE": run.business_date.isoformat(), "BATCH_FLOW": run.flow.name,
                "BATCH_PROCESS": job.process.name if job.process_id else "", "BATCH_CYCLE": run.cycle or "Adhoc"}

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    def log_since(self, offset: int) -> tuple[str, int]:
        """The log from byte `offset` of the job's whole output on, and the offset to ask for next.

        Offsets count every byte the job produced, so they keep growing once the middle of a
        long log is elided; a reader whose offset fell into the elided part gets the marker
        and the kept tail."""
        data = self.log.encode()
        elision = ELISION.search(data)
        if elision is None:
            return data[offset:].decode("utf-8", errors="replace"), len(data)
        head, tail = elision.start(), data[elision.end():]
        total = head + int(elision.group(1)) + len(tail)
        tail_start = total - len(tail)
        if offset < head:
            text = data[offset:]
        elif offset < tail_start:
            text = elision.group(0) + tail
        else:
            text = tail[offset - tail_start:]
        return text.decode("utf-8", errors="replace"), total

    @property
    def runtime(self) -> timedelta | None:
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    def long_running_threshold(self) -> float | None:
        """Seconds after which this run counts as long running, or None when nothing tells (SPEC §1:
        the job's threshold, else its average completed runtime × BATCHDESK_LONG_RUNNING_MULTIPLIER).
        No query: the job keeps its average."""
        if self.job.threshold_runtime_seconds:
            return float(self.job.threshold_runtime_seconds)
        if not self.job.average_runtime_seconds:
            return None
        return self.job.average_runtime_seconds * settings.BATCHDESK["LONG_RUNNING_MULTIPLIER"]

    @property
    def long_running(self) -> bool:
        runtime = self.runtime
        if runtime is None:
            return False
        threshold = self.long_running_threshold()
        return threshold is not None and runtime.total_seconds() > threshold
