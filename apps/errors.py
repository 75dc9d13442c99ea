"""The one error vocabulary: every refusal of an operation carries an `ErrorCode`, which knows its
HTTP status and a default message. The engine and the catalog raise `BatchError`; the API turns
it into `{"error": CODE, "detail": message}`, the commands into `CODE: message` and a non-zero
exit, the admin into a message on the page. The README lists every code."""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """A code, equal to its own name as a string, with its HTTP status and default message."""

    def __new__(cls, code: str, status: int, message: str) -> ErrorCode:
        member = str.__new__(cls, code)
        member._value_ = code
        member.status = status
        member.message = message
        return member

    # Input that can never be right.
    INVALID_INPUT = "INVALID_INPUT", 400, "The request is not valid."
    INVALID_PARAMETERS = "INVALID_PARAMETERS", 400, "Parameters must read key=value||key1=value1."
    INVALID_CRON = "INVALID_CRON", 400, "Not a cron expression this installation can fire."
    MALFORMED_REQUEST = "MALFORMED_REQUEST", 400, "The request body could not be parsed."
    # Who may do it.
    UNAUTHORIZED = "UNAUTHORIZED", 401, "Authentication credentials were not provided or are not valid."
    FORBIDDEN = "FORBIDDEN", 403, "Your role does not allow this."
    # What does not exist.
    NOT_FOUND = "NOT_FOUND", 404, "No such object."
    TASK_NOT_FOUND = "TASK_NOT_FOUND", 404, "No job of that name."
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED", 405, "This endpoint does not take that method."
    NOT_ACCEPTABLE = "NOT_ACCEPTABLE", 406, "This endpoint cannot answer in the requested format."
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE", 415, "Send JSON."
    THROTTLED = "THROTTLED", 429, "Too many requests."
    # Operations that do not fit the state of things.
    JOB_ALREADY_RUNNING = "JOB_ALREADY_RUNNING", 409, "Job currently in running state, please try after sometime"
    JOB_DISABLED = "JOB_DISABLED", 409, "The job or its application is disabled."
    INVALID_JOB = "INVALID_JOB", 409, "The job's definition cannot run as it stands."
    NOT_ACTIVE = "NOT_ACTIVE", 409, "Only active executions can be killed."
    NOT_KILLABLE = "NOT_KILLABLE", 409, "This execution cannot be killed."
    KILL_FAILED = "KILL_FAILED", 409, "The kill failed; the execution is unchanged."
    NOT_RESTARTABLE = "NOT_RESTARTABLE", 409, "Only executions in ERROR can be restarted."
    NO_LOG = "NO_LOG", 409, "There is no external log to fetch."
    NOT_ALLOWED = "NOT_ALLOWED", 409, "The action does not fit the current state."
    FLOW_ALREADY_RUNNING = "FLOW_ALREADY_RUNNING", 409, "The flow already has an open run for that business date."
    IN_USE = "IN_USE", 409, "It is still in use: remove what refers to it first, or disable it instead."

    def __str__(self) -> str:
        return self.value


class BatchError(Exception):
    """A refused operation: `code` says which refusal, `message` says why, for a person."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        self.code = ErrorCode(code)
        self.message = message or self.code.message
        super().__init__(self.message)

    @property
    def status(self) -> int:
        return self.code.status
