"""EXEC: a shell command in its own process group, parameters only through the environment."""

from __future__ import annotations

import os
import signal
from fnmatch import fnmatchcase
import subprocess
import threading

from django.conf import settings

from apps.catalog import params
from apps.catalog.models import JobDefinition, JobKind
from apps.engine.kinds.supervised import Outcome, SupervisedKind, stopped, supervise
from apps.engine.logbuffer import BoundedLog
from apps.engine.models import Execution, Status



class ExecKind(SupervisedKind):
    name = JobKind.EXEC

    def run(self, execution: Execution, job: JobDefinition, log: BoundedLog) -> Outcome:
        # The command is the operator's; parameters reach it only through the environment.
        proc = subprocess.Popen(
            ["/bin/sh", "-c", job.command],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment(execution, job),
            start_new_session=True,
        )
        finished = threading.Event()
        reader = threading.Thread(target=_pump, args=(proc.stdout, log), daemon=True)
        reader.start()
        threading.Thread(target=lambda: (proc.wait(), finished.set()), daemon=True).start()
        # The pid is the first thing supervise writes: a lost worker's group is found by it.
        reason = supervise(execution, job, log, finished, stop=lambda: kill_group(proc.pid, finished), pid=proc.pid)
        proc.wait()
        reader.join(timeout=2)
        if reason:
            return stopped(reason, log, proc.returncode)
        code = proc.returncode
        if code == 0:
            return Outcome(Status.COMPLETED, exit_code=0)
        if code in job.warning_codes():
            return Outcome(Status.COMPLETED, exit_code=code, warning=True)
        return Outcome(Status.ERROR, error=f"exit code {code}", exit_code=code)


def environment(execution: Execution, job: JobDefinition) -> dict[str, str]:
    """An allow-list: the worker's variables named by BATCHDESK_EXEC_ENV (names, or patterns such as
    LC_*), then the execution's own BATCH_* variables. Nothing else of the worker's environment (its
    database URL, its keys, whatever a deployment put there) reaches a job that prints it."""
    allowed = settings.BATCHDESK["EXEC_ENV"]
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("BATCH_") and any(fnmatchcase(key, name) for name in allowed)}
    env.update(params.environment(execution.parameters))
    env.update(
        BATCH_JOB_NAME=job.name,
        BATCH_EXECUTION_ID=str(execution.pk),
        BATCH_AGENT_EXECUTION_ID=str(execution.agent_execution_id),
        BATCH_EXTRA=job.extra,
    )
    env.update(execution.batch_context())
    return env


def _pump(stream, log: BoundedLog) -> None:
    for chunk in iter(lambda: stream.read1(65536), b""):
        log.write(chunk)


def kill_group(pgid: int, finished: threading.Event) -> None:
    """SIGTERM the process group, then SIGKILL whatever is left after the grace period."""
    for sig, wait in ((signal.SIGTERM, settings.BATCHDESK["KILL_GRACE_SECONDS"]), (signal.SIGKILL, 0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        finished.wait(wait)
