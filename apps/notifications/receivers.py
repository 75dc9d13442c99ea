"""Signal receivers: they turn the engine's (and the flow engine's) events into notifications, and
never let a failure of theirs reach the code that sent the signal."""

from __future__ import annotations

import logging

from apps.notifications.models import Event
from apps.notifications.services import notify

log = logging.getLogger(__name__)


def on_execution_failed(sender, execution, **kwargs) -> None:
    """`execution_failed`: sent once per failure chain, for the final attempt only (never a retry)."""
    _safely(Event.EXECUTION_FAILED, execution)


def on_flow_run_finished(sender, flow_run=None, **kwargs) -> None:
    """`flow_run_finished`: a run completed, or nothing more can run in it (ERROR), or it was killed."""
    if flow_run is not None:
        _safely(Event.FLOW_RUN_FINISHED, flow_run)


def _safely(event: str, subject) -> None:
    try:
        notify(event, subject)
    except Exception:
        log.exception("notifications for %s of %r could not be recorded", event, subject)
