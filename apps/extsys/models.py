"""The reference external system's state: the tokens it issued and the executions it runs.

Nothing runs in the background: an execution's status and log are worked out from its start
time, duration and outcome whenever they are asked for, so any number of server processes
(or a clock moved by a test) agree without sharing anything but these rows."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class JobStatus(models.TextChoices):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    ERROR = "ERROR"


# The statuses a run can end in; RUNNING is only ever computed.
OUTCOMES = [(status.value, status.label) for status in (JobStatus.COMPLETED, JobStatus.ERROR)]


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AccessTokenQuerySet(models.QuerySet):
    def issue(self, scope: str) -> str:
        """A new bearer token valid for EXTSYS_TOKEN_TTL seconds; the caller gets the only copy."""
        now = timezone.now()
        # Sweeping expired rows here keeps the table as small as the set of live tokens.
        self.filter(expires_at__lte=now).delete()
        token = secrets.token_urlsafe(32)
        expires_at = now + timedelta(seconds=settings.EXTSYS_TOKEN_TTL)
        self.create(token=token_digest(token), scope=scope, expires_at=expires_at)
        return token

    def is_valid(self, token: str) -> bool:
        return bool(token) and self.filter(token=token_digest(token), expires_at__gt=timezone.now()).exists()


class AccessToken(models.Model):
    # Only a digest is stored, so a copy of the table grants nothing.
    token = models.CharField(max_length=64, unique=True, help_text="SHA-256 of the bearer token.")
    scope = models.CharField(max_length=500, blank=True)
    expires_at = models.DateTimeField(db_index=True)

    objects = AccessTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"token for {self.scope or '(no scope)'} until {self.expires_at:%Y-%m-%d %H:%M:%S}"


def new_execution_id() -> str:
    return uuid.uuid4().hex


class ExternalExecution(models.Model):
    execution_id = models.CharField(max_length=32, unique=True, default=new_execution_id, editable=False)
    cycle_name = models.CharField(max_length=200)
    flow_name = models.CharField(max_length=200)
    process_name = models.CharField(max_length=200)
    job_name = models.CharField(max_length=200)
    agent_execution_id = models.CharField(max_length=200)
    parameters = models.TextField(blank=True)
    # The knobs read from `parameters` at start (apps/extsys/knobs.py), kept as columns.
    started_at = models.DateTimeField(default=timezone.now)
    duration = models.FloatField(help_text="Seconds from start to the outcome.")
    outcome = models.CharField(max_length=10, choices=OUTCOMES)
    log_lines = models.PositiveIntegerField(default=5)
    running_status = models.CharField(
        max_length=50, default=JobStatus.RUNNING,
        help_text="Reported while running; another value tests how callers treat unknown ones.",
    )
    killed_at = models.DateTimeField(null=True, blank=True)
    restart_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True, related_name="restarts")

    class Meta:
        verbose_name = "execution"

    def __str__(self) -> str:
        return f"{self.job_name} {self.execution_id}"

    @property
    def ends_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.duration)

    def is_finished(self, now: datetime) -> bool:
        return self.killed_at is not None or now >= self.ends_at

    def status(self, now: datetime) -> str:
        if self.killed_at is not None:
            return JobStatus.ERROR
        return self.outcome if now >= self.ends_at else self.running_status

    def lines_written(self, now: datetime) -> int:
        """Log lines written by `now`: the elapsed share of the duration, frozen at a kill."""
        if self.duration <= 0:
            return self.log_lines
        stopped = min(now, self.killed_at or now)
        share = (stopped - self.started_at).total_seconds() / self.duration
        return int(min(max(share, 0.0), 1.0) * self.log_lines)

    def execution_info(self, now: datetime) -> str:
        if self.killed_at is not None:
            return "killed"
        if self.is_finished(now):
            return f"finished {self.outcome}"
        return f"running: {self.lines_written(now)} of {self.log_lines} lines written"

    def log(self, now: datetime) -> str:
        lines = [f"line {i} of {self.log_lines}" for i in range(1, self.lines_written(now) + 1)]
        if self.is_finished(now):
            lines.append(self.execution_info(now))
        return "".join(line + "\n" for line in lines)

    def kill(self, now: datetime) -> bool:
        """Stop the run at `now`; False when it had already finished or been killed."""
        # A conditional UPDATE, so that of two kills (or a kill racing the end) only one wins.
        still_running_since = now - timedelta(seconds=self.duration)
        won = type(self).objects.filter(
            pk=self.pk, killed_at__isnull=True, started_at__gt=still_running_since
        ).update(killed_at=now)
        if won:
            self.killed_at = now
        return bool(won)
