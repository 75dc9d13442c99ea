"""The two roles of SPEC §5: groups made by a migration, their permissions kept in step here."""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

ADMINISTRATOR = "Batch Administrator"
VIEWER = "Batch Viewer"
BATCH_APPS = ["catalog", "engine", "flows", "scheduling", "agents", "audit", "notifications"]


def grant_role_permissions(**kwargs) -> None:
    """After every migrate: administrators may do everything on batch models, viewers only view."""
    permissions = Permission.objects.filter(content_type__app_label__in=BATCH_APPS)
    for name, chosen in ((ADMINISTRATOR, permissions), (VIEWER, permissions.filter(codename__startswith="view_"))):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*chosen)


def is_administrator(user) -> bool:
    return bool(user and user.is_active and (user.is_superuser or user.groups.filter(name=ADMINISTRATOR).exists()))


def is_viewer(user) -> bool:
    return bool(user and user.is_active and (is_administrator(user) or user.groups.filter(name=VIEWER).exists()))
