"""django-q2 task functions: short, idempotent, and safe to run twice."""

from __future__ import annotations

from apps.agents.services import current_agent_id
from apps.engine import kinds, lifecycle, polling
from apps.faults import TRANSIENT_DB_ERRORS


def start_execution(execution_id: int) -> str:
    """Claim an execution and start it; a second delivery of the same task finds it taken and returns."""
    execution = lifecycle.claim(execution_id, current_agent_id())
    if execution is None:
        return "not claimed"
    try:
        kinds.of(execution.job).start(execution)
    except TRANSIENT_DB_ERRORS:
        raise  # the database's fault: the run's lease brings it back
    except Exception as exc:
        # What its kind could not even start (a custom type that no longer resolves, a bug) ends in
        # ERROR with the reason now, rather than RUNNING until its lease runs out.
        lifecycle.set_aside(execution, exc, "could not be started")
        raise
    return "ran"


def poll_batch(execution_ids: list[int]) -> int:
    """Poll a batch of custom-type executions once each; a finished one is skipped."""
    return polling.poll_batch(execution_ids)
