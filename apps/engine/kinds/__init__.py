"""Job kinds as one strategy: each kind is one object with the operations it supports.

    kind = kinds.of(job)
    kind.start(execution)        # run a claimed (RUNNING) execution: to its end, or until polling takes over
    kind.kill(execution, by)     # stop a RUNNING execution
    kind.fetch_log(execution)    # fetch the external log now (custom types only)

EXEC, PYTHON and DUMMY run inside the worker (apps/engine/kinds/supervised.py supervises them);
a custom (Generic ReST) type sends Start and returns, and apps/engine/polling.py follows it.
"""

from __future__ import annotations

from apps.catalog.models import JobDefinition, JobKind
from apps.engine.kinds.base import Kind
from apps.engine.kinds.custom import CustomKind
from apps.engine.kinds.dummy import DummyKind
from apps.engine.kinds.exec import ExecKind
from apps.engine.kinds.python import PythonKind

KINDS: dict[str, Kind] = {
    JobKind.EXEC: ExecKind(),
    JobKind.PYTHON: PythonKind(),
    JobKind.DUMMY: DummyKind(),
    JobKind.CUSTOM: CustomKind(),
}


def of(job: JobDefinition) -> Kind:
    return KINDS[job.kind]


__all__ = ["KINDS", "Kind", "of"]
