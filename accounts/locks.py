"""One lock orders what acts as a user against what takes it back: the user's database row.

Whatever takes back what acts as a user (a password changed, reset or set; a first second factor;
a deactivation; a removal from a client) locks the row first (an ``UPDATE`` of it does) and only
then looks for the sessions, sign-in challenges and tokens to end. Whatever makes one (a session,
a second-step challenge, a token) locks the row before its last check and holds it until it
commits. So what is made is either there when the other looks, and ended, or made after, by a
check that sees the change: the other never misses it.
"""

from __future__ import annotations

import hmac

from accounts.models import AuthMethod, User
from config.errors import AccountDisabled, InvalidCredentials


def user_row_lock(*, user_id: int) -> dict | None:
    """Lock the user's row until the transaction ends; what it holds now (``password``, ``is_active``)."""
    return User.objects.select_for_update().filter(pk=user_id).values("password", "is_active").first()


def sign_in_still_valid(*, user: User, method: str) -> None:
    """Under the user's row lock: the account a sign-in proved is still active and, for a
    password, still has the very password checked (``user`` as it was read for the check)."""
    stored = user_row_lock(user_id=user.pk)
    if stored is None or not stored["is_active"]:
        raise AccountDisabled()
    if method == AuthMethod.PASSWORD and not hmac.compare_digest(stored["password"], user.password):
        raise InvalidCredentials()  # changed since: the password given is no longer the account's
