"""Operations on the catalog shared by the admin, the API and the commands."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from apps.catalog import validators
from apps.catalog.models import Application, JobType, JobTypeEnvironment


def configure_environment(application: Application, job_types: dict[str, dict[str, str]]) -> list[JobTypeEnvironment]:
    """Set the URL and scope of custom job types for one application (POM "Configure New Schedule").

    All or nothing: an unknown type or a malformed URL changes nothing. The rest of each
    job type's definition is untouched.
    """
    if not isinstance(job_types, dict) or not job_types:
        raise ValidationError("Give at least one job type: {\"<TYPE>\": {\"url\": \"...\", \"scope\": \"...\"}}.")
    known = {t.name: t for t in JobType.objects.filter(name__in=list(job_types))}
    errors = []
    for name, values in job_types.items():
        if name not in known:
            errors.append(f"Unknown job type {name!r}.")
            continue
        if not isinstance(values, dict) or not set(values) <= {"url", "scope"} or not values:
            errors.append(f"{name}: give 'url' and/or 'scope' only.")
            continue
        if values.get("url"):
            try:
                validators.http_url(values["url"])
            except ValidationError as exc:
                errors.append(f"{name}: {exc.messages[0]}")
    if errors:
        raise ValidationError(errors)
    saved = []
    with transaction.atomic():
        for name, values in job_types.items():
            environment, _ = JobTypeEnvironment.objects.get_or_create(application=application, job_type=known[name])
            for field in ("url", "scope"):
                if field in values:
                    setattr(environment, field, str(values[field] or "").strip())
            environment.save()
            saved.append(environment)
    return saved
