"""services.trigger (SPEC §2): the rules every entry point shares."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.catalog.models import Concurrency, JobDefinition
from apps.engine import lifecycle, services
from apps.engine.models import Execution, Status, Trigger
from apps.errors import BatchError

pytestmark = pytest.mark.django_db


def refused(code: str, call, *args, **kwargs) -> BatchError:
    with pytest.raises(BatchError) as raised:
        call(*args, **kwargs)
    assert raised.value.code == code, raised.value.message
    return raised.value


def test_it_creates_a_loaded_execution_with_the_job_s_settings(make_job):
    job = make_job("extract", concurrency=Concurrency.FORBID, lock_group="ledger")
    before = timezone.now()
    execution = services.trigger(job, trigger=Trigger.API, triggered_by="ada")
    assert execution.status == Status.LOADED
    assert (execution.job, execution.application) == (job, job.application)
    assert (execution.trigger, execution.triggered_by, execution.attempt) == (Trigger.API, "ada", 1)
    assert execution.exclusive is True
    assert execution.lock_group == "ledger"
    assert execution.next_check_at > before  # a lease: re-handed by the dispatcher if the task is lost


def test_it_hands_the_execution_out_as_soon_as_the_trigger_commits(make_job, handed_out,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        execution = services.trigger(make_job())
        assert handed_out == []
    assert handed_out == [execution.pk]


def test_it_queues_the_start_task_for_the_execution(make_job, monkeypatch, django_capture_on_commit_callbacks):
    queued = []
    monkeypatch.setattr(lifecycle, "async_task", lambda func, *args, **kwargs: queued.append((func, args)))
    with django_capture_on_commit_callbacks(execute=True):
        execution = services.trigger(make_job())
    assert queued == [("apps.engine.tasks.start_execution", (execution.pk,))]


def test_it_refuses_a_disabled_job(make_job):
    error = refused("JOB_DISABLED", services.trigger, make_job("off", enabled=False))
    assert "off" in error.message
    assert not Execution.objects.exists()


def test_it_refuses_a_job_of_a_disabled_application(make_job, app):
    job = make_job()
    app.enabled = False
    app.save(update_fields=["enabled"])
    job.refresh_from_db()
    error = refused("JOB_DISABLED", services.trigger, job)
    assert "Application RMS is disabled" in error.message
    assert not Execution.objects.exists()


def test_it_refuses_malformed_parameters_naming_the_bad_pair(make_job):
    error = refused("INVALID_PARAMETERS", services.trigger, make_job(), parameters="day=Mon||oops")
    assert "'oops'" in error.message
    assert not Execution.objects.exists()


def test_it_refuses_duplicate_parameter_keys(make_job):
    error = refused("INVALID_PARAMETERS", services.trigger, make_job(), parameters="a=1||a=2")
    assert "'a'" in error.message


def test_it_refuses_an_exec_job_without_a_command(make_job):
    error = refused("INVALID_JOB", services.trigger, make_job("blank", command="  "))
    assert "needs a command" in error.message
    assert not Execution.objects.exists()


def test_it_refuses_an_unregistered_python_task(make_job):
    error = refused("INVALID_JOB", services.trigger, make_job("py", job_type="PYTHON", command="os.system"))
    assert "'os.system' is not a registered PYTHON task" in error.message
    assert not Execution.objects.exists()


def test_a_job_of_an_unknown_type_cannot_even_be_saved(make_job):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="Unknown job type 'NOSUCHTYPE'"):
        make_job("ext", job_type="NOSUCHTYPE")
    assert not JobDefinition.objects.exists()


def test_it_finds_the_job_by_name(make_job):
    job = make_job("by_name")
    assert services.trigger_by_name("by_name", trigger=Trigger.CLI).job == job


def test_it_reports_an_unknown_task_name():
    error = refused("TASK_NOT_FOUND", services.trigger_by_name, "no_such_job")
    assert "no_such_job" in error.message


def test_it_overrides_default_parameters_key_by_key(make_job):
    job = make_job(parameters="region=EU||day=Mon||mode=full")
    execution = services.trigger(job, parameters="day=Tue||extra=1")
    assert execution.parameters == "region=EU||day=Tue||mode=full||extra=1"


def test_it_uses_the_defaults_when_the_trigger_passes_none(make_job):
    assert services.trigger(make_job(parameters="region=EU")).parameters == "region=EU"


def test_it_refuses_a_second_trigger_of_a_forbid_job_with_the_spec_message(make_job):
    job = make_job(concurrency=Concurrency.FORBID)
    first = services.trigger(job)
    error = refused("JOB_ALREADY_RUNNING", services.trigger, job)
    assert error.message == "Job currently in running state, please try after sometime"
    assert list(Execution.objects.values_list("pk", flat=True)) == [first.pk]


@pytest.mark.parametrize("status", [Status.WAITING, Status.RUNNING, Status.HELD])
def test_it_counts_every_active_status_against_forbid(make_job, status):
    job = make_job()
    Execution.objects.filter(pk=services.trigger(job).pk).update(status=status)
    refused("JOB_ALREADY_RUNNING", services.trigger, job)


@pytest.mark.parametrize("status", [Status.COMPLETED, Status.ERROR, Status.SKIPPED])
def test_it_triggers_a_forbid_job_again_once_its_execution_ended(make_job, status):
    job = make_job()
    Execution.objects.filter(pk=services.trigger(job).pk).update(status=status)
    assert services.trigger(job).status == Status.LOADED


def test_it_runs_allow_executions_side_by_side(make_job):
    job = make_job(concurrency=Concurrency.ALLOW)
    first, second = services.trigger(job), services.trigger(job)
    assert first.pk != second.pk
    assert Execution.objects.filter(job=job, status=Status.LOADED).count() == 2
    assert not first.exclusive and not second.exclusive


def test_it_asks_the_running_execution_to_stop_when_replaced(make_job):
    job = make_job(concurrency=Concurrency.REPLACE)
    old = services.trigger(job)
    Execution.objects.filter(pk=old.pk).update(status=Status.RUNNING, started_at=timezone.now())
    new = services.trigger(job, triggered_by="ada")
    old.refresh_from_db()
    assert old.status == Status.RUNNING  # its runner stops it and records the end
    assert old.kill_requested_by == "a replacing manual trigger"
    assert new.status == Status.LOADED and new.pk != old.pk


def test_it_ends_a_pending_execution_at_once_when_replaced(make_job):
    job = make_job(concurrency=Concurrency.REPLACE)
    old = services.trigger(job)
    services.trigger(job, trigger=Trigger.SCHEDULE)
    old.refresh_from_db()
    assert old.status == Status.ERROR
    assert old.error == "killed by a replacing schedule trigger"
    assert old.finished_at is not None
    assert Execution.objects.filter(job=job, status=Status.LOADED).count() == 1


def test_it_lets_the_replacement_wait_until_the_replaced_run_ends(make_job):
    job = make_job(concurrency=Concurrency.REPLACE)
    old = services.trigger(job)
    Execution.objects.filter(pk=old.pk).update(status=Status.RUNNING, started_at=timezone.now() - timedelta(seconds=5))
    new = services.trigger(job)
    assert lifecycle.claim(new.pk, None) is None
    new.refresh_from_db()
    assert new.status == Status.WAITING
    assert new.waiting_reason == "waiting for the replaced execution to end"

    old.refresh_from_db()
    lifecycle.finish(old, Status.ERROR, error="killed by a replacing manual trigger", retry=False)
    assert lifecycle.claim(new.pk, None).status == Status.RUNNING
