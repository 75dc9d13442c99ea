"""End to end: a real web server serving the reference external system (extsys), a real
dispatcher and cluster, and custom-type jobs that run, fail, restart and are killed."""

from __future__ import annotations

import urllib.request

import pytest

from apps.catalog.models import JobType
from apps.engine import services
from apps.engine.models import Execution, Status
from bench.harness import free_port
from tests.conftest import wait_for

pytestmark = pytest.mark.e2e


def answers(url: str) -> bool:
    try:
        return urllib.request.urlopen(url, timeout=1).status == 204
    except OSError:
        return False


@pytest.fixture
def extsys_up(processes, settings, monkeypatch):
    """runserver (with extsys), a dispatcher and a cluster; a MOCKTYPE job type pointing at extsys."""
    port = free_port()
    # extsys speaks plain http on loopback: allowed here as in the demo, here and in the processes.
    processes.env["OAUTH_ALLOW_INSECURE_TRANSPORT"] = "true"
    settings.OAUTH_ALLOW_INSECURE_TRANSPORT = True
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    processes.start("runserver", f"127.0.0.1:{port}", "--noreload")
    base = f"http://127.0.0.1:{port}/extsys"
    wait_for(lambda: answers(f"{base}/health"), timeout=30, message="the web server")
    processes.start("run_dispatcher")
    processes.start("qcluster")
    job_type = JobType(
        name="MOCKTYPE", url=base, start_path="/jobs/start", status_path="/jobs/status",
        restart_path="/jobs/restart", kill_path="/jobs/kill", log_path="/jobs/log", check_path="/health",
        poll_interval_seconds=1, token_url=f"{base}/oauth/token", client_id=settings.EXTSYS_CLIENT_ID,
    )
    job_type.set_client_secret(settings.EXTSYS_CLIENT_SECRET)
    job_type.save()
    return job_type


def ended(execution: Execution, timeout: float = 30) -> Execution:
    return wait_for(
        lambda: Execution.objects.filter(pk=execution.pk, status__in=[Status.COMPLETED, Status.ERROR]).first(),
        timeout=timeout, message=f"execution {execution.pk} to end",
    )


def test_external_jobs_complete_fail_restart_and_are_killed(extsys_up, make_job):
    ok = make_job("ext_ok", job_type="MOCKTYPE", command="", parameters="duration=2||lines=3")
    bad = make_job("ext_bad", job_type="MOCKTYPE", command="", parameters="duration=1||outcome=ERROR")
    slow = make_job("ext_slow", job_type="MOCKTYPE", command="", parameters="duration=600")
    runs = {job.name: services.trigger(job) for job in (ok, bad, slow)}

    completed = ended(runs["ext_ok"])
    assert completed.status == Status.COMPLETED, completed.error
    assert completed.external_execution_id
    assert "line 3 of 3" in completed.log

    failed = ended(runs["ext_bad"])
    assert failed.status == Status.ERROR
    restarted = services.restart(failed, by="operator")
    assert ended(restarted).status == Status.COMPLETED
    assert Execution.objects.get(pk=restarted.pk).restart_of_id == failed.pk

    running = wait_for(lambda: Execution.objects.filter(pk=runs["ext_slow"].pk, status=Status.RUNNING)
                       .exclude(external_execution_id="").first(), timeout=20, message="the slow job to start")
    killed = services.kill(running, by="operator")
    assert (killed.status, killed.error) == (Status.ERROR, "killed by operator")
