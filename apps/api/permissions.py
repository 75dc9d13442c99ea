"""One permission vocabulary for the API and the admin: every request asks `user.has_perm` for one
permission. Reading needs the model's view permission, writing its add/change/delete permission,
and an action its own (Meta.permissions: trigger, kill, restart, pause, block, …). The roles of
SPEC §5 are groups that hold these permissions (apps/catalog/roles.py)."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

VERBS = {"GET": "view", "HEAD": "view", "OPTIONS": "view", "POST": "add", "PUT": "change", "PATCH": "change",
         "DELETE": "delete"}


class BatchPermission(BasePermission):
    message = "Your role does not allow this: reading needs Batch Viewer, changes need Batch Administrator."

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False  # DRF answers 401, since an authenticator offers a challenge
        return user.has_perm(required_permission(request, view))


def required_permission(request, view) -> str:
    """The one permission this request needs.

    A view names it for an action (`action_permissions`, by action and optionally by method) or for
    the whole view (`permission_required`); otherwise it is the method's verb on the view's model."""
    named = getattr(view, "action_permissions", {}).get(getattr(view, "action", None))
    if isinstance(named, dict):
        named = named.get(request.method, named.get("*"))
    if named:
        return named
    if getattr(view, "permission_required", None):
        return view.permission_required
    model = view.serializer_class.Meta.model
    return f"{model._meta.app_label}.{VERBS.get(request.method, 'change')}_{model._meta.model_name}"
