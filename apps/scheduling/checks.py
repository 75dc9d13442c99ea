"""System checks of the scheduling app.

6- and 7-field cron expressions now follow Quartz (SPEC §4): one that restricts both
day-of-month and day-of-week, among others, is refused. A schedule stored before keeps its
expression; rather than reinterpret it silently, this check names each one, and the
dispatcher finishes it (inactive, reason "invalid cron: ...") instead of firing it.

The check reads the database, so it is a database check: `manage.py migrate` and
`manage.py check --database default` run it.
"""

from __future__ import annotations

from django.core import checks
from django.core.exceptions import ValidationError
from django.db import DatabaseError

BOTH_DAYS_HINT = (
    "Put ? in the day-of-month or the day-of-week field (6- and 7-field expressions follow Quartz), or "
    "write it as a 5-field expression if it should fire on a day matching either field."
)
OTHER_HINT = "Edit the schedule's cron expression; the message says what is wrong."
UNTIL_FIXED = " Until it is fixed the dispatcher does not fire it: it finishes the schedule, inactive, with the reason."


def check_stored_cron_expressions(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """A warning for each stored cron schedule whose expression no longer parses."""
    if not databases or (app_configs is not None and not any(c.name == "apps.scheduling" for c in app_configs)):
        return []
    from apps.scheduling.models import Kind, Schedule
    from apps.scheduling.timing import parse_cron

    found = []
    for alias in databases:
        try:
            schedules = list(
                Schedule.objects.using(alias).filter(kind=Kind.CRON).select_related("job", "flow").order_by("pk")
            )
        except DatabaseError:  # not migrated yet: nothing stored to check
            continue
        for schedule in schedules:
            try:
                parse_cron(schedule.cron)
            except ValidationError as exc:
                problem = " ".join(exc.messages)
                found.append(
                    checks.Warning(
                        f"Schedule {schedule.pk} ({schedule.target_name}): its cron expression {schedule.cron!r} is "
                        f"no longer valid: {problem}",
                        hint=(BOTH_DAYS_HINT if "both restricted" in problem else OTHER_HINT) + UNTIL_FIXED,
                        obj=schedule,
                        id="scheduling.W001",
                    )
                )
    return found
