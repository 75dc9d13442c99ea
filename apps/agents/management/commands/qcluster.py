"""django-q2's `qcluster`, registered as an agent that beats while the cluster lives."""

from __future__ import annotations

import os

from django.conf import settings
from django.db import close_old_connections
from django_q.cluster import Cluster
from django_q.management.commands.qcluster import Command as QClusterCommand

from apps.agents import services
from apps.agents.models import AgentKind


class Command(QClusterCommand):
    help = "Starts a django-q2 cluster that registers itself as a Batchdesk agent."

    def handle(self, *args, **options) -> None:
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        # Registered before the cluster forks, so that its workers inherit the agent id.
        agent = services.register(AgentKind.CLUSTER)
        close_old_connections()
        cluster = Cluster()
        try:
            cluster.start()
            if options.get("run_once"):
                cluster.stop()
            beat = settings.BATCHDESK["AGENT_HEARTBEAT_SECONDS"]
            while cluster.sentinel.is_alive():
                services.heartbeat(agent)
                close_old_connections()
                cluster.sentinel.join(beat)
        finally:
            services.sign_off(agent)
