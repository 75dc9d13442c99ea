"""The audit trail (apps/audit/models.py) and its one writer, `record`."""

from __future__ import annotations


def record(actor: str, action: str, target, detail: str = "") -> None:
    """Record that `actor` did `action` to `target` (a model instance, or a (kind, name) pair for
    what is no row, such as a workbook), in the caller's transaction: an operation that is rolled
    back leaves no entry, and one that is done always has one."""
    from apps.audit.models import AuditEntry

    if isinstance(target, tuple):
        kind, pk, name = target[0], "", target[1]
    else:
        kind, pk, name = target._meta.verbose_name, target.pk or "", target
    AuditEntry.objects.create(actor=(actor or "system")[:150], action=action[:40], target_type=str(kind)[:40],
                              target_id=str(pk)[:64], target=str(name)[:200], detail=detail)
