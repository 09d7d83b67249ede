"""Reads for users and sessions."""

from __future__ import annotations

import uuid

from django.core.cache import cache
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import Session, User
from accounts.services import auth_unavailable, session_cache_key


def session_active_list(*, user: User) -> list[Session]:
    """The user's sessions that can still be used: not revoked, not past their end, not idle."""
    sessions = list(
        Session.objects.filter(user=user, revoked_at=None, expires_at__gt=timezone.now()).order_by(
            "-last_seen_at"
        )
    )
    if not sessions:
        return []
    try:
        alive = cache.get_many([session_cache_key(session.pk) for session in sessions])
    except Exception as error:
        raise auth_unavailable() from error
    return [session for session in sessions if session_cache_key(session.pk) in alive]


def session_with_user(*, session_id: uuid.UUID | None) -> Session | None:
    if session_id is None:
        return None
    return Session.objects.select_related("user").filter(pk=session_id).first()


def user_sessions(*, user: User) -> QuerySet[Session]:
    return Session.objects.filter(user=user)


def user_profile(*, user: User) -> dict:
    """The contract's ``User`` body."""
    from clusters.selectors import user_scope_claim

    return {
        "id": user.pk,
        "email": user.email,
        "name": user.name,
        "isStaff": user.is_staff,
        "scopes": user_scope_claim(user=user).split(),
    }


def user_permissions(*, user: User) -> dict:
    from clusters.selectors import user_client_permissions

    return {"clients": user_client_permissions(user=user), "isStaff": user.is_staff}
