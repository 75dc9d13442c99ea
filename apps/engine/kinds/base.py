"""What every kind offers, with the defaults of the kinds that run inside a worker."""

from __future__ import annotations

from apps.engine import lifecycle
from apps.engine.models import Execution
from apps.errors import BatchError, ErrorCode


class Kind:
    name = ""

    def start(self, execution: Execution) -> None:
        """Run a claimed (RUNNING) execution: to its end, or until polling takes over."""
        raise NotImplementedError

    def kill(self, execution: Execution, by: str) -> Execution:
        """Stop a RUNNING execution. A worker's run is asked to stop and ends itself within seconds."""
        return lifecycle.request_kill(execution, by)

    def request_kill(self, execution: Execution, by: str) -> None:
        """Inside a transaction: record that a RUNNING execution must stop, and nothing more (no
        network call while rows are locked). A worker's run sees the request within a second."""
        lifecycle.request_kill(execution, by)

    def fetch_log(self, execution: Execution) -> Execution:
        """Fetch the external system's log now and store it with the execution."""
        raise BatchError(ErrorCode.NO_LOG, f"Execution {execution.pk} is a {self.name} job: its log is stored as it "
                                           f"runs, there is no external log to fetch.")
