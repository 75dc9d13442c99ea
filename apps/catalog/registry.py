"""The PYTHON job registry: only callables registered here can be run, never a typed-in path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class RegisteredTask:
    name: str
    func: Callable[[dict[str, str]], object]
    group: str
    description: str


class Registry(dict[str, RegisteredTask]):
    def task(self, name: str | None = None, *, group: str = "", description: str = ""):
        """Decorator: `@registry.task("purge_executions", group="housekeeping")`."""

        def register(func):
            task_name = name or func.__name__
            if task_name in self and self[task_name].func is not func:
                raise ValueError(f"PYTHON task {task_name!r} is registered twice.")
            self[task_name] = RegisteredTask(task_name, func, group, description or (func.__doc__ or "").strip())
            return func

        return register


registry = Registry()
batch_task = registry.task
