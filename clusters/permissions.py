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
PERMISSION_AUDIT = "audit"  # read the client's audit trail (a token may, to export it)
PERMISSION_MEMBERS = "members"  # the team, the tokens reaching the client, the sign-in policy
CLUSTER_PERMISSIONS = (PERMISSION_VIEW, PERMISSION_CONFIGURE, PERMISSION_CREDENTIALS)
ALL_PERMISSIONS = (*CLUSTER_PERMISSIONS, PERMISSION_AUDIT, PERMISSION_MEMBERS)
# What a personal access token may be given: managing members needs a signed-in session.
TOKEN_PERMISSIONS = (*CLUSTER_PERMISSIONS, PERMISSION_AUDIT)

# What each role may do for its client. Operator staff (User.is_operator) may do everything everywhere.
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Grant.Role.VIEWER: (PERMISSION_VIEW,),
    Grant.Role.OPERATOR: CLUSTER_PERMISSIONS,
    Grant.Role.ADMIN: ALL_PERMISSIONS,
}
# Roles from least to most: nobody grants (or changes, or removes) a role above their own.
ROLE_ORDER: tuple[str, ...] = (Grant.Role.VIEWER, Grant.Role.OPERATOR, Grant.Role.ADMIN)


def roles_with(permission: str) -> list[str]:
    return [role for role, permissions in ROLE_PERMISSIONS.items() if permission in permissions]


def role_rank(role: str | None) -> int:
    """A role's place in ROLE_ORDER (-1: no role at all)."""
    return ROLE_ORDER.index(role) if role in ROLE_ORDER else -1


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
