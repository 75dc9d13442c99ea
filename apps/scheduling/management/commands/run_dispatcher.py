"""`manage.py run_dispatcher`: ticks about once a second, handing due work to the workers.

Several may run at once, on several machines: every step claims its rows with leases and
conditional updates, so a row is handed out by one dispatcher only.
"""

from __future__ import annotations

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from apps.agents import services as agents
from apps.agents.models import AgentKind
from apps.engine import leases, polling
from apps.scheduling import periodic
from apps.scheduling import services as scheduling

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Run the dispatcher loop until SIGTERM or SIGINT."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="Run one tick and exit.")

    def handle(self, *args, once: bool = False, **options) -> None:
        self.stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        agent = agents.register(AgentKind.DISPATCHER)
        tick = settings.BATCHDESK["DISPATCHER_TICK_SECONDS"]
        beat_every = settings.BATCHDESK["AGENT_HEARTBEAT_SECONDS"]
        last_beat = time.monotonic()
        self.stdout.write(f"Dispatcher {agent.name} running (tick {tick:g}s).")
        try:
            while not self.stopping:
                started = time.monotonic()
                close_old_connections()
                try:
                    self.tick()
                except Exception:
                    log.exception("dispatcher tick failed; retrying next tick")
                if started - last_beat >= beat_every:
                    agents.heartbeat(agent)
                    last_beat = started
                if once:
                    break
                self._sleep(self._nap(tick - (time.monotonic() - started)))
        finally:
            agents.sign_off(agent)
            self.stdout.write(f"Dispatcher {agent.name} stopped.")

    def tick(self) -> None:
        """One pass of every step; each claims its own rows."""
        scheduling.fire_due()
        agents.mark_lost_agents()
        leases.recover_lost()
        leases.hand_out_due()
        polling.claim_due_polls()
        periodic.run_due()

    @staticmethod
    def _nap(until_tick: float) -> float:
        """Sleep to the next tick, or less when a schedule is due sooner (one-second precision)."""
        try:
            due_in = scheduling.seconds_until_next_fire()
        except Exception:
            log.exception("reading the next fire time failed")
            due_in = None
        # A floor, so that a slot another dispatcher holds (or a failing one) is no busy loop.
        return until_tick if due_in is None else max(min(until_tick, due_in), 0.02)

    def _sleep(self, seconds: float) -> None:
        # Short naps so that a SIGTERM is answered promptly.
        deadline = time.monotonic() + max(seconds, 0)
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, deadline - time.monotonic()))

    def _stop(self, signum, frame) -> None:
        self.stopping = True
