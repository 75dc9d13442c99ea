"""Schedules of jobs and of flows: SPEC §4. The maths lives in timing.py;
the rules that belong to one schedule live here; firing is services.py."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Min, OuterRef, Q, Subquery
from django.utils import timezone

from apps.catalog.validators import timezone_name
from apps.scheduling import timing


def default_timezone() -> str:
    return settings.TIME_ZONE


class Kind(models.TextChoices):
    ONCE = "once"
    INTERVAL = "interval"
    CRON = "cron"


class Misfire(models.TextChoices):
    SKIP = "skip"
    RUN_ONCE = "run_once"
    RUN_ALL = "run_all"


def next_fire_of_job(job=OuterRef("pk")) -> Subquery:
    """A job's earliest next fire over its active schedules: the one subquery that annotates job lists."""
    return Subquery(Schedule.objects.filter(job=job, active=True).order_by().values("job")
                    .annotate(first=Min("next_fire_at")).values("first"))


class Schedule(models.Model):
    # Exactly one target: a job (a fire triggers it) or a flow (a fire starts a run).
    job = models.ForeignKey(
        "catalog.JobDefinition", on_delete=models.CASCADE, null=True, blank=True, related_name="schedules"
    )
    flow = models.ForeignKey("catalog.Flow", on_delete=models.CASCADE, null=True, blank=True, related_name="schedules")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.CRON)
    cron = models.CharField(max_length=200, blank=True)
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    start_at = models.DateTimeField(null=True, blank=True)
    end_at = models.DateTimeField(null=True, blank=True)
    repeats = models.PositiveIntegerField(default=0, help_text="0 = forever.")
    timezone = models.CharField(max_length=64, default=default_timezone, validators=[timezone_name])
    misfire = models.CharField(max_length=10, choices=Misfire.choices, default=Misfire.SKIP)
    active = models.BooleanField(default=True)
    extra = models.TextField(blank=True)
    next_fire_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_fired_at = models.DateTimeField(null=True, blank=True, editable=False)
    fire_count = models.PositiveIntegerField(default=0, editable=False)
    inactive_reason = models.CharField(max_length=200, blank=True, editable=False,
                                       help_text="Why the schedule is inactive: paused, or finished.")

    class Meta:
        permissions = [("pause_schedule", "Can pause and resume schedules")]
        indexes = [models.Index(fields=["active", "next_fire_at"], name="schedule_due")]
        constraints = [
            models.CheckConstraint(
                condition=(Q(job__isnull=False) & Q(flow__isnull=True)) | (Q(job__isnull=True) & Q(flow__isnull=False)),
                name="schedule_has_one_target",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.target_name} ({self.describe()})"

    @property
    def target_name(self) -> str:
        if self.job_id:
            return self.job.name
        return str(self.flow) if self.flow_id else "?"

    def describe(self) -> str:
        if self.kind == Kind.CRON:
            return f"cron {self.cron} {self.timezone}"
        if self.kind == Kind.INTERVAL:
            return f"every {self.interval_seconds}s"
        return f"once at {self.start_at:%Y-%m-%d %H:%M:%S %Z}" if self.start_at else "once"

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not self.job_id and not self.flow_id:
            errors["job"] = "A schedule needs a job or a flow."
        if self.job_id and self.flow_id:
            errors["flow"] = "A schedule has one target: a job or a flow, not both."
        if self.kind == Kind.CRON:
            try:
                timing.validate_cron(self.cron, self.timezone if self._zone_ok() else "UTC")
            except ValidationError as exc:
                errors["cron"] = " ".join(exc.messages)
        elif self.kind == Kind.INTERVAL and not self.interval_seconds:
            errors["interval_seconds"] = "An interval schedule needs interval_seconds of at least 1."
        elif self.kind == Kind.ONCE and not self.start_at:
            errors["start_at"] = "A one-time schedule fires at start_at: give it."
        elif self.kind == Kind.ONCE and self.active and self.start_at <= timezone.now() and self.fire_count == 0:
            errors["start_at"] = f"{self.start_at:%Y-%m-%d %H:%M:%S %Z} is in the past: this one-time schedule would never fire."
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            errors["end_at"] = "end_at must be after start_at."
        if errors:
            raise ValidationError(errors)

    def _zone_ok(self) -> bool:
        try:
            timezone_name(self.timezone)
        except ValidationError:
            return False
        return True

    def timing(self) -> timing.Timing:
        """The slots of this schedule. A stored cron expression that no longer parses (the
        6/7-field day rule tightened; see checks.py) has none: schedule_from finishes it."""
        if self.kind == Kind.CRON:
            try:
                return timing.CronTiming(self.cron, self.timezone, self.start_at, self.end_at)
            except ValidationError as exc:
                return timing.InvalidTiming(f"invalid cron: {' '.join(exc.messages)}")
        if self.kind == Kind.INTERVAL:
            return timing.IntervalTiming(self.start_at or timezone.now(), self.interval_seconds, self.end_at)
        return timing.OnceTiming(self.start_at)

    def upcoming(self, count: int = 5, after: datetime | None = None) -> list[datetime]:
        """The next `count` fire times (UTC); none while inactive."""
        if not self.active:
            return []
        start = after or (self.next_fire_at - timedelta(microseconds=1) if self.next_fire_at else timezone.now())
        try:
            return timing.upcoming(self.timing(), start, count)
        except (OverflowError, ValueError):  # slots past year 9999: there are no more
            return []

    def schedule_from(self, moment: datetime) -> None:
        """(Re)compute next_fire_at as the first slot after `moment`; finish when none is left."""
        if self.kind == Kind.INTERVAL and self.start_at is None:
            # Anchor the interval now (its first fire), so that later slots do not drift.
            self.start_at = moment
            self.next_fire_at = moment if self.active else None
            return
        plan = self.timing()
        try:
            self.next_fire_at = plan.next_after(moment) if self.active else None
        except (OverflowError, ValueError):  # the next slot would be past year 9999
            self.next_fire_at = None
        if self.active and self.next_fire_at is None:
            if isinstance(plan, timing.InvalidTiming):
                self.finish(plan.problem)
            else:
                self.finish("no fire time left (end_at passed, or the one-time slot is gone)")

    def rearm(self, moment: datetime) -> None:
        """After an edit: the next slot after `moment` under the rules as they are now; none while inactive."""
        self.next_fire_at = None
        if self.active:
            self.inactive_reason = ""
            self.schedule_from(moment)

    def reactivate(self, moment: datetime) -> None:
        """Active again from `moment`: the slots while inactive are not caught up, and a schedule
        that used up its repeats starts them afresh."""
        self.active = True
        if self.repeats and self.fire_count >= self.repeats:
            self.fire_count = 0
        self.rearm(moment)

    def rearm_after_edit(self, moment: datetime, was_active: bool, stop_reason: str) -> None:
        """After an edit that may also have switched the schedule on or off: switched on, as
        reactivate(); switched off, finished with `stop_reason`; otherwise as rearm()."""
        if self.active and not was_active:
            self.reactivate(moment)
        elif was_active and not self.active:
            self.finish(stop_reason)
        else:
            self.rearm(moment)

    def finish(self, reason: str) -> None:
        self.active = False
        self.next_fire_at = None
        self.inactive_reason = reason[:200]

    def save(self, *args, **kwargs) -> None:
        # A new or edited active schedule starts from now: catch-up is for downtime only.
        if self.active and self.next_fire_at is None and "update_fields" not in kwargs:
            self.schedule_from(timezone.now())
        super().save(*args, **kwargs)


class Outcome(models.TextChoices):
    FIRED = "fired"
    SKIPPED = "skipped"
    MISSED = "missed"


class FiredSlot(models.Model):
    """The ledger: each (schedule, slot) at most once, whatever number of dispatchers run."""

    schedule = models.ForeignKey(Schedule, on_delete=models.CASCADE, related_name="fired_slots")
    slot = models.DateTimeField(help_text="The due instant (UTC).")
    fired_at = models.DateTimeField(default=timezone.now)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    execution = models.ForeignKey("engine.Execution", on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="fired_slots")
    flow_run = models.ForeignKey("flows.FlowRun", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="fired_slots")
    reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-slot"]
        constraints = [models.UniqueConstraint(fields=["schedule", "slot"], name="one_fire_per_slot")]

    def __str__(self) -> str:
        return f"{self.schedule_id} @ {self.slot:%Y-%m-%d %H:%M:%S} {self.outcome}"

    @property
    def lateness(self) -> timedelta:
        return self.fired_at - self.slot
