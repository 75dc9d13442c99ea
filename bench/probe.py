"""The plain django-q2 tasks of the bench scripts, and the reading of what they recorded.

`record_start` is trigger_latency.py's; `record_scheduled_start` is what schedule_precision.py's
django-q2 `Schedule`s run. They run inside qcluster workers, so they must stay importable without
the bench scripts and must not touch the database: the baseline is django-q2's own path, nothing more.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path


def record_start(probe_id: int, path: str) -> None:
    """Note the moment a worker began this task."""
    started = time.time()
    # One short write in append mode: lines from concurrent workers land whole (O_APPEND).
    with open(path, "a") as out:
        out.write(f"{probe_id} {started!r}\n")


def read_starts(path: Path) -> dict[int, float]:
    """probe id → start time (epoch seconds) of every probe recorded so far."""
    if not path.exists():
        return {}
    text = path.read_text()
    # A line still being written would parse as a truncated, wrong time: keep whole lines only.
    complete = text[: text.rfind("\n") + 1]
    starts = {}
    for line in complete.splitlines():
        probe_id, started = line.split()
        starts[int(probe_id)] = float(started)
    return starts


def record_scheduled_start(path: str, label: str, intended: str = "") -> None:
    """Note the moment a worker began this scheduled task, beside the due instant it was meant for.

    `intended` is what django-q2 passes through a Schedule's `intended_date_kwarg`: the schedule's
    `next_run` (ISO 8601) at the moment its scheduler made this task.
    """
    started = time.time()
    due = datetime.fromisoformat(intended).timestamp() if intended else float("nan")
    with open(path, "a") as out:
        out.write(f"{label} {due!r} {started!r}\n")


def read_scheduled_starts(path: Path) -> list[tuple[str, float, float]]:
    """(label, due, started) in epoch seconds, of every scheduled start recorded so far."""
    if not path.exists():
        return []
    text = path.read_text()
    complete = text[: text.rfind("\n") + 1]
    rows = []
    for line in complete.splitlines():
        label, due, started = line.split()
        rows.append((label, float(due), float(started)))
    return rows
