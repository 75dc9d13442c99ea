"""The engine tells a run when one of its executions ends or changes; the run takes its step."""

from __future__ import annotations

from django.dispatch import receiver

from apps.engine.models import Execution, Status
from apps.engine.signals import execution_changed, execution_ended
from apps.flows import services


@receiver(execution_ended, sender=Execution, dispatch_uid="flows.step_on_end")
def step_on_end(sender, execution: Execution, retried: bool, **kwargs) -> None:
    if not execution.flow_run_id:
        return
    if execution.status == Status.ERROR and not retried and execution.job.skip_on_error:
        # The execution keeps its ERROR; its run counts the job as done (SPEC §2a).
        Execution.objects.filter(pk=execution.pk).update(skipped_in_flow="skipped on error")
    services.step(execution.flow_run, execution)


@receiver(execution_changed, sender=Execution, dispatch_uid="flows.step_on_change")
def step_on_change(sender, execution: Execution, **kwargs) -> None:
    if execution.flow_run_id:
        services.step(execution.flow_run, execution)
