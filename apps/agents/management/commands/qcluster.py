"""django-q2's `qcluster`, registered as an agent that beats while the cluster lives.

A heartbeat that fails (the database did not answer) is logged and tried again on the next beat:
the agent signs off only when the cluster stops. SIGTERM or SIGINT stops it within
STOP_GRACE_SECONDS, whether it reaches this process alone or every process of the service at once
(systemd's KillMode=control-group), which django-q2's own handler does not survive (see stop)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time

import psutil
from django.conf import settings
from django.db import close_old_connections
from django_q.cluster import Cluster
from django_q.management.commands.qcluster import Command as QClusterCommand

from apps.agents import services
from apps.agents.models import AgentKind
from apps.faults import attempt, retry_db

log = logging.getLogger(__name__)

# How long a stopping cluster may take to finish its tasks before what is left of it is killed.
STOP_GRACE_SECONDS = 10.0


class Command(QClusterCommand):
    help = "Starts a django-q2 cluster that registers itself as a Batchdesk agent."

    def handle(self, *args, **options) -> None:
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        # Registered before the cluster forks, so that its workers inherit the agent id.
        agent = retry_db(lambda: services.register(AgentKind.CLUSTER), what="registering the cluster")
        close_old_connections()
        cluster = Cluster()
        # Replaces the handler Cluster() installed: a signal only says "stop"; the stopping is done
        # below, never inside a signal handler (where django-q2's can block for ever).
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stopping.set())

        def beat() -> None:
            services.heartbeat(agent)
            close_old_connections()

        try:
            cluster.start()
            if options.get("run_once"):
                stopping.set()
            every, last_beat = settings.BATCHDESK["AGENT_HEARTBEAT_SECONDS"], 0.0
            while not stopping.is_set() and cluster.sentinel.is_alive():
                if time.monotonic() - last_beat >= every:
                    attempt(beat, what=f"heartbeat of {agent.name}")
                    last_beat = time.monotonic()
                stopping.wait(min(every, 0.25))
        finally:
            stop(cluster)
            attempt(lambda: services.sign_off(agent), what=f"signing off {agent.name}")


def stop(cluster: Cluster, grace: float = STOP_GRACE_SECONDS) -> None:
    """Ask the sentinel to stop its workers in order, waiting at most `grace`; then kill whatever
    is left of this process's children.

    The wait is bounded because the sentinel may never answer: when every process of the service
    gets SIGTERM at once, the sentinel dies at once too, possibly holding the lock of the event
    that asks it to stop, and setting that event would then block for ever. It is set from a
    thread of its own for that reason."""
    sentinel = cluster.sentinel
    if sentinel is not None and sentinel.is_alive() and cluster.stop_event is not None:
        threading.Thread(target=cluster.stop_event.set, name="stop-cluster", daemon=True).start()
        sentinel.join(grace)
    leftovers = psutil.Process().children(recursive=True)
    for child in leftovers:
        try:
            child.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(leftovers, timeout=5)
    if sentinel is not None:
        sentinel.join(1)  # reap it
    if leftovers:
        log.warning("cluster stopped; %d of its processes had to be killed", len(leftovers))
