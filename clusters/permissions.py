"""Who may do what for a client: the role table, and the permission each view declares.

A view names what it requires once (``required_permission``: a permission, or a map from HTTP
method to one); the one selector call that fetches the object enforces it
(``selectors.client_access`` / ``cluster_access``), so each request asks for the grant once.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission

from clusters.models import Grant

PERMISSION_VIEW = "view"
PERMISSION_CONFIGURE = "configure"
PERMISSION_CREDENTIALS = "credentials"
ALL_PERMISSIONS = (PERMISSION_VIEW, PERMISSION_CONFIGURE, PERMISSION_CREDENTIALS)

# What each role may do for its client. Operator staff (User.is_operator) may do everything everywhere.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Grant.Role.VIEWER: (PERMISSION_VIEW,),
    Grant.Role.OPERATOR: ALL_PERMISSIONS,
}


def roles_with(permission: str) -> list[str]:
    return [role for role, permissions in ROLE_PERMISSIONS.items() if permission in permissions]


def view_permission(view, method: str) -> str | None:
    """The permission ``view`` declares for ``method`` (None: the view does not implement it)."""
    required = getattr(view, "required_permission", None)
    if required is None:
        raise ImproperlyConfigured(f"{type(view).__name__} must declare required_permission.")
    if not isinstance(required, Mapping):
        return required
    method = "GET" if method in {"HEAD", "OPTIONS"} else method  # both only read
    declared = required.get(method)
    if declared is None and hasattr(view, method.lower()):
        raise ImproperlyConfigured(f"{type(view).__name__} implements {method} without a permission.")
    return declared


class HasClientPermission(BasePermission):
    """An active user, on a view that declares its permission; the object selector checks the grant."""

    def has_permission(self, request, view) -> bool:
        view_permission(view, request.method)
        user = request.user
        return bool(user and user.is_authenticated and user.is_active)
