"""Figures the console pages draw: a job's recent runs (the job page's chart and its statistics)
and its next fires. Read with a bounded number of queries, whatever the history."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from apps.catalog.models import JobDefinition
from apps.engine.models import Execution, Status
from apps.scheduling.models import Schedule

RECENT_RUNS = 30
CHART_WIDTH, CHART_HEIGHT, CHART_TOP = 720, 160, 14  # px; CHART_TOP leaves room for the scale


@dataclass
class Bar:
    execution: Execution
    x: float
    y: float
    width: float
    height: float
    seconds: float | None


def nearest_rank(values: list[float], percent: float) -> float | None:
    """The nearest-rank percentile: a value that was measured; None of no values."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)] if ordered else None


def job_report(job: JobDefinition, now: datetime | None = None) -> dict:
    """The last RECENT_RUNS runs drawn as bars (height: duration, colour: outcome), the success rate,
    average and p90 duration of those runs, and the job's next five fires over its schedules."""
    now = now or timezone.now()
    # The index execution_job_recent (job, -created_at) serves this, however long the history.
    runs = list(Execution.objects.filter(job=job).order_by("-created_at", "-id")
                .only("id", "status", "warning", "attempt", "trigger", "created_at", "started_at", "finished_at",
                      "job_id")[:RECENT_RUNS])[::-1]
    seconds = [_seconds(run, now) for run in runs]
    completed = [s for run, s in zip(runs, seconds) if run.status == Status.COMPLETED and s is not None]
    ended = [run for run in runs if run.status in (Status.COMPLETED, Status.ERROR)]
    return {
        "runs": runs,
        "bars": _bars(runs, seconds),
        "chart": {"width": CHART_WIDTH, "height": CHART_HEIGHT, "top": CHART_TOP,
                  "scale": max([s for s in seconds if s is not None], default=0)},
        "success_rate": (100 * sum(run.status == Status.COMPLETED for run in ended) / len(ended)) if ended else None,
        "average_seconds": sum(completed) / len(completed) if completed else None,
        "p90_seconds": nearest_rank(completed, 90),
        "failures": sum(run.status == Status.ERROR for run in runs),
        "next_fires": next_fires(job),
    }


def _seconds(run: Execution, now: datetime) -> float | None:
    if run.started_at is None:
        return None
    return ((run.finished_at or now) - run.started_at).total_seconds()


def _bars(runs: list[Execution], seconds: list[float | None]) -> list[Bar]:
    slot = CHART_WIDTH / RECENT_RUNS
    scale = max([s for s in seconds if s is not None], default=0) or 1
    usable = CHART_HEIGHT - CHART_TOP
    bars = []
    for i, (run, s) in enumerate(zip(runs, seconds)):
        # A run that never started (skipped, killed while waiting) still shows, as a stub.
        height = max(usable * (s or 0) / scale, 2)
        bars.append(Bar(run, x=round(i * slot + 2, 1), y=round(CHART_HEIGHT - height, 1), width=round(slot - 4, 1),
                        height=round(height, 1), seconds=s))
    return bars


def next_fires(job: JobDefinition, count: int = 5) -> list[tuple[datetime, Schedule]]:
    """The next `count` fires of the job over all its active schedules, soonest first."""
    fires = [(moment, schedule) for schedule in job.schedules.filter(active=True).select_related("job")
             for moment in schedule.upcoming(count)]
    return sorted(fires, key=lambda fire: fire[0])[:count]
