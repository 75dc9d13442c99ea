"""`manage.py trigger_task` (SPEC §7): the trigger of §2 from a shell, with its exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_q.brokers import get_broker

from apps.engine.models import Execution, Status, Trigger
from bench.harness import ROOT
from tests.conftest import database_url


def trigger_task(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("trigger_task", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def manage(*args: str) -> subprocess.Popen:
    """Start `manage.py` in its own process against the test database."""
    env = {**os.environ, "DATABASE_URL": database_url()}
    return subprocess.Popen([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err


@pytest.mark.django_db
def test_it_triggers_the_job_and_prints_the_execution(make_job):
    make_job("extract", parameters="day=Mon||region=EU")
    out, err = trigger_task("extract", "--param", "day=Tue", "--param", "mode=full")
    execution = Execution.objects.get()
    assert f"Execution {execution.pk} of extract is LOADED ({execution.agent_execution_id})." in out
    assert (execution.trigger, execution.parameters) == (Trigger.CLI, "day=Tue||region=EU||mode=full")
    assert execution.triggered_by.startswith("cli:")
    assert "no qcluster agent is alive" in err


@pytest.mark.django_db
@pytest.mark.parametrize(
    "args, message",
    [
        (["no_such_job"], "TASK_NOT_FOUND: No job named 'no_such_job'."),
        (["off"], "JOB_DISABLED: Job off is disabled."),
        (["on", "--param", "oops"], "INVALID_PARAMETERS: Malformed parameter pair 'oops'"),
        (["on", "--param", "a=1", "--param", "a=2"], "INVALID_PARAMETERS: Duplicate parameter key 'a'."),
        (["running"], "JOB_ALREADY_RUNNING: Job currently in running state, please try after sometime"),
    ],
)
def test_it_refuses_with_a_clear_message(make_job, args, message):
    make_job("off", enabled=False)
    make_job("on")
    running = make_job("running")
    Execution.objects.create(job=running, application=running.application, status=Status.RUNNING, exclusive=True)
    with pytest.raises(CommandError) as raised:
        trigger_task(*args)
    assert str(raised.value).startswith(message)
    assert Execution.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_exits_non_zero_without_a_traceback_when_refused(make_job):
    make_job("off", enabled=False)
    make_job("on")
    cases = {
        "TASK_NOT_FOUND: No job named 'no_such_job'.": ["no_such_job"],
        "JOB_DISABLED: Job off is disabled.": ["off"],
        "INVALID_PARAMETERS: Malformed parameter pair 'day'": ["on", "--param", "day"],
    }
    started = {message: manage("trigger_task", *args) for message, args in cases.items()}  # side by side
    for message, process in started.items():
        code, out, err = finished(process)
        assert code != 0, message
        assert message in err
        assert "Traceback" not in err
    assert not Execution.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_exits_zero_and_prints_the_execution_in_its_own_process(make_job, request):
    make_job("extract")
    request.addfinalizer(lambda: get_broker().purge_queue())  # the start task it queued: no worker takes it
    code, out, err = finished(manage("trigger_task", "extract"))
    assert code == 0, err
    execution = Execution.objects.get()
    assert f"Execution {execution.pk} of extract is LOADED" in out
    assert execution.trigger == Trigger.CLI


@pytest.mark.django_db(transaction=True)
def test_it_waits_for_a_completed_execution_and_exits_zero(make_job, sync_queue, capsys):
    make_job("hello", command='echo "hello $BATCH_PARAM_WHO"')
    call_command("trigger_task", "hello", "--param", "who=cli", "--wait")
    out = capsys.readouterr().out
    execution = Execution.objects.get()
    assert execution.status == Status.COMPLETED
    assert "hello cli\n" in out
    assert f"Execution {execution.pk} ended COMPLETED after" in out


@pytest.mark.django_db(transaction=True)
def test_it_waits_for_a_failed_execution_and_exits_non_zero(make_job, sync_queue, capsys):
    from apps.engine.management.commands.trigger_task import Command

    make_job("broken", command="echo partial output; exit 5")
    with pytest.raises(SystemExit) as exited:
        Command().run_from_argv(["manage.py", "trigger_task", "broken", "--wait"])
    assert exited.value.code != 0
    captured = capsys.readouterr()
    execution = Execution.objects.get()
    assert execution.status == Status.ERROR
    assert "partial output" in captured.out
    assert f"Execution {execution.pk} ended ERROR after" in captured.err
    assert "exit code 5" in captured.err
    assert "Traceback" not in captured.err


@pytest.mark.django_db
def test_it_gives_up_waiting_after_the_timeout(make_job):
    make_job("queued")  # nothing runs it: the test's transaction never commits, so nothing is queued
    with pytest.raises(CommandError, match=r"is still LOADED after 0.2s"):
        trigger_task("queued", "--wait", "--timeout", "0.2")
