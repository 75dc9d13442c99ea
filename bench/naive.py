"""The naive design, for bench/poll_scale.py: a worker that holds its job while the external job runs.

`track_until_done` is a django-q2 task: it polls one external execution every `interval` seconds
with the project's own client, sleeping in between, and returns only when the execution ends.
While it sleeps the worker can do nothing else, so a cluster tracks at most as many external
executions at once as it has workers. This is the design Batchdesk avoids (DESIGN.md, "never
hold a worker while waiting"); it exists here only to measure that ceiling.
"""

from __future__ import annotations

import time

from apps.catalog.models import JobType
from apps.connectors.client import request


def track_until_done(job_type: str, external_id: str, interval: float) -> str:
    endpoint = JobType.objects.get(name=job_type).endpoint()
    query = {"processName": "naive", "jobName": "naive", "executionId": external_id}
    while True:
        status = str(request(endpoint, "status", "GET", query=query).get("status"))
        if status != "RUNNING":
            return status
        time.sleep(interval)  # the worker is held here: this is the point
