"""`manage.py run_all`: the web server, a dispatcher and a django-q2 cluster in one terminal."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.console.management.commands.load_demo import PASSWORD_FILE


class Command(BaseCommand):
    help = "Start runserver, run_dispatcher and qcluster; stop them all on Ctrl-C or when one dies."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args, port: int, **options) -> None:
        manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
        commands = {
            "web": manage + ["runserver", f"127.0.0.1:{port}", "--noreload"],
            "dispatcher": manage + ["run_dispatcher"],
            "cluster": manage + ["qcluster"],
        }
        processes = {name: subprocess.Popen(command) for name, command in commands.items()}
        login = PASSWORD_FILE.read_text().strip() if PASSWORD_FILE.exists() else "(run load_demo)"
        self.stdout.write(self.style.SUCCESS(
            f"\nBatchdesk is up: http://127.0.0.1:{port}/admin/  login: admin / {login}\nCtrl-C stops everything.\n"
        ))
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        while not stopping and all(p.poll() is None for p in processes.values()):
            time.sleep(0.5)
        for name, process in processes.items():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
