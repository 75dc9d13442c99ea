"""Writing a plan: bulk_create and bulk_update, each sheet's objects before those that refer
to them. load() calls it inside its transaction, only for a plan with no problem."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.db import models

from apps.catalog.models import Application, Flow, JobDefinition, JobType, Process
from apps.scheduling.models import Schedule
from apps.spreadsheet.planning.context import Changes, PredecessorLink, Stored

BATCH = 500
INACTIVE_REASON = "made inactive by a spreadsheet load"
SCHEDULE_FIELDS = ["cron", "interval_seconds", "start_at", "end_at", "repeats", "timezone", "misfire", "active",
                   "extra", "next_fire_at", "inactive_reason", "fire_count"]


class Applier:
    def __init__(self, stored: Stored, changes: Changes, now: datetime) -> None:
        self.stored, self.changes, self.now = stored, changes, now

    def apply(self) -> None:
        self._apply_applications()
        self._apply_job_types()
        self._apply_flows()
        self._apply_processes()
        self._apply_jobs()
        self._apply_links()
        self._apply_schedules()

    def _apply_applications(self) -> None:
        Application.objects.bulk_create(self.changes.new_apps)
        self.stored.apps.update({app.name: app for app in self.changes.new_apps})
        _bulk_update(Application, self.changes.changed_apps)

    def _apply_job_types(self) -> None:
        JobType.objects.bulk_create(self.changes.new_types)
        _bulk_update(JobType, self.changes.changed_types)

    def _apply_flows(self) -> None:
        new_flows = self.changes.new_flows
        for (app, _), flow in new_flows.items():
            flow.application = self.stored.apps[app]
        Flow.objects.bulk_create(new_flows.values(), batch_size=BATCH)
        Flow.objects.bulk_update(self.changes.changed_flows, ["cycle"], batch_size=BATCH)
        self.stored.flows.update(new_flows)

    def _apply_processes(self) -> None:
        new_processes = self.changes.new_processes
        for key, process in new_processes.items():
            process.flow = self.stored.flows[key[:2]]
        Process.objects.bulk_create(new_processes.values(), batch_size=BATCH)
        self.stored.processes.update(new_processes)

    def _apply_jobs(self) -> None:
        new, changed = [], {}
        for write in self.changes.jobs:
            write.job.application = self.stored.apps[write.application]
            write.job.process = self.stored.processes[write.process] if write.process else None
            if write.job.pk is None:
                new.append(write.job)
            else:
                changed[write.job] = write.fields
        JobDefinition.objects.bulk_create(new, batch_size=BATCH)
        _bulk_update(JobDefinition, changed)
        self.stored.jobs.update({job.name: job for job in new})

    def _apply_links(self) -> None:
        processes = self.stored.processes
        PredecessorLink.objects.bulk_create(
            [PredecessorLink(from_process=processes[a], to_process=processes[b]) for a, b in self.changes.links_added],
            batch_size=BATCH,
        )
        removed = [(processes[a].pk, processes[b].pk) for a, b in self.changes.links_removed]
        for start in range(0, len(removed), BATCH):
            condition = models.Q()
            for a, b in removed[start:start + BATCH]:
                condition |= models.Q(from_process_id=a, to_process_id=b)
            PredecessorLink.objects.filter(condition).delete()

    def _apply_schedules(self) -> None:
        """New and edited schedules fire from now, as Schedule.save() and services.reschedule would
        have them (bulk writes call neither); one a row switches off says it was this load."""
        new = []
        for schedule, target in self.changes.new_schedules:
            if target[0] == "job":
                schedule.job = self.stored.jobs[target[1]]
            else:
                schedule.flow = self.stored.flows[target[1:]]
            schedule.rearm_after_edit(self.now, was_active=True, stop_reason=INACTIVE_REASON)
            new.append(schedule)
        for schedule, was_active in self.changes.changed_schedules:
            schedule.rearm_after_edit(self.now, was_active, stop_reason=INACTIVE_REASON)
        Schedule.objects.bulk_create(new, batch_size=BATCH)
        Schedule.objects.bulk_update([schedule for schedule, _ in self.changes.changed_schedules], SCHEDULE_FIELDS,
                                     batch_size=BATCH)


def _bulk_update(model: type[models.Model], changed: dict[models.Model, set[str]]) -> None:
    """bulk_update grouped by the set of fields that changed, so each row writes only those."""
    groups: dict[frozenset, list] = defaultdict(list)
    for obj, fields in changed.items():
        if "job_type" in fields:  # a job's type is held by two columns
            fields = (set(fields) - {"job_type"}) | {"kind", "custom_type"}
        groups[frozenset(fields)].append(obj)
    for fields, objs in groups.items():
        model.objects.bulk_update(objs, sorted(fields), batch_size=BATCH)
