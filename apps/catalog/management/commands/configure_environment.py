"""`manage.py configure_environment APP --job-type TYPE --url URL [--scope S]` (SPEC §3)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.catalog.models import Application
from apps.catalog.services import configure_environment


class Command(BaseCommand):
    help = "Point an application's jobs of a custom job type at an environment's URL (and scope)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("application")
        parser.add_argument("--job-type", required=True)
        parser.add_argument("--url", required=True)
        parser.add_argument("--scope")

    def handle(self, *args, application: str, job_type: str, url: str, scope: str | None, **options) -> None:
        app = Application.objects.filter(name=application).first()
        if app is None:
            raise CommandError(f"No application named {application!r}.")
        values = {"url": url} if scope is None else {"url": url, "scope": scope}
        try:
            configure_environment(app, {job_type: values})
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"{app.name}: job type {job_type} now uses {url}" + (f" (scope {scope})" if scope else "") + ".")
