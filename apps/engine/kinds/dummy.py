"""DUMMY: completes at once (a placeholder in a flow, or a test of the plumbing)."""

from __future__ import annotations

from apps.catalog.models import JobDefinition, JobKind
from apps.engine.kinds.supervised import Outcome, SupervisedKind
from apps.engine.logbuffer import BoundedLog
from apps.engine.models import Execution, Status


class DummyKind(SupervisedKind):
    name = JobKind.DUMMY

    def run(self, execution: Execution, job: JobDefinition, log: BoundedLog) -> Outcome:
        log.write("DUMMY job: nothing to run.\n")
        return Outcome(Status.COMPLETED)
