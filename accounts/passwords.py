"""Password change (signed in) and reset by email (signed out).

A reset link carries Django's token (``default_token_generator``): it is bound to the user's
password hash and last sign-in, so it works once (checked again under the user's row lock, so
also when used twice at once), and for ``PASSWORD_RESET_TIMEOUT``. A reset ends every session
but never removes a second factor: the user still needs it to sign in.
A request for an unknown address answers exactly as one for a known address, and the email is
sent after the answer, so neither the answer nor its timing tells whether the address exists.
"""

from __future__ import annotations

import hashlib
import logging
import uuid

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode

from accounts.access_tokens import user_access_tokens_end
from accounts.audit import RequestOrigin, audit_event_record
from accounts.emails import email_canonical_or_none
from accounts.locks import user_row_lock
from accounts.mail import mail_send
from accounts.models import AuditEventType, SessionRevokedReason, User
from accounts.services import sessions_revoke
from accounts.taken_back import account_taken_back
from config.cache import CACHE_ERRORS
from config.errors import AuthUnavailable, InvalidRequest, InvalidResetToken

logger = logging.getLogger(__name__)


def _new_password_check(password: str, user: User, field: str) -> None:
    try:
        validate_password(password, user)
    except ValidationError as error:
        raise InvalidRequest(fields={field: list(error.messages)}) from error


def _password_store(user: User, password: str | None) -> None:
    """Save a new password as a new version of it (``User.password_version``); the first write of
    the change, so it holds the user's row lock (accounts.locks) while the change ends the rest."""
    user.set_password(password)
    user.save(update_fields=["password"])  # the row's lock, held to the end of the change
    # Counted in the database: two changes at once are two versions, not one each thinks it made.
    User.objects.filter(pk=user.pk).update(password_version=F("password_version") + 1)
    user.refresh_from_db(fields=["password_version"])


def password_change(
    *, user_id: int, session_id: uuid.UUID, current_password: str, new_password: str, origin: RequestOrigin
) -> User:
    """Set a new password; every other session, every personal access token and what other apps
    keep that the account sent (accounts.taken_back) end (whoever knew the old password may have
    made one), this session stays. Returns the user, with it."""
    user = User.objects.get(pk=user_id)
    if not (user.has_usable_password() and user.check_password(current_password)):
        raise InvalidRequest(fields={"currentPassword": ["The current password is not correct."]})
    _new_password_check(new_password, user, "newPassword")
    with transaction.atomic():
        _password_store(user, new_password)
        sessions_revoke(user=user, except_session_id=session_id, reason=SessionRevokedReason.PASSWORD_CHANGE)
        user_access_tokens_end(user=user, actor=user, why="password changed", origin=origin)
        account_taken_back(user=user, actor=user, why="password was changed")
        audit_event_record(
            type=AuditEventType.PASSWORD_CHANGED, user=user, origin=origin, session_id=session_id
        )
    return user


def _reset_link(user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return f"{settings.PUBLIC_URL}/#/reset/{uid}/{default_token_generator.make_token(user)}"


def _reset_email_due(user: User) -> bool:
    """Whether a reset email may go to ``user`` now (one per PASSWORD_RESET_EMAIL_INTERVAL), and
    if so, the interval starts. The link sent before still works meanwhile: the interval is
    counted per state of what a reset link is made from (the password, the last sign-in, the
    email; Django's token), so a sign-in or a password change, which kill the link, let a new
    email go at once."""
    state = f"{user.pk}:{user.password}:{user.last_login}:{user.email}"
    key = f"auth:password-reset-sent:{hashlib.sha256(state.encode()).hexdigest()}"
    try:
        return cache.add(key, True, timeout=settings.PASSWORD_RESET_EMAIL_INTERVAL.total_seconds())
    except CACHE_ERRORS as error:
        raise AuthUnavailable() from error


def password_reset_request(*, email: str, origin: RequestOrigin) -> None:
    """Email a reset link to ``email`` if an active account with password sign-in has it; the
    caller answers 202 either way. An account without a password (an operator turned it off, or
    it came from Google) gets none, as with Django's own reset form: the link would turn it on."""
    canonical = email_canonical_or_none(email)
    user = User.objects.filter(email=canonical, is_active=True).first() if canonical else None
    passwordless = user is not None and not user.has_usable_password()
    audit_event_record(
        type=AuditEventType.PASSWORD_RESET_REQUESTED,
        user=user,
        email=canonical or "",
        origin=origin,
        detail="no such active account" if user is None else "no password sign-in" if passwordless else "",
    )
    if user is None or passwordless:
        return
    if not settings.PUBLIC_URL:
        logger.warning("password reset email not sent: PUBLIC_URL is not set")
        return
    if not _reset_email_due(user):
        logger.info("password reset email not sent: one went to the address less than %s ago",
                    settings.PASSWORD_RESET_EMAIL_INTERVAL)  # fmt: skip
        return
    # Sent after the answer (accounts.mail): an SMTP server's time must not tell that the address exists.
    mail_send(
        to=user.email,
        subject="Reset your Qdrant Portal password",
        template="accounts/password_reset_email",
        context={"user": user, "link": _reset_link(user), "minutes": settings.PASSWORD_RESET_TIMEOUT // 60},
        what="password reset",
    )


def _reset_account(uid: str, token: str) -> User:
    """The active account with a password a reset link (``uid``, ``token``) is for; 400
    invalid_reset_token otherwise."""
    try:
        user = User.objects.filter(pk=int(urlsafe_base64_decode(uid).decode()), is_active=True).first()
    except (ValueError, UnicodeDecodeError):
        user = None
    if user is None or not user.has_usable_password() or not default_token_generator.check_token(user, token):
        raise InvalidResetToken()
    return user


def password_reset_email(*, uid: str, token: str) -> str:
    """The email of the account a reset link still works for (the page checks before asking)."""
    return _reset_account(uid, token).email


def password_reset_confirm(*, uid: str, token: str, new_password: str, origin: RequestOrigin) -> None:
    """Set the password a valid link allows; every session, personal access token and what other
    apps keep that the account sent end (someone who knew the old password may have made one).
    Second factors stay."""
    user = _reset_account(uid, token)
    _new_password_check(new_password, user, "newPassword")
    with transaction.atomic():
        # Checked again once the row is locked: two uses of the link at once both passed the
        # check above, and the one that locks second finds the link ended by the other's password.
        user_row_lock(user_id=user.pk)
        user = _reset_account(uid, token)
        _password_store(user, new_password)
        sessions_revoke(user=user, reason=SessionRevokedReason.PASSWORD_RESET)
        user_access_tokens_end(user=user, actor=None, why="password reset", origin=origin)
        account_taken_back(user=user, actor=None, why="password was reset")
        audit_event_record(type=AuditEventType.PASSWORD_RESET, user=user, origin=origin)


def operator_password_set(
    *,
    user: User,
    password: str | None,
    current_session_id: uuid.UUID | None = None,
    actor: User | None = None,
) -> None:
    """An operator sets a password (None: none, no password sign-in); other sessions and tokens end,
    and what other apps keep that the account sent."""
    with transaction.atomic():
        _password_store(user, password)  # None makes an unusable one (Django's make_password)
        reason = SessionRevokedReason.PASSWORD_CHANGE
        sessions_revoke(user=user, except_session_id=current_session_id, reason=reason, actor=actor)
        user_access_tokens_end(user=user, actor=actor, why="password set by an operator")
        account_taken_back(
            user=user,
            actor=actor,
            why="password was set by an operator"
            if password is not None
            else "password sign-in was turned off by an operator",
        )
        by = f" by {actor.email}" if actor else ""
        audit_event_record(
            type=AuditEventType.PASSWORD_CHANGED,
            user=user,
            detail=f"set{by}" if password is not None else f"turned off{by}",
        )
