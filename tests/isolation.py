"""A pytest plugin loaded before Django starts (`-p tests.isolation` in pyproject.toml): it gives
this test run its own database and queue name, so that runs side by side never share a row
or a task. End-to-end subprocesses inherit both through the environment."""

import os

os.environ.setdefault("BATCHDESK_TEST_RUN", str(os.getpid()))
os.environ.setdefault("BATCHDESK_QUEUE_NAME", f"batchdesk-test-{os.environ['BATCHDESK_TEST_RUN']}")
