"""`manage.py load_demo` (what `make run` loads): the demo jobs, the demo flow with its dependencies,
today's run of it, and the administrator login; safe to run again."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from apps.catalog.models import JobDefinition, Process
from apps.flows.models import FlowRun
from apps.scheduling.models import Schedule
from apps.flows.graph import flow_graph

pytestmark = pytest.mark.django_db


def test_it_loads_the_demo_flow_and_starts_todays_run_once(settings, tmp_path, capsys, handed_out):
    settings.VAR_DIR = tmp_path
    call_command("load_demo", "--port", "8123")
    call_command("load_demo", "--port", "8123")
    out = capsys.readouterr().out
    run = FlowRun.objects.get()
    assert run.flow.name == "Daily close" and run.triggered_by == "make run"
    assert "already has an open run" in out and "Admin login: admin / " in out
    graph = {p.name: (p.layer, sorted(p.predecessors)) for p in flow_graph(run.flow).processes}
    assert graph == {"Extract": (0, []), "Transform": (1, ["Extract"]), "Load sales": (2, ["Transform"]),
                     "Load stock": (2, ["Transform"]), "Report": (3, ["Load sales", "Load stock"])}
    assert run.executions.count() == JobDefinition.objects.filter(process__flow=run.flow).count() == 7
    assert JobDefinition.objects.get(name="close_load_sales").parameters.endswith("restart_outcome=COMPLETED")
    assert Process.objects.filter(flow=run.flow).count() == 5
    assert sorted(Schedule.objects.values_list("job__name", "cron")) == [
        ("checkpoint", "*/30 * * * * ?"), ("count_to_ten", "*/5 * * * *"), ("hello_world", "* * * * *")]
    assert all(schedule.next_fire_at for schedule in Schedule.objects.all())
