"""The operations of the SPEC §3 contract, on validated fields; views only translate HTTP."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.extsys import knobs
from apps.extsys.models import ExternalExecution, JobStatus

START_FIELDS = ("cycleName", "flowName", "processName", "jobName", "parameters", "agentExecutionId")
RESTART_FIELDS = (*START_FIELDS, "executionId")
LOOKUP_FIELDS = ("processName", "jobName", "executionId")


class Refused(Exception):
    """A call answered with an HTTP status other than success, and the message to send back."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def start(fields: dict[str, str]) -> ExternalExecution:
    dials = _knobs(fields["parameters"])
    if dials.start_status is not None:
        raise Refused(dials.start_status, f"Answered {dials.start_status} as the parameters asked (start_status).")
    return _create(fields, dials, dials.outcome)


def restart(fields: dict[str, str]) -> ExternalExecution:
    """A new execution of the job, linked to the failed one it restarts."""
    failed = find(fields)
    status = failed.status(timezone.now())
    if status != JobStatus.ERROR:
        raise Refused(409, f"Execution {failed.execution_id} is {status}: only an ERROR one can be restarted.")
    dials = _knobs(fields["parameters"])
    return _create(fields, dials, dials.restart_outcome, restart_of=failed)


def kill(fields: dict[str, str]) -> ExternalExecution:
    execution = find(fields)
    now = timezone.now()
    if not execution.kill(now):
        raise Refused(409, f"Execution {execution.execution_id} has already finished ({execution.status(now)}).")
    return execution


def find(fields: dict[str, str]) -> ExternalExecution:
    """The execution named by executionId, which must belong to the job and process named too."""
    try:
        return ExternalExecution.objects.get(
            execution_id=fields["executionId"], process_name=fields["processName"], job_name=fields["jobName"]
        )
    except ExternalExecution.DoesNotExist:
        execution_id, job, process = fields["executionId"], fields["jobName"], fields["processName"]
        raise Refused(404, f"No execution {execution_id!r} of job {job!r} in process {process!r}.") from None


def _knobs(parameters: str) -> knobs.Knobs:
    try:
        return knobs.read(parameters)
    except ValidationError as error:
        raise Refused(400, f"Bad parameters: {' '.join(error.messages)}") from None


def _create(
    fields: dict[str, str], dials: knobs.Knobs, outcome: str, restart_of: ExternalExecution | None = None
) -> ExternalExecution:
    return ExternalExecution.objects.create(
        cycle_name=fields["cycleName"],
        flow_name=fields["flowName"],
        process_name=fields["processName"],
        job_name=fields["jobName"],
        agent_execution_id=fields["agentExecutionId"],
        parameters=fields["parameters"],
        duration=dials.duration,
        outcome=outcome,
        log_lines=dials.lines,
        running_status=dials.status_value,
        restart_of=restart_of,
    )
