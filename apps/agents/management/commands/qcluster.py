"""django-q2's `qcluster`, registered as an agent that beats while the cluster lives.

A heartbeat that fails (the database did not answer) is logged and tried again on the next beat:
the agent signs off only when the cluster stops."""

from __future__ import annotations

import os

from django.conf import settings
from django.db import close_old_connections
from django_q.cluster import Cluster
from django_q.management.commands.qcluster import Command as QClusterCommand

from apps.agents import services
from apps.agents.models import AgentKind
from apps.faults import attempt, retry_db


class Command(QClusterCommand):
    help = "Starts a django-q2 cluster that registers itself as a Batchdesk agent."

    def handle(self, *args, **options) -> None:
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        # Registered before the cluster forks, so that its workers inherit the agent id.
        agent = retry_db(lambda: services.register(AgentKind.CLUSTER), what="registering the cluster")
        close_old_connections()
        cluster = Cluster()

        def beat() -> None:
            services.heartbeat(agent)
            close_old_connections()

        try:
            cluster.start()
            if options.get("run_once"):
                cluster.stop()
            every = settings.BATCHDESK["AGENT_HEARTBEAT_SECONDS"]
            while cluster.sentinel.is_alive():
                attempt(beat, what=f"heartbeat of {agent.name}")
                cluster.sentinel.join(every)
        finally:
            attempt(lambda: services.sign_off(agent), what=f"signing off {agent.name}")
