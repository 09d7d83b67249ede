"""One lock orders what acts as a user against what takes it back: the user's database row.

Whatever takes back what acts as a user (a password changed, reset or set; a first second factor;
a deactivation; a removal from a client, or a client's stricter sign-in policy) locks the row
first (an ``UPDATE`` of it does) and only then looks for the sessions, sign-in challenges and
tokens to end (and, through ``accounts.taken_back``, what other apps keep that the account sent:
a client's invitations). Whatever makes one (a session, a second-step challenge, a token, an
invitation) locks the row
before its last check and holds it until it commits. So what is made is either there when the
other looks, and ended, or made after, by a check that sees the change: the other never misses it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import connection

from accounts.models import AuthMethod, Session, User
from accounts.selectors import user_second_factors
from config.errors import AccountDisabled, InvalidCredentials, SessionEnded


def user_row_lock(*, user_id: int) -> dict | None:
    """Lock the user's row until the transaction ends; what it holds now (``password_version``,
    ``is_active``).

    On PostgreSQL the lock is ``FOR NO KEY UPDATE``, the one an ``UPDATE`` of the row takes: it
    queues with those, and not with the rows being inserted that point at the user (an audit
    event, a session), which ``FOR UPDATE`` would, making a deadlock of a change that locks the
    user then waits on a sign-in's challenge while that sign-in records a wrong code.
    """
    locked = User.objects.select_for_update(no_key=connection.features.has_select_for_no_key_update)
    return locked.filter(pk=user_id).values("password_version", "is_active").first()


def session_still_acting(*, user_id: int, session_id: uuid.UUID | None) -> None:
    """Under the user's row lock, the last check of what a session makes in the user's name (a
    token, an invitation): the session ``session_id`` has not ended (a password change or a
    deactivation ends it), and the account is active. None: made without a session (an operator's
    script), the account only."""
    stored = user_row_lock(user_id=user_id)
    if (
        session_id is not None
        and not Session.objects.filter(pk=session_id, user_id=user_id, revoked_at=None).exists()
    ):
        raise SessionEnded()
    if stored is None or not stored["is_active"]:
        raise AccountDisabled()


def _proved(*, user: User, method: str) -> dict:
    """What a sign-in proved, as the user's row must still say: active and, for a password, the
    very password checked (``user`` as it was read for the check)."""
    return {
        "is_active": True,
        **({"password_version": user.password_version} if method == AuthMethod.PASSWORD else {}),
    }


def sign_in_still_valid(*, user: User, method: str) -> None:
    """Under the user's row lock: what the sign-in proved still holds (else why not, as a refusal)."""
    stored = user_row_lock(user_id=user.pk)
    if stored is None or not stored["is_active"]:
        raise AccountDisabled()
    if any(stored[name] != value for name, value in _proved(user=user, method=method).items()):
        raise InvalidCredentials()  # changed since: the password given is no longer the account's


class SecondFactorSetUpSince(Exception):
    """A sign-in of one step found, under the lock, a second factor set up since it looked: the
    set-up ended every session of one step and missed this one, so it must ask for the factor."""


def sign_in_record(*, user: User, method: str, second_factor: str | None, at: datetime) -> None:
    """The sign-in's ``last_login``, written only while what it proved still holds: the ``UPDATE``
    is the row lock (a sign-in's one query for it), and waits for a change under way.

    A sign-in of one step (a password or Google, no ``second_factor``) holds only while the user
    has no second factor: read again once the lock is held, as a first one's set-up holds it.
    """
    if not User.objects.filter(pk=user.pk, **_proved(user=user, method=method)).update(last_login=at):
        sign_in_still_valid(user=user, method=method)  # says why
        raise InvalidCredentials()
    if second_factor is None and method != AuthMethod.PASSKEY and user_second_factors(user=user):
        raise SecondFactorSetUpSince()
