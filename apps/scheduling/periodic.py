"""What the dispatcher looks at besides schedules, on its own clock: the custom job types' system
checks (every BATCHDESK_SYSTEM_CHECK_SECONDS) and executions that became long running (to notify,
once each). One step of run_dispatcher's tick."""

from __future__ import annotations

from apps.engine import system_checks
from apps.notifications import services as notifications


def run_due() -> int:
    """Hand out the due system checks and notice new long-running executions; returns how many."""
    return system_checks.run_due() + notifications.notice_long_running()
