"""`python bench/counted.py <command> [args]`: `manage.py <command>`, with every task it queues (and
every task the processes it forks queue) counted: one line per `async_task`, naming the task's
function, appended to the file BENCH_TASK_LOG names. bench/waiting_scale.py starts the engine
through it (`Processes(manage=[python, counted.py])`); short appends to one file opened O_APPEND do not interleave.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def count_tasks(path: str) -> None:
    """From now on, this process (and its forks) appends each queued task's function to `path`."""
    from django_q.signals import pre_enqueue

    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def counted(sender, task, **kwargs) -> None:
        os.write(fd, f"{task['func']}\n".encode())

    pre_enqueue.connect(counted, weak=False, dispatch_uid="bench-counted")


def read_counts(path: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    try:
        for line in Path(path).read_text().splitlines():
            counts[line] = counts.get(line, 0) + 1
    except FileNotFoundError:
        pass
    return counts


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    count_tasks(os.environ["BENCH_TASK_LOG"])
    from django.core.management import execute_from_command_line

    execute_from_command_line([str(ROOT / "manage.py"), *sys.argv[1:]])
