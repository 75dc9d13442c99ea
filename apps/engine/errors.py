from __future__ import annotations


class EngineError(Exception):
    """A refused operation: `code` is the API's error code, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


ALREADY_RUNNING_MESSAGE = "Job currently in running state, please try after sometime"
