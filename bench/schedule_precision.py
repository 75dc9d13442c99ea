"""Schedule precision: how late a schedule firing every second starts its run, beside django-q2's own Schedule.

    .venv/bin/python bench/schedule_precision.py [--backend both|sqlite|postgres] [--fires 200]
                                                 [--django-q2-seconds 180] [--schedules 1]

For each backend it makes a scratch database (a fresh SQLite file under var/, or a PostgreSQL
database it creates and drops), starts a real `manage.py run_dispatcher` and `manage.py qcluster`
against it, warms the workers up, and then measures, at the same time:

- ours: a Schedule (kind cron, `* * * * * *`: 6 fields, seconds first) of a DUMMY job with
  concurrency=allow and repeats=--fires; per fire, execution.started_at (RUNNING) minus
  FiredSlot.slot (the due instant), split at the execution's created_at into the dispatcher's part
  and the queue's (hand-out, pick-up, claim); --schedules N makes N such schedules, due together;
- django-q2's own `django_q.models.Schedule`, with the cluster's default scheduler settings, for
  --django-q2-seconds: the closest it has to "every second", Schedule.CRON `* * * * * *` (its
  6-field cron is croniter's, seconds last: the same every-second expression), and the usual
  MINUTES=1. Each runs `bench.probe.record_scheduled_start`, which notes when a worker began it
  beside the due instant the schedule meant (its `next_run`, through `intended_date_kwarg`).
  Counted are the slots due at least one scheduler period (~30 s) before the schedules were removed.

It prints p50/p99 lateness beside the target (ours p99 <= 1 s, SPEC §4) and the load average,
and exits 0 whether or not the target is met (1 only if a backend could not be measured).

The PostgreSQL half uses PostgreSQL + Redis at BENCH_SCHEDULE_POSTGRES_URL / BENCH_SCHEDULE_REDIS_URL
(or --postgres-url / --redis-url), never DATABASE_URL / REDIS_URL: it drops the database it names.
Their defaults differ from trigger_latency.py's, so that the two can run side by side.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the script's own directory is bench/, not the project

from bench.harness import (  # noqa: E402
    BACKENDS,
    VAR,
    Processes,
    add_scratch_options,
    dummy_job,
    measured,
    percentile,
    refuse_unless_scratch,
    run_per_backend,
)

TARGET_P99_S = 1.0
CRON = "* * * * * *"
# Seconds between creating our schedule and its first slot: the dispatcher, napping up to a tick,
# sees a schedule that is new to it at its next tick; the steady state is what is measured here.
LEAD_SECONDS = 2

# Not trigger_latency.py's database nor its Redis database: the two can run at the same time.
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/batchdesk_bench_schedule"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"


def main() -> int:
    args = parse_args()
    started = time.monotonic()
    return run_per_backend(args, name="bench_schedule", measure=measure, queue_name="batchdesk-schedulebench",
                           report=lambda results: print_report(results, args, time.monotonic() - started))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["both", *BACKENDS], default="both")
    parser.add_argument("--fires", type=int, default=200, help="Fires of each every-second schedule of ours (default 200).")
    parser.add_argument("--schedules", type=int, default=1,
                        help="Identical every-second schedules of ours, due at the same instants (default 1).")
    parser.add_argument("--django-q2-seconds", type=float, default=180.0,
                        help="How long django-q2's own schedules run, alongside ours (default 180).")
    add_scratch_options(parser, postgres_url=DEFAULT_POSTGRES_URL, redis_url=DEFAULT_REDIS_URL,
                        env_prefix="BENCH_SCHEDULE", per_backend=True)
    args = parser.parse_args()
    if args.fires < 1 or args.schedules < 1 or args.django_q2_seconds < 0:
        parser.error("--fires and --schedules must be positive, --django-q2-seconds not negative")
    refuse_unless_scratch(parser, args)
    return args


# --- one backend, with a real dispatcher and cluster --------------------------------------


def measure(backend: str, args: argparse.Namespace, processes: Processes) -> dict:
    from django_q.conf import Conf
    from django_q.models import Schedule as QSchedule

    from apps.engine import services
    from apps.engine.models import TERMINAL, Execution
    from apps.scheduling.models import FiredSlot, Kind, Outcome, Schedule
    from bench.probe import read_scheduled_starts

    label = BACKENDS[backend]
    probe_file = VAR / f"bench_schedule-{backend}-probes.txt"
    probe_file.unlink(missing_ok=True)
    job = dummy_job("bench-schedule-dummy")

    # Every worker's first run imports the runner's modules, which is not lateness. A burst reaches
    # every worker.
    warmup = [services.trigger(job, triggered_by="bench warm-up").pk for _ in range(2 * Conf.WORKERS)]
    if not processes.wait_until(
        lambda: Execution.objects.filter(pk__in=warmup, status__in=TERMINAL).count() == len(warmup), 120
    ):
        raise RuntimeError(f"the warm-up runs did not end within 120 s; see {processes.log_prefix}-qcluster.log")

    # django-q2's own, as it comes: the scheduler in the cluster's guard loop, default settings.
    q2_started, q2_stopped, q2_schedules = time.time(), None, []
    if args.django_q2_seconds:
        q2_schedules = [
            QSchedule.objects.create(
                name="bench-cron-every-second", func="bench.probe.record_scheduled_start",
                args=repr((str(probe_file), "cron")), intended_date_kwarg="intended",
                schedule_type=QSchedule.CRON, cron=CRON, repeats=-1,
            ),
            QSchedule.objects.create(
                name="bench-minutes-1", func="bench.probe.record_scheduled_start",
                args=repr((str(probe_file), "minutes")), intended_date_kwarg="intended",
                schedule_type=QSchedule.MINUTES, minutes=1, repeats=-1,
            ),
        ]

    # Ours.
    first_slot = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=LEAD_SECONDS + 1)
    ids = []
    for _ in range(args.schedules):
        schedule = Schedule(job=job, kind=Kind.CRON, cron=CRON, repeats=args.fires, start_at=first_slot)
        schedule.full_clean()
        schedule.save()
        ids.append(schedule.pk)
    expected = args.fires * args.schedules
    fired = FiredSlot.objects.filter(schedule__in=ids, outcome=Outcome.FIRED)
    executions = Execution.objects.filter(fired_slots__schedule__in=ids)
    print(f"{label}: {describe_ours(args)} from {first_slot:%H:%M:%S}; django-q2's run "
          f"{args.django_q2_seconds:g} s beside it", file=sys.stderr)

    patience = LEAD_SECONDS + args.fires + 120
    deadline = time.monotonic() + patience
    loads, next_note = [], time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_note:
            loads.append(os.getloadavg()[0])
            next_note = now + 5
            if len(loads) % 6 == 1:
                print(f"{label}: ours {fired.count()}/{expected} fired; django-q2 "
                      f"{len(read_scheduled_starts(probe_file))} started; load {loads[-1]:.2f}", file=sys.stderr)
        if q2_stopped is None and time.time() - q2_started >= args.django_q2_seconds:
            QSchedule.objects.filter(pk__in=[q.pk for q in q2_schedules]).delete()
            q2_stopped = time.time()
        ours_done = (
            not Schedule.objects.filter(pk__in=ids, active=True).exists()
            and not executions.exclude(status__in=TERMINAL).exists()
        )
        if ours_done and q2_stopped is not None:
            break
        if now > deadline:
            print(f"{label}: gave up waiting after {patience} s", file=sys.stderr)
            break
        processes.sleep(0.5)
    if q2_stopped is None:
        QSchedule.objects.filter(pk__in=[q.pk for q in q2_schedules]).delete()
        q2_stopped = time.time()
    time.sleep(1)  # a task django-q2 enqueued just before its schedules went: let it start

    # Ours: per slot, due → fired → RUNNING.
    rows = list(
        FiredSlot.objects.filter(schedule__in=ids).order_by("slot", "schedule_id")
        .values_list("schedule_id", "slot", "fired_at", "outcome", "execution__created_at", "execution__started_at")
    )
    fires_path = VAR / f"bench_schedule-{backend}-fires.csv"
    with open(fires_path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["schedule", "slot", "fired_at", "outcome", "created_at", "started_at", "lateness_s"])
        for schedule_id, slot, fired_at, outcome, created, started in rows:
            writer.writerow([schedule_id, slot.isoformat(), fired_at.isoformat(), outcome, created and created.isoformat(),
                             started and started.isoformat(), started and (started - slot).total_seconds()])
    started_rows = [r for r in rows if r[3] == Outcome.FIRED and r[5] is not None]
    gaps = 0  # slots within a schedule's span with no ledger row at all
    for schedule_id in ids:
        slots = [r[1] for r in rows if r[0] == schedule_id]
        if slots:
            gaps += int((slots[-1] - slots[0]).total_seconds()) + 1 - len(slots)
    ours = {
        "fire_count": sum(Schedule.objects.filter(pk__in=ids).values_list("fire_count", flat=True)),
        "expected": expected,
        "not_fired": [f"{slot:%H:%M:%S} {outcome}" for _, slot, _, outcome, *_ in rows if outcome != Outcome.FIRED],
        "slot_gaps": gaps,
        "not_started": len([r for r in rows if r[3] == Outcome.FIRED and r[5] is None]),
        "lateness": [(started - slot).total_seconds() for _, slot, _, _, _, started in started_rows],
        # The execution's created_at, not the ledger's fired_at: fired_at is the tick's "now", the same
        # for every schedule that tick fires, while each execution is made in its own schedule's turn.
        "dispatch": [(created - slot).total_seconds() for _, slot, _, _, created, _ in started_rows],
        "queue": [(started - created).total_seconds() for _, _, _, _, created, started in started_rows],
        "csv": str(fires_path),
    }

    # django-q2's: each fire against the due instant it was meant for. Counted: the slots due at
    # least one scheduler period before the schedules were removed, so that each had a pass to fire.
    period = Conf.GUARD_CYCLE * 60
    cutoff = q2_stopped - period
    q2 = {"window": q2_stopped - q2_started if q2_schedules else 0.0, "period": period}
    if q2_schedules:
        made = {"cron": q2_schedules[0].next_run.timestamp() - 1, "minutes": q2_schedules[1].next_run.timestamp()}
        slots_due = {"cron": max(0, math.floor(cutoff) - math.floor(made["cron"])),
                     "minutes": max(0, math.floor((cutoff - made["minutes"]) / 60) + 1)}
        for kind in ("cron", "minutes"):
            starts = [(due, started) for name, due, started in read_scheduled_starts(probe_file) if name == kind]
            q2[kind] = {
                "slots_due": slots_due[kind],
                "lateness": [started - due for due, started in starts if due <= cutoff],
                "after_cutoff": len([due for due, _ in starts if due > cutoff]),
                "first_after_s": min((started for _, started in starts), default=math.nan) - q2_started,
            }
    return {"workers": Conf.WORKERS, "load": {"samples": loads, "after": os.getloadavg()[0]}, "ours": ours, "django_q2": q2}


def describe_ours(args: argparse.Namespace) -> str:
    if args.schedules == 1:
        return f"our schedule fires every second, {args.fires} times"
    return f"{args.schedules} schedules fire every second (the same slots), {args.fires} times each"


# --- the report ---------------------------------------------------------------------------


def _figures(values: list[float]) -> str:
    if not values:
        return f"{'-':>9}{'-':>9}{'-':>9}"
    return f"{percentile(values, 50):>9.3f}{percentile(values, 99):>9.3f}{max(values):>9.3f}"


def print_report(results: list[dict], args: argparse.Namespace, elapsed: float) -> None:
    workers = next((result["workers"] for result in results if "workers" in result), "?")
    print()
    print(f"Schedule precision: lateness from the due instant to the start of the run (RUNNING), in seconds "
          f"(p50/p99 nearest rank); {workers} workers, {os.cpu_count()} CPUs")
    ours_name = f"ours, cron {CRON!r}" + (f" x{args.schedules} schedules" if args.schedules > 1 else "")
    header = f"{'backend':<27}{'scheduler':<46}{'fires':>11}{'p50':>9}{'p99':>9}{'max':>9}"
    print(header)
    print("-" * len(header))
    verdicts, notes = [], []
    for label, result in measured(results):
        ours, q2 = result["ours"], result["django_q2"]
        fires = f"{len(ours['lateness'])}/{ours['expected']}"
        print(f"{label:<27}{ours_name:<46}{fires:>11}{_figures(ours['lateness'])}")
        print(f"{'':<27}{'  of which due -> created (dispatcher)':<46}{'':>11}{_figures(ours['dispatch'])}")
        print(f"{'':<27}{'  of which created -> RUNNING (queue, claim)':<46}{'':>11}{_figures(ours['queue'])}")
        for kind, name in (("cron", f"django-q2 Schedule CRON {CRON!r}"), ("minutes", "django-q2 Schedule MINUTES=1")):
            if kind not in q2:
                print(f"{'':<27}{name:<46}{'not run (--django-q2-seconds 0)':>38}")
                continue
            fires = f"{len(q2[kind]['lateness'])}/{q2[kind]['slots_due']}"
            print(f"{'':<27}{name:<46}{fires:>11}{_figures(q2[kind]['lateness'])}")
        if ours["lateness"]:
            p99 = percentile(ours["lateness"], 99)
            verdicts.append(f"  {label:<27}ours p99 {p99:.3f} s <= {TARGET_P99_S:g} s: "
                            f"{'met' if p99 <= TARGET_P99_S else 'MISSED'}")
        else:
            verdicts.append(f"  {label:<27}ours: nothing started")
        samples = result["load"]["samples"] or [result["load"]["after"]]
        notes.append(f"  {label}: load average (1 min) {samples[0]:.2f} at the start, mean {statistics.mean(samples):.2f}, "
                     f"max {max(samples):.2f} over the run, {result['load']['after']:.2f} at the end")
        if "cron" in q2:
            late = q2["cron"]["after_cutoff"] + q2["minutes"]["after_cutoff"]
            notes.append(f"  {label}: django-q2's schedules ran {q2['window']:.0f} s beside ours; their first fire came "
                         f"{q2['cron']['first_after_s']:.1f} s after they were made"
                         + (f"; {late} fire(s) of slots due in the last {q2['period']:g} s left out" if late else ""))
        if (ours["fire_count"] != ours["expected"] or ours["not_fired"] or ours["slot_gaps"] or ours["not_started"]):
            notes.append(f"  {label}: ours fired {ours['fire_count']} of {ours['expected']}; ledger rows not fired: "
                         f"{', '.join(ours['not_fired']) or 'none'}; slots with no ledger row: {ours['slot_gaps']}; "
                         f"fired but never RUNNING: {ours['not_started']}")
        notes.append(f"  {label}: every fire of ours: {ours['csv']}")
    print()
    print(f"Target (reported, not enforced): ours p99 <= {TARGET_P99_S:g} s late (SPEC §4: fires at most 1 s late).")
    print("\n".join(verdicts))
    print()
    print("Notes:")
    print("\n".join(notes))
    print("  django-q2, default settings: its scheduler runs in the cluster's guard loop once every 60 cycles of\n"
          "  guard_cycle 0.5 s (~30 s). Fires / slots due: the slots due at least one such period before its\n"
          "  schedules were removed. CRON computes next_run from the moment of a fire, so the slots in between are\n"
          "  never run; lateness is against the next_run it had stored. MINUTES=1 steps next_run a minute from\n"
          "  the previous one, so each fire is late by the phase between that minute and the scheduler's cycle.")
    print(f"  Run time {elapsed:.0f} s.")


if __name__ == "__main__":
    sys.exit(main())
