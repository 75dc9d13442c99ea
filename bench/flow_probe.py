"""`manage.py` with the flow step timed, for bench/flow_scale.py: every call of
`apps.flows.services.step` in this process (and in the workers a `qcluster` forks) appends one line
to the file named by FLOW_PROBE_FILE:

    step <run id> <unix time at its end> <pid> <wall ms> <CPU ms of its thread> <queries> <ms of its first query>

and every hand-out of executions to the queue (`apps.engine.lifecycle.hand_out`: one start task
each, from a flow step, a wake-up of waiters, or the dispatcher's lease recheck) one line:

    hand_out <unix time> <pid> <executions> <where from> <their ids, comma-separated>

The first query is the SELECT … FOR UPDATE of the run's row, so on PostgreSQL its time is mostly
the wait for another step of the same run. Nothing in the project is changed; the step is wrapped
only in the processes this script starts.

    python bench/flow_probe.py <manage.py command> [options]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the script's own directory is bench/, not the project


def install(path: str) -> None:
    """Wrap the flow step; `signals.py` and `start_run` look it up on the module at each call."""
    from django.db import connection

    from apps.engine import lifecycle
    from apps.flows import services

    original, original_hand_out = services.step, lifecycle.hand_out
    files: dict[int, object] = {}  # one append-mode file per process: workers are forked

    def write(line: str) -> None:
        out = files.get(os.getpid())
        if out is None:
            out = files[os.getpid()] = open(path, "a", buffering=1)  # a line per write, appended whole
        out.write(line)

    def counted_hand_out(execution_ids):
        # Most hand-outs run on commit, from a lambda: named by the function that made it.
        caller = sys._getframe(1).f_code.co_qualname.split(".<locals>")[0]
        write(f"hand_out {time.time():.6f} {os.getpid()} {len(execution_ids)} {caller} "
              f"{','.join(map(str, execution_ids))}\n")
        return original_hand_out(execution_ids)

    def timed_step(run, *args, **kwargs):
        queries: list[float] = []

        def count(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                queries.append(time.perf_counter() - started)

        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            with connection.execute_wrapper(count):
                return original(run, *args, **kwargs)
        finally:
            wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
            first = queries[0] if queries else 0.0
            write(f"step {run.pk} {time.time():.6f} {os.getpid()} {wall * 1000:.3f} {cpu * 1000:.3f} {len(queries)} "
                  f"{first * 1000:.3f}\n")

    services.step = timed_step
    lifecycle.hand_out = counted_hand_out


def read(path: Path, run_id: int) -> list[tuple[float, int, float, float, int, float]]:
    """The steps of run `run_id` so far, as (end time, pid, wall ms, CPU ms, queries, first query ms)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        kind, run, at, pid, wall, cpu, queries, first = (line.split() + [""] * 8)[:8]
        if kind == "step" and int(run) == run_id:
            rows.append((float(at), int(pid), float(wall), float(cpu), int(queries), float(first)))
    return rows


def hand_outs(path: Path, since: float, until: float) -> tuple[dict[str, int], dict[int, float]]:
    """Between two times: how many executions each function handed out, and when each execution
    was first handed out."""
    counts: dict[str, int] = {}
    first: dict[int, float] = {}
    if not path.exists():
        return counts, first
    for line in path.read_text().splitlines():
        kind, at, _, count, caller, ids = (line.split() + [""] * 6)[:6]
        if kind == "hand_out" and since <= float(at) <= until:
            counts[caller] = counts.get(caller, 0) + int(count)
            for execution_id in map(int, filter(None, ids.split(","))):
                first[execution_id] = min(float(at), first.get(execution_id, float(at)))
    return counts, first


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    install(os.environ["FLOW_PROBE_FILE"])
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", *sys.argv[1:]])


if __name__ == "__main__":
    main()
