"""Firing schedules, pausing and resuming them: the dispatcher, admin and API call these.

Each due schedule is fired in its own transaction that locks its row (skipping rows another
dispatcher holds); the FiredSlot ledger's unique (schedule, slot) is the last word, so a
slot fires at most once however many dispatchers run.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps import audit
from apps.engine import services as engine
from apps.flows import services as flows
from apps.errors import BatchError
from apps.faults import TRANSIENT_DB_ERRORS
from apps.engine.models import Trigger
from apps.scheduling import timing
from apps.scheduling.models import FiredSlot, Misfire, Outcome, Schedule

log = logging.getLogger(__name__)

# The longest pause before a schedule whose fire failed is tried again.
MAX_FIRE_PAUSE_SECONDS = 300.0


def _setting(name: str):
    return settings.BATCHDESK[name]


def fire_due(now: datetime | None = None, limit: int = 200) -> int:
    """Fire every schedule due by `now`; returns how many slots were fired or skipped.

    One transaction for the tick (one commit, and the start tasks queued together after it);
    each schedule in a savepoint, so that one that fails to fire does not hold back the others.
    """
    now = now or timezone.now()
    fired = 0
    with transaction.atomic():
        due = list(
            Schedule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("job__application", "flow")
            .filter(active=True, next_fire_at__lte=now)
            .exclude(pk__in=_failing.paused(now))
            .order_by("next_fire_at")[:limit]
        )
        for schedule in due:
            try:
                with transaction.atomic():
                    fired += _fire(schedule, now)
            except TRANSIENT_DB_ERRORS:
                raise  # the database's fault, not the schedule's: the whole step is tried again
            except Exception:
                pause = _failing.failed(schedule.pk, now)
                log.exception("schedule %s could not be fired; it stays due and is tried again in %.0f s",
                              schedule.pk, pause)
            else:
                _failing.succeeded(schedule.pk)
    return fired


class FailingFires:
    """Schedules whose fire failed, paused in this process: tried again after 1 s, doubling to five
    minutes. A schedule that keeps failing costs a try now and then, and the dispatcher sleeps until
    then instead of ticking 50 times a second for a schedule that stays due."""

    def __init__(self) -> None:
        self._failures: dict[int, tuple[int, datetime]] = {}  # failures in a row, next try

    def failed(self, pk: int, now: datetime) -> float:
        count = self._failures.get(pk, (0, now))[0] + 1
        pause = min(2.0 ** (count - 1), MAX_FIRE_PAUSE_SECONDS)
        self._failures[pk] = (count, now + timedelta(seconds=pause))
        return pause

    def succeeded(self, pk: int) -> None:
        self._failures.pop(pk, None)

    def clear(self) -> None:
        self._failures.clear()

    def paused(self, now: datetime) -> list[int]:
        return [pk for pk, (_, retry_at) in self._failures.items() if retry_at > now]

    def seconds_until_retry(self, now: datetime) -> float | None:
        """Until the first paused schedule may be tried again."""
        waits = [(retry_at - now).total_seconds() for _, retry_at in self._failures.values() if retry_at > now]
        return min(waits) if waits else None


_failing = FailingFires()


def seconds_until_next_fire(now: datetime | None = None) -> float | None:
    """How long the dispatcher may sleep before a schedule is due (None: nothing scheduled); a
    schedule paused after failing counts from the end of its pause."""
    now = now or timezone.now()
    first = (
        Schedule.objects.filter(active=True, next_fire_at__isnull=False)
        .exclude(pk__in=_failing.paused(now))
        .order_by("next_fire_at")
        .values_list("next_fire_at", flat=True)
        .first()
    )
    waits = [wait for wait in (None if first is None else max((first - now).total_seconds(), 0.0),
                               _failing.seconds_until_retry(now)) if wait is not None]
    return min(waits) if waits else None


def _fire(schedule: Schedule, now: datetime) -> int:
    """Fire one locked schedule's due slots under its misfire policy and move it to its next slot."""
    on_time, missed, more_missed = _due_slots(schedule, now)
    to_fire = list(on_time)
    if missed:
        to_fire = _apply_misfire(schedule, missed, more_missed) + to_fire
    fired = 0
    for slot in to_fire:
        if schedule.repeats and schedule.fire_count >= schedule.repeats:
            break  # run_all after an outage: never past the repeats
        taken, ran = _fire_slot(schedule, slot)
        fired += taken
        schedule.fire_count += ran  # repeats count executions, not slots skipped
        if ran:
            schedule.last_fired_at = now
    schedule.schedule_from(now)
    if schedule.active and schedule.repeats and schedule.fire_count >= schedule.repeats:
        schedule.finish(f"used up its {schedule.repeats} repeats")
    schedule.save(update_fields=["fire_count", "last_fired_at", "next_fire_at", "active", "inactive_reason",
                                 "start_at"])
    return fired


def _due_slots(schedule: Schedule, now: datetime) -> tuple[list[datetime], list[datetime], bool]:
    """(on-time slots, missed slots, whether more were missed than listed).

    A slot older than the misfire grace was missed (the engine was down); the younger ones
    are merely due. Both lists are capped, so a long outage costs no more than a short one.
    """
    grace_edge = now - timedelta(seconds=_setting("MISFIRE_GRACE_SECONDS"))
    cap = _setting("MISFIRE_RUN_ALL_CAP")
    plan = schedule.timing()
    before_first = schedule.next_fire_at - timedelta(microseconds=1)
    if schedule.next_fire_at > grace_edge:
        return timing.slots_between(plan, before_first, now, cap), [], False
    missed = timing.slots_between(plan, before_first, grace_edge, cap + 1)
    on_time = timing.slots_between(plan, grace_edge, now, cap)
    return on_time, missed[:cap], len(missed) > cap


def _apply_misfire(schedule: Schedule, missed: list[datetime], more_missed: bool) -> list[datetime]:
    """The missed slots the policy fires; the others are recorded once as missed."""
    count = f"{len(missed)}{'+' if more_missed else ''}"
    if schedule.misfire == Misfire.RUN_ALL:
        chosen = missed
        note = f"{count} missed slots fired (misfire=run_all, at most {_setting('MISFIRE_RUN_ALL_CAP')})"
    elif schedule.misfire == Misfire.RUN_ONCE:
        chosen = missed[-1:]
        note = f"{count} missed slots, fired once (misfire=run_once)"
    else:
        chosen = []
        note = f"{count} missed slots not fired (misfire=skip)"
    log.warning("schedule %s: %s", schedule.pk, note)
    unfired = [slot for slot in missed if slot not in chosen]
    if unfired:
        _record(schedule, unfired[0], Outcome.MISSED, note)
    return chosen


def _fire_slot(schedule: Schedule, slot: datetime) -> tuple[int, int]:
    """Trigger the target for one slot and record it; returns (1 if this call took the slot,
    1 if an execution was made)."""
    try:
        with transaction.atomic():
            ledger = FiredSlot.objects.create(schedule=schedule, slot=slot, fired_at=timezone.now(),
                                              outcome=Outcome.FIRED)
    except IntegrityError:
        return 0, 0  # this slot was fired already
    by = f"schedule {schedule.pk}"
    try:
        if schedule.flow_id:
            fired = {"flow_run": flows.start_run(schedule.flow, trigger=Trigger.SCHEDULE, triggered_by=by)}
        else:
            fired = {"execution": engine.trigger(schedule.job, trigger=Trigger.SCHEDULE, triggered_by=by)}
    except BatchError as exc:
        # A forbid job still running, a flow's open run, a disabled job: recorded with its reason, never dropped.
        FiredSlot.objects.filter(pk=ledger.pk).update(outcome=Outcome.SKIPPED, reason=f"{exc.code}: {exc.message}"[:300])
        log.info("schedule %s slot %s skipped: %s", schedule.pk, slot, exc.message)
        return 1, 0
    FiredSlot.objects.filter(pk=ledger.pk).update(**fired)
    return 1, 1


def _record(schedule: Schedule, slot: datetime, outcome: str, reason: str) -> None:
    try:
        with transaction.atomic():
            FiredSlot.objects.create(schedule=schedule, slot=slot, outcome=outcome, reason=reason[:300])
    except IntegrityError:
        pass


def pause(schedule: Schedule, by: str) -> Schedule:
    """Stop firing; persisted, so it survives restarts."""
    with transaction.atomic():
        Schedule.objects.filter(pk=schedule.pk).update(active=False, next_fire_at=None,
                                                        inactive_reason=f"paused by {by}"[:200])
        audit.record(by, "pause", schedule)
    schedule.refresh_from_db()
    return schedule


def resume(schedule: Schedule, by: str) -> Schedule:
    """Fire again from the next slot after now (slots during the pause are not caught up)."""
    with transaction.atomic():
        schedule = Schedule.objects.select_for_update().get(pk=schedule.pk)
        schedule.reactivate(timezone.now())
        schedule.save()
        audit.record(by, "resume", schedule)
    log.info("schedule %s resumed by %s", schedule.pk, by)
    return schedule


# What a fire writes; an edit saves everything but these, so that it never overwrites the count
# of a fire that happened between reading the schedule and saving it.
FIRE_FIELDS = {"fire_count", "last_fired_at"}


def reschedule(schedule: Schedule) -> Schedule:
    """After an edit: the next slot from now under the new rules."""
    schedule.rearm(timezone.now())
    if schedule.pk is None:
        schedule.save()
    else:
        schedule.save(update_fields=[field.name for field in Schedule._meta.concrete_fields
                                     if not field.primary_key and field.name not in FIRE_FIELDS])
    return schedule
