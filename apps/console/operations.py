"""The operator's actions on one execution, as the console offers them: which states each fits,
which permission it needs, whether it asks for a confirmation. The execution page and the
monitoring page offer the same buttons and post to the same view (ExecutionAdmin.operate), which
calls the engine's services: the one implementation the API and the commands call too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from apps.engine import services
from apps.engine.models import ACTIVE, PENDING, Execution, Status


@dataclass(frozen=True)
class Operation:
    name: str  # also the permission: engine.<name>_execution
    label: str
    states: tuple[str, ...]
    run: Callable[..., Execution]
    confirm: str = ""  # asked before a destructive operation
    also_fits: Callable[[Execution], bool] = lambda execution: False

    @property
    def permission(self) -> str:
        return f"engine.{self.name}_execution"

    def fits(self, execution: Execution) -> bool:
        return execution.status in self.states or self.also_fits(execution)


OPERATIONS: dict[str, Operation] = {op.name: op for op in [
    Operation("kill", "Kill", tuple(ACTIVE), services.kill,
              confirm="Kill this execution? A running job is stopped; it ends in ERROR and is not retried."),
    Operation("restart", "Restart", (Status.ERROR,), services.restart),
    Operation("hold", "Hold", tuple(PENDING), services.hold),
    Operation("release", "Release", (Status.HELD,), services.release),
    Operation("skip", "Skip", (*PENDING, Status.HELD), services.skip,
              confirm="Skip this execution? It will not run, and whatever waits for it goes on.",
              # The failure its flow run waits on: the run counts the job as done, the execution keeps ERROR.
              also_fits=lambda e: bool(e.flow_run_id) and e.status == Status.ERROR and not e.skipped_in_flow),
]}


def offered(execution: Execution, user) -> list[Operation]:
    """The operations that fit the execution's state and that the user may do (no query: a
    user's permissions are cached for the request)."""
    return [op for op in OPERATIONS.values() if op.fits(execution) and user.has_perm(op.permission)]
