"""PYTHON: a callable registered with @batch_task, run in a thread of the worker (killed best effort)."""

from __future__ import annotations

import ctypes
import threading
import traceback
from contextlib import redirect_stderr, redirect_stdout

from django.conf import settings
from django.db import close_old_connections, connection

from apps.catalog import params
from apps.catalog.models import JobDefinition, JobKind
from apps.catalog.registry import registry
from apps.engine.kinds.supervised import Outcome, SupervisedKind, stopped, supervise
from apps.engine.logbuffer import BoundedLog, LogStream
from apps.engine.models import Execution, Status


class TaskKilled(BaseException):
    """Raised inside a PYTHON task's thread to stop it (best effort: not in C code)."""


class PythonKind(SupervisedKind):
    name = JobKind.PYTHON

    def run(self, execution: Execution, job: JobDefinition, log: BoundedLog) -> Outcome:
        task = registry[job.command]
        values = {**params.parse(execution.parameters), **execution.batch_context()}
        result: dict[str, object] = {}
        finished = threading.Event()

        def target() -> None:
            try:
                stream = LogStream(log)
                with redirect_stdout(stream), redirect_stderr(stream):
                    result["value"] = task.func(values)
            except TaskKilled:
                pass
            except BaseException as exc:
                log.write(traceback.format_exc())
                result["error"] = f"{type(exc).__name__}: {exc}"
            finally:
                connection.close()
                finished.set()

        thread = threading.Thread(target=target, name=f"batch-{execution.pk}", daemon=True)
        thread.start()
        reason = supervise(execution, job, log, finished, stop=lambda: _interrupt(thread, finished))
        close_old_connections()
        if reason:
            return stopped(reason, log)
        if "error" in result:
            return Outcome(Status.ERROR, error=str(result["error"]))
        if result.get("value") is not None:
            log.write(f"result: {result['value']!r}\n")
        return Outcome(Status.COMPLETED)


def _interrupt(thread: threading.Thread, finished: threading.Event) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident), ctypes.py_object(TaskKilled))
    finished.wait(settings.BATCHDESK["KILL_GRACE_SECONDS"])
