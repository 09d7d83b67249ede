"""Reads for clients, clusters and grants."""

from __future__ import annotations

from accounts.models import User
from clusters.models import Client, Grant

# What each role may do for a client. Operator staff (User.is_operator) may do everything everywhere.
PERMISSION_VIEW = "view"
PERMISSION_CONFIGURE = "configure"
PERMISSION_CREDENTIALS = "credentials"
ALL_PERMISSIONS = (PERMISSION_VIEW, PERMISSION_CONFIGURE, PERMISSION_CREDENTIALS)
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    Grant.Role.VIEWER: (PERMISSION_VIEW,),
    Grant.Role.OPERATOR: ALL_PERMISSIONS,
}


def user_is_global_operator(*, user: User) -> bool:
    return bool(user.is_active and user.is_staff and user.is_operator)


def user_client_permissions(*, user: User) -> dict[str, list[str]]:
    """``{"client1": ["view", "configure", "credentials"], ...}`` from the user's current grants."""
    if not user.is_active:
        return {}
    if user_is_global_operator(user=user):
        slugs = Client.objects.filter(active=True).values_list("slug", flat=True)
        return {slug: list(ALL_PERMISSIONS) for slug in slugs}
    grants = Grant.objects.filter(user=user, client__active=True).values_list("client__slug", "role")
    return {slug: list(ROLE_PERMISSIONS[role]) for slug, role in grants}


def user_scope_claim(*, user: User) -> str:
    """The token's ``scope`` claim: ``*`` for operator staff, else the client slugs, space-separated."""
    if user_is_global_operator(user=user):
        return "*"
    return " ".join(sorted(user_client_permissions(user=user)))
