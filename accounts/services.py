"""Writes for users, sessions and tokens."""

from __future__ import annotations

from django.db.models import F

from accounts.models import User


def user_claims_bump(*, user_id: int) -> None:
    """Record that the user's token claims (scopes, email, name) changed: tokens get re-issued."""
    User.objects.filter(pk=user_id).update(claims_version=F("claims_version") + 1)
