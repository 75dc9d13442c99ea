"""`manage.py run_dispatcher`: ticks about once a second, handing due work to the workers.

Several may run at once, on several machines: every step claims its rows with leases and
conditional updates, so a row is handed out by one dispatcher only.

Nothing stops the loop but SIGTERM or SIGINT: each step runs on its own (a step that fails is
logged and the next one goes on), and each step isolates its rows (apps/faults.py). During a
database outage every step fails and the loop keeps ticking; afterwards it declares nothing lost
until it has watched the database answer for BATCHDESK_AGENT_LOST_SECONDS (see `Watch`).
"""

from __future__ import annotations

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from apps.agents import services as agents
from apps.agents.models import Agent, AgentKind
from apps.engine import leases, polling
from apps.faults import attempt, is_transient, retry_db
from apps.scheduling import periodic
from apps.scheduling import services as scheduling

log = logging.getLogger(__name__)


class Watch:
    """Since when this dispatcher has seen the database answer without a break.

    Silence before that (an agent's missed heartbeats, a run's unrenewed lease) is silence it could
    not have observed: the agents could not reach the database either. So agents and runs are
    declared lost only once it has watched for BATCHDESK_AGENT_LOST_SECONDS, from its start and
    again from the end of each outage: everyone gets a fresh grace period.
    """

    def __init__(self, watched: bool = False) -> None:
        self.since: float | None = float("-inf") if watched else time.monotonic()

    def after_tick(self, outage: bool) -> None:
        if outage:
            if self.since is not None:
                log.warning("the database stopped answering: nothing is declared lost until it has answered "
                            "for %g s again", settings.BATCHDESK["AGENT_LOST_SECONDS"])
            self.since = None
        elif self.since is None:
            log.info("the database answers again")
            self.since = time.monotonic()

    @property
    def long_enough(self) -> bool:
        return self.since is not None and time.monotonic() - self.since >= settings.BATCHDESK["AGENT_LOST_SECONDS"]


class Command(BaseCommand):
    help = "Run the dispatcher loop until SIGTERM or SIGINT."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true",
                            help="Run one tick (lost agents and runs included) and exit.")

    def handle(self, *args, once: bool = False, **options) -> None:
        self.stopping = False
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        self.agent: Agent = retry_db(lambda: agents.register(AgentKind.DISPATCHER), what="registering the dispatcher")
        self.watch = Watch(watched=once)
        self.last_beat = time.monotonic()
        tick = settings.BATCHDESK["DISPATCHER_TICK_SECONDS"]
        self.stdout.write(f"Dispatcher {self.agent.name} running (tick {tick:g}s).")
        try:
            while not self.stopping:
                started = time.monotonic()
                self.tick()
                if once:
                    break
                self._sleep(self._nap(tick - (time.monotonic() - started)))
        finally:
            attempt(lambda: agents.sign_off(self.agent), what="signing off")
            self.stdout.write(f"Dispatcher {self.agent.name} stopped.")

    def tick(self) -> None:
        """One pass of every step, in order; each claims its own rows. Adding a step is one line."""
        self.run_steps([
            close_old_connections,
            scheduling.fire_due,
            self.mark_lost_agents,
            self.recover_lost_runs,
            leases.hand_out_due,
            polling.claim_due_polls,
            periodic.run_due,
            self.heartbeat,
        ])

    def run_steps(self, steps) -> None:
        """Each step on its own: one that fails is logged, and the next goes on."""
        outage = False
        for step in steps:
            error = attempt(step, what=f"dispatcher step {getattr(step, '__name__', step)}",
                            quiet=self.watch.since is None)  # the outage was announced already
            outage |= is_transient(error)
        self.watch.after_tick(outage)

    def mark_lost_agents(self) -> None:
        if self.watch.long_enough:
            agents.mark_lost_agents()

    def recover_lost_runs(self) -> None:
        if self.watch.long_enough:
            leases.recover_lost()

    def heartbeat(self) -> None:
        if time.monotonic() - self.last_beat >= settings.BATCHDESK["AGENT_HEARTBEAT_SECONDS"]:
            agents.heartbeat(self.agent)
            self.last_beat = time.monotonic()

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
