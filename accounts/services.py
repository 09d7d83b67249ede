"""Writes for users, sessions and tokens.

A session is the durable record of one sign-in (the database) plus a liveness key in the cache
whose time-to-live is the idle timeout. Every authenticated request resets the key; revoking a
session deletes it; a session whose key is gone is over. The cache is consulted on every
request, so when it cannot be reached we fail closed (503 ``auth_unavailable``).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from rest_framework import status

from accounts.google import (
    GoogleEmailNotVerified,
    GoogleIdentity,
    GoogleTokenInvalid,
    google_id_token_verify,
)
from accounts.models import (
    AuditEvent,
    AuditEventType,
    AuthMethod,
    GoogleAccount,
    Session,
    SessionRevokedReason,
    User,
)
from accounts.tokens import AccessToken, RefreshToken
from config.exceptions import ServiceError

logger = logging.getLogger(__name__)

SESSION_CACHE_PREFIX = "auth:session:"
# last_seen_at is for people reading the sessions list: a minute of precision spares a write per request.
LAST_SEEN_PRECISION = timedelta(minutes=1)
USER_AGENT_MAX = 512


def auth_unavailable() -> ServiceError:
    return ServiceError(
        "Sign-in is temporarily unavailable; try again shortly.",
        code="auth_unavailable",
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
    )


def token_not_valid(detail: str = "Token is invalid or expired.") -> ServiceError:
    return ServiceError(detail, code="token_not_valid", status_code=status.HTTP_403_FORBIDDEN)


def account_disabled() -> ServiceError:
    return ServiceError(
        "This account is disabled.", code="account_disabled", status_code=status.HTTP_403_FORBIDDEN
    )


@dataclass(frozen=True)
class IssuedTokens:
    """What a sign-in or a refresh hands out."""

    user: User
    session_id: uuid.UUID
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


# --- the idle-timeout cache ------------------------------------------------------------------


def session_cache_key(session_id: uuid.UUID | str) -> str:
    return f"{SESSION_CACHE_PREFIX}{session_id}"


def session_activity_touch(*, session_id: uuid.UUID | str) -> bool:
    """Reset the session's idle timer in one round trip; False when it was revoked or went idle."""
    try:
        return bool(cache.touch(session_cache_key(session_id), timeout=settings.JWT_TTL.total_seconds()))
    except Exception as error:  # any cache failure: fail closed
        logger.warning("session cache unreachable: %s", type(error).__name__)
        raise auth_unavailable() from error


def _session_activity_start(*, session_id: uuid.UUID) -> None:
    try:
        cache.set(session_cache_key(session_id), 1, timeout=settings.JWT_TTL.total_seconds())
    except Exception as error:
        logger.warning("session cache unreachable: %s", type(error).__name__)
        raise auth_unavailable() from error


def _session_activity_end(*, session_ids: list[uuid.UUID]) -> None:
    if not session_ids:
        return
    try:
        cache.delete_many([session_cache_key(session_id) for session_id in session_ids])
    except Exception as error:
        # The database already says revoked, and authenticated requests check it; /validate
        # cannot reach the cache either, so it refuses everything until the cache is back.
        logger.warning("session cache unreachable while revoking: %s", type(error).__name__)
        raise auth_unavailable() from error


def session_seen_record(*, session: Session, now: datetime | None = None) -> None:
    """Move last_seen_at forward, at most about once a minute per session."""
    now = now or timezone.now()
    if now - session.last_seen_at >= LAST_SEEN_PRECISION:
        Session.objects.filter(pk=session.pk, last_seen_at__lt=now).update(last_seen_at=now)
        session.last_seen_at = now


# --- tokens ----------------------------------------------------------------------------------


def access_token_issue(
    *, user: User, session_id: uuid.UUID | str, session_expires_at: datetime
) -> AccessToken:
    from clusters.selectors import user_scope_claim

    now = timezone.now()
    return AccessToken.issue(
        claims={
            "sub": str(user.pk),
            "email": user.email,
            "scope": user_scope_claim(user=user),
            "sid": str(session_id),
            "cv": user.claims_version,
        },
        issued_at=now,
        expires_at=min(now + settings.JWT_ACCESS_TTL, session_expires_at),
    )


def _refresh_payload(*, user: User, session: Session, now: datetime) -> dict:
    token = RefreshToken.issue(
        claims={"sub": str(user.pk), "email": user.email, "sid": str(session.pk)},
        issued_at=now,
        expires_at=min(now + settings.JWT_REFRESH_TTL, session.expires_at),
    )
    return token.payload


def _issued(*, user: User, session: Session, refresh_payload: dict) -> IssuedTokens:
    access = access_token_issue(user=user, session_id=session.pk, session_expires_at=session.expires_at)
    refresh = RefreshToken.from_payload(refresh_payload)
    return IssuedTokens(
        user=user,
        session_id=session.pk,
        access_token=str(access),
        access_expires_at=datetime.fromtimestamp(access["exp"], tz=UTC),
        refresh_token=str(refresh),
        refresh_expires_at=datetime.fromtimestamp(refresh["exp"], tz=UTC),
    )


# --- audit -----------------------------------------------------------------------------------


def audit_event_record(
    *,
    type: AuditEventType,
    user: User | None = None,
    email: str = "",
    method: str = "",
    ip: str | None = None,
    user_agent: str = "",
    session_id: uuid.UUID | None = None,
    detail: str = "",
) -> AuditEvent:
    event = AuditEvent(
        type=type,
        user=user,
        email=(email or (user.email if user else ""))[:254],
        method=method,
        ip=ip or None,
        user_agent=user_agent[:USER_AGENT_MAX],
        session_id=session_id,
        detail=detail[:255],
    )
    event.full_clean()
    event.save()
    return event


# --- sign-in ---------------------------------------------------------------------------------


def user_password_authenticate(*, email: str, password: str, ip: str | None, user_agent: str) -> User:
    """The user with this email and password; 401 ``invalid_credentials`` or 403 ``account_disabled``."""
    normalized = User.objects.normalize_email(email)
    user = User.objects.filter(email__iexact=normalized).first()
    if user is None:
        # Timing: hash the password anyway, so an unknown email costs what a wrong password costs.
        User().set_password(password)
        valid = False
    else:
        valid = user.check_password(password)
    if not valid:
        audit_event_record(
            type=AuditEventType.LOGIN_FAILED,
            user=user,
            email=normalized,
            method=AuthMethod.PASSWORD,
            ip=ip,
            user_agent=user_agent,
            detail="unknown email" if user is None else "wrong password",
        )
        raise ServiceError(
            "The email or password is not correct.",
            code="invalid_credentials",
            status_code=status.HTTP_401_UNAUTHORIZED,
        )
    if not user.is_active:
        # Only after a correct password: the account's state is not told to someone guessing.
        audit_event_record(
            type=AuditEventType.LOGIN_FAILED,
            user=user,
            method=AuthMethod.PASSWORD,
            ip=ip,
            user_agent=user_agent,
            detail="account disabled",
        )
        raise account_disabled()
    return user


def session_start(*, user: User, method: str, user_agent: str, ip: str | None) -> IssuedTokens:
    """Open a session (one refresh family) after any successful authentication, and issue its tokens."""
    if not user.is_active:
        raise account_disabled()
    now = timezone.now()
    session = Session(
        id=uuid.uuid4(),
        user=user,
        method=method,
        created_at=now,
        last_seen_at=now,
        expires_at=now + settings.JWT_SESSION_MAX,
        user_agent=user_agent[:USER_AGENT_MAX],
        ip=ip or None,
    )
    refresh_payload = _refresh_payload(user=user, session=session, now=now)
    session.current_refresh_jti = refresh_payload["jti"]
    session.current_refresh_payload = refresh_payload
    session.full_clean()
    with transaction.atomic():
        session.save(force_insert=True)
        User.objects.filter(pk=user.pk).update(last_login=now)
        audit_event_record(
            type=AuditEventType.LOGIN_SUCCEEDED,
            user=user,
            method=method,
            ip=ip,
            user_agent=user_agent,
            session_id=session.pk,
        )
    _session_activity_start(session_id=session.pk)
    return _issued(user=user, session=session, refresh_payload=refresh_payload)


# --- Google sign-in ---------------------------------------------------------------------------


def no_account() -> ServiceError:
    return ServiceError(
        "No account here belongs to this Google account; ask an operator for access.",
        code="no_account",
        status_code=status.HTTP_403_FORBIDDEN,
    )


def _google_login_failed(
    *, error: ServiceError, ip: str | None, user_agent: str, user: User | None = None, email: str = ""
) -> ServiceError:
    audit_event_record(
        type=AuditEventType.LOGIN_FAILED,
        user=user,
        email=email,
        method=AuthMethod.GOOGLE,
        ip=ip,
        user_agent=user_agent,
        detail=error.code,
    )
    return error


def _google_linked_user(*, sub: str) -> User | None:
    account = GoogleAccount.objects.select_related("user").filter(sub=sub).first()
    return account.user if account else None


def google_account_link(
    *, user: User, identity: GoogleIdentity, ip: str | None = None, user_agent: str = "", detail: str = ""
) -> GoogleAccount:
    """Link a verified Google account to ``user``; IntegrityError when another sign-in linked it first."""
    account = GoogleAccount(user=user, sub=identity.sub, email=identity.email[:254])
    # The unique sub is left to the database: checking it first would only narrow the race.
    account.full_clean(validate_constraints=False)
    with transaction.atomic():
        account.save(force_insert=True)
        audit_event_record(
            type=AuditEventType.GOOGLE_LINKED,
            user=user,
            method=AuthMethod.GOOGLE,
            ip=ip,
            user_agent=user_agent,
            detail=detail,
        )
    return account


def google_account_unlink(*, account: GoogleAccount, actor: User | None = None) -> None:
    """Forget a Google account: its next sign-in is treated like a stranger's (email, then domain)."""
    with transaction.atomic():
        account.delete()
        audit_event_record(
            type=AuditEventType.GOOGLE_UNLINKED,
            user=account.user,
            method=AuthMethod.GOOGLE,
            detail=f"Google {account.sub} ({account.email})" + (f"; by {actor.email}" if actor else ""),
        )


def _google_user_link_or_create(*, identity: GoogleIdentity, ip: str | None, user_agent: str) -> User:
    email = User.objects.normalize_email(identity.email)
    # Only an address Google is authoritative for proves who this is today: a consumer Google
    # account can hold a verified address of a company mailbox it has long lost.
    existing = User.objects.filter(email__iexact=email).first() if identity.email_authoritative else None
    if existing is not None:
        if not existing.is_active:
            raise _google_login_failed(error=account_disabled(), user=existing, ip=ip, user_agent=user_agent)
        google_account_link(
            user=existing, identity=identity, ip=ip, user_agent=user_agent, detail="linked by verified email"
        )
        return existing
    if not identity.domain_allowed(settings.GOOGLE_ALLOWED_DOMAINS):
        raise _google_login_failed(error=no_account(), email=email, ip=ip, user_agent=user_agent)
    with transaction.atomic():
        # No grants: an operator decides which clients a provisioned user may see.
        user = User.objects.create_user(email=email, password=None, name=identity.name[:150])
        google_account_link(
            user=user, identity=identity, ip=ip, user_agent=user_agent, detail="new user (allowed domain)"
        )
    return user


def google_sign_in(*, credential: str, ip: str | None, user_agent: str) -> IssuedTokens:
    """Sign in with a Google ID token: the linked user, else link by email, else provision by domain."""
    try:
        identity = google_id_token_verify(token=credential)
    except (GoogleTokenInvalid, GoogleEmailNotVerified) as error:
        raise _google_login_failed(error=error, ip=ip, user_agent=user_agent) from None

    user = _google_linked_user(sub=identity.sub)
    if user is None:
        try:
            user = _google_user_link_or_create(identity=identity, ip=ip, user_agent=user_agent)
        except (IntegrityError, ValidationError):
            # A concurrent sign-in with the same Google account linked (or created) first.
            user = _google_linked_user(sub=identity.sub)
            if user is None:
                raise
    if not user.is_active:
        raise _google_login_failed(error=account_disabled(), user=user, ip=ip, user_agent=user_agent)
    return session_start(user=user, method=AuthMethod.GOOGLE, user_agent=user_agent, ip=ip)


# --- refresh ---------------------------------------------------------------------------------


def refresh_token_rotate(*, token: str, ip: str | None, user_agent: str) -> IssuedTokens:
    """Trade a refresh token for its successor; a reused retired token revokes the whole family."""
    from rest_framework_simplejwt.exceptions import TokenError

    try:
        presented = RefreshToken(token)
    except TokenError as error:
        raise token_not_valid() from error
    session_id, jti = presented["sid"], presented["jti"]

    session = Session.objects.select_related("user").filter(pk=uuid_or_none(session_id)).first()
    if session is None or str(session.user_id) != presented["sub"]:
        raise token_not_valid()
    now = timezone.now()
    if session.revoked_at is not None or session.expires_at <= now:
        raise token_not_valid("The session has ended; sign in again.")
    if not session.user.is_active:
        raise account_disabled()
    if not session_activity_touch(session_id=session.pk):
        session_revoke(session=session, reason=SessionRevokedReason.IDLE)
        raise token_not_valid("The session expired after inactivity; sign in again.")

    successor = _refresh_payload(user=session.user, session=session, now=now)
    reused = False
    with transaction.atomic():
        # The single winner: only one UPDATE can still match the presented jti, because the
        # database serialises writers on the row and re-checks the condition after the lock.
        won = Session.objects.filter(pk=session.pk, current_refresh_jti=jti, revoked_at=None).update(
            current_refresh_jti=successor["jti"],
            current_refresh_payload=successor,
            previous_refresh_jti=jti,
            rotated_at=now,
            last_seen_at=now,
        )
        if won:
            payload = successor
        else:
            session.refresh_from_db()
            if session.revoked_at is not None:
                raise token_not_valid("The session has ended; sign in again.")
            within_grace = (
                session.previous_refresh_jti == jti
                and session.rotated_at is not None
                and now - session.rotated_at <= settings.JWT_REFRESH_REUSE_GRACE
            )
            if within_grace:
                # Two tabs refreshing at once: both get the family's current member, not a new one.
                payload = session.current_refresh_payload
            else:
                reused = True
                _session_revoke_rows(
                    session_ids=[session.pk], reason=SessionRevokedReason.REFRESH_REUSE, now=now
                )
                audit_event_record(
                    type=AuditEventType.REFRESH_REUSED,
                    user=session.user,
                    method=session.method,
                    ip=ip,
                    user_agent=user_agent,
                    session_id=session.pk,
                    detail="a retired refresh token was presented again; session revoked",
                )
    if reused:
        _session_activity_end(session_ids=[session.pk])
        raise ServiceError(
            "This refresh token was already used; the session has been revoked for safety.",
            code="refresh_token_reused",
            status_code=status.HTTP_403_FORBIDDEN,
        )
    return _issued(user=session.user, session=session, refresh_payload=payload)


def uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


# --- revocation ------------------------------------------------------------------------------


def _session_revoke_rows(*, session_ids: list[uuid.UUID], reason: str, now: datetime) -> list[uuid.UUID]:
    active = list(Session.objects.filter(pk__in=session_ids, revoked_at=None).values_list("pk", flat=True))
    Session.objects.filter(pk__in=active, revoked_at=None).update(revoked_at=now, revoked_reason=reason)
    return active


def sessions_revoke(
    *,
    sessions: list[Session] | None = None,
    user: User | None = None,
    except_session_id: uuid.UUID | None = None,
    reason: str,
    actor: User | None = None,
    ip: str | None = None,
    user_agent: str = "",
) -> int:
    """Revoke the given sessions, or all of a user's (but ``except_session_id``); returns how many."""
    if sessions is None:
        if user is None:
            raise ValueError("Pass sessions or a user.")
        query = Session.objects.filter(user=user, revoked_at=None)
        if except_session_id is not None:
            query = query.exclude(pk=except_session_id)
        sessions = list(query)
    now = timezone.now()
    with transaction.atomic():
        revoked = set(_session_revoke_rows(session_ids=[s.pk for s in sessions], reason=reason, now=now))
        for session in sessions:
            if session.pk not in revoked:
                continue
            audit_event_record(
                type=AuditEventType.LOGOUT
                if reason == SessionRevokedReason.LOGOUT
                else AuditEventType.SESSION_REVOKED,
                user=session.user,
                method=session.method,
                ip=ip,
                user_agent=user_agent,
                session_id=session.pk,
                detail=f"reason: {reason}"
                + (f"; by {actor.email}" if actor and actor != session.user else ""),
            )
            session.revoked_at, session.revoked_reason = now, reason
    _session_activity_end(session_ids=list(revoked))
    return len(revoked)


def session_revoke(
    *, session: Session, reason: str, actor: User | None = None, ip: str | None = None, user_agent: str = ""
) -> bool:
    return bool(sessions_revoke(sessions=[session], reason=reason, actor=actor, ip=ip, user_agent=user_agent))


def session_logout(*, token: str | None, ip: str | None, user_agent: str) -> None:
    """Revoke the session a (refresh or access) token belongs to; nothing to do for a bad token."""
    from rest_framework_simplejwt.exceptions import TokenError

    if not token:
        return
    for token_class in (RefreshToken, AccessToken):
        try:
            decoded = token_class(token)
        except TokenError:
            continue
        session = Session.objects.select_related("user").filter(pk=uuid_or_none(decoded["sid"])).first()
        if session is not None and str(session.user_id) == decoded["sub"]:
            session_revoke(session=session, reason=SessionRevokedReason.LOGOUT, ip=ip, user_agent=user_agent)
        return


def user_session_revoke(*, user: User, session_id: uuid.UUID, ip: str | None, user_agent: str) -> None:
    """The user ends one of their own sessions; someone else's is a 404, like a missing one."""
    session = Session.objects.filter(pk=session_id, user=user, revoked_at=None).select_related("user").first()
    if session is None:
        raise ServiceError("Not found.", code="not_found", status_code=status.HTTP_404_NOT_FOUND)
    session_revoke(
        session=session, reason=SessionRevokedReason.USER, actor=user, ip=ip, user_agent=user_agent
    )


# --- users -----------------------------------------------------------------------------------


def user_claims_bump(*, user_id: int) -> None:
    """Record that the user's token claims (scopes, email, name) changed: tokens get re-issued."""
    User.objects.filter(pk=user_id).update(claims_version=F("claims_version") + 1)


def user_password_change(
    *, user: User, password: str, current_session_id: uuid.UUID | None = None, actor: User | None = None
) -> None:
    """Set a new password and end every other session (all of them when there is no current one)."""
    user.set_password(password)
    with transaction.atomic():
        user.save(update_fields=["password"])
        sessions_revoke(
            user=user,
            except_session_id=current_session_id,
            reason=SessionRevokedReason.PASSWORD_CHANGE,
            actor=actor,
        )


def user_deactivate(*, user: User, actor: User | None = None) -> None:
    """Disable the account and end all its sessions at once."""
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_active=False)
        user.is_active = False
        sessions_revoke(user=user, reason=SessionRevokedReason.DEACTIVATED, actor=actor)
