"""The agents page: machine, load, what runs, the heartbeat; offline and silent agents stand out;
block and unblock from the list and from an agent's page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.agents.models import Agent, AgentKind, AgentStatus
from apps.engine.models import Execution, Status

pytestmark = pytest.mark.django_db

STATS = {"memory_percent": 61.5, "memory_available_mb": 9123, "swap_percent": 2.0, "load": [0.5, 0.75, 1.25]}


def agent(name: str, seconds_ago: float = 1, **fields) -> Agent:
    return Agent.objects.create(name=name, kind=AgentKind.CLUSTER, host="batch-1", pid=1, os_name="Linux",
                                os_version="6.1", cpu_arch="x86_64", cpu_cores=8, stats=STATS,
                                last_heartbeat=timezone.now() - timedelta(seconds=seconds_ago), **fields)


def test_the_list_shows_machine_load_running_and_state(client, viewer, make_job):
    live = agent("cluster@batch-1:1")
    agent("cluster@batch-1:2", seconds_ago=3600, status=AgentStatus.OFFLINE)
    agent("cluster@batch-1:3", seconds_ago=300)  # missed its heartbeats, not yet marked
    job = make_job("nightly")
    Execution.objects.create(job=job, application=job.application, status=Status.RUNNING, agent=live,
                             started_at=timezone.now())
    client.force_login(viewer)
    text = client.get(reverse("admin:agents_agent_changelist")).content.decode()
    for shown in ["Linux 6.1", "x86_64, 8 cores", "62% used, 9,123 MB free", "2% used", "0.50 / 0.75 / 1.25",
                  'class="bd-agent-ready"', 'class="bd-agent-offline"', 'class="bd-agent-silent"',
                  "no heartbeat for 5 min", "last heard 60 min ago"]:
        assert shown in text, shown
    page = client.get(reverse("admin:agents_agent_change", args=[live.pk])).content.decode()
    assert f"#{Execution.objects.get().pk} nightly" in page
    assert 'id="agent-block"' not in page  # a viewer has no button


def test_an_administrator_blocks_and_unblocks_from_the_agents_page(admin_client_logged):
    live = agent("cluster@batch-1:1")
    url = reverse("admin:agents_agent_change", args=[live.pk])
    assert 'id="agent-block"' in admin_client_logged.get(url).content.decode()
    admin_client_logged.post(reverse("admin:agents_agent_changelist"), {"action": "block", "_selected_action": live.pk})
    assert Agent.objects.get(pk=live.pk).status == AgentStatus.BLOCKED
    assert 'id="agent-unblock"' in admin_client_logged.get(url).content.decode()
