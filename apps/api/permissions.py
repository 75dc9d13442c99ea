"""The two roles of SPEC §5: viewers read, administrators do everything (superusers included)."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.catalog.roles import is_administrator, is_viewer


class BatchRole(BasePermission):
    message = "Your role does not allow this: reading needs Batch Viewer, changes need Batch Administrator."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False  # DRF answers 401, since an authenticator offers a challenge
        if request.method in SAFE_METHODS and not getattr(view, "administrators_only", False):
            return is_viewer(user)
        return is_administrator(user)


class AdministratorsOnly(BatchRole):
    message = "Only Batch Administrators may do this."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and is_administrator(user))
