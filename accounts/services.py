"""Writes for users, sessions and tokens.

A session is the durable record of one sign-in (the database) plus its cache entries (see
``accounts.session_cache``). Revocation writes the cache first: if the cache cannot take it,
nothing is revoked and the caller hears 503, so the database never says "revoked" while
``/validate`` still says "alive".
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from rest_framework_simplejwt.exceptions import TokenError

from accounts import session_cache
from accounts.access_tokens import user_access_tokens_revoke
from accounts.audit import RequestOrigin, account_change_record, audit_event_record
from accounts.emails import email_canonical
from accounts.locks import sign_in_record, user_row_lock
from accounts.models import (
    AuditEventType,
    AuthMethod,
    ChallengePurpose,
    Session,
    SessionRevokedReason,
    SignInChallenge,
    User,
)
from accounts.selectors import (
    LiveSession,
    claims_session_scope,
    session_facts,
    session_live,
    user_claims,
    user_scope_claim,
    uuid_or_none,
)
from accounts.session_cache import CachedClaims
from accounts.taken_back import account_taken_back
from accounts.tokens import AccessToken, RefreshToken
from config import metrics
from config.errors import (
    AccountDisabled,
    AuthUnavailable,
    InvalidCredentials,
    NotFound,
    RefreshTokenReused,
    SessionEnded,
    SessionIdle,
    TokenNotValid,
)

logger = logging.getLogger(__name__)

# last_seen_at is for people reading the sessions list: a minute of precision spares a write per request.
LAST_SEEN_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedTokens:
    """What a sign-in or a refresh hands out."""

    user: User
    session_id: uuid.UUID
    scope: str  # the access token's scope claim (the session's clients), computed once per sign-in or refresh
    access_token: str
    access_expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


# --- tokens ----------------------------------------------------------------------------------


def access_token_issue(
    *,
    user: User,
    session_id: uuid.UUID,
    session_expires_at: datetime,
    scope: str | None = None,
    scope_valid_until: datetime | None = None,
) -> AccessToken:
    """An access token carrying the user's current claims (``scope``: the session's, when computed).

    ``scope_valid_until``: when a client in the scope stops admitting the session (its maximum
    session length); the token expires by then, so services verifying it locally stop too.
    """
    ends_at = min(session_expires_at, scope_valid_until) if scope_valid_until else session_expires_at
    return AccessToken.issue(
        claims={
            "sub": str(user.pk),
            "email": user.email,
            "scope": user_scope_claim(user=user) if scope is None else scope,
            "sid": str(session_id),
            "cv": user.claims_version,
        },
        issued_at=timezone.now(),
        session_expires_at=ends_at,
    )


def _refresh_payload(*, user: User, session: Session, now: datetime) -> dict:
    token = RefreshToken.issue(
        claims={"sub": str(user.pk), "email": user.email, "sid": str(session.pk)},
        issued_at=now,
        session_expires_at=session.expires_at,
    )
    return token.payload


def _issued(*, user: User, session: Session, refresh_payload: dict, claims: CachedClaims) -> IssuedTokens:
    """The tokens of a sign-in or refresh, for the user's current ``claims`` (a sign-in reads them
    from the database and caches them; a refresh has them from its session check)."""
    scope = claims_session_scope(claims=claims, facts=session_facts(session))
    access = access_token_issue(
        user=user,
        session_id=session.pk,
        session_expires_at=session.expires_at,
        scope=scope.claim,
        scope_valid_until=scope.valid_until,
    )
    refresh = RefreshToken.from_payload(refresh_payload)
    return IssuedTokens(
        user=user,
        session_id=session.pk,
        scope=scope.claim,
        access_token=str(access),
        access_expires_at=access.expires_at,
        refresh_token=str(refresh),
        refresh_expires_at=refresh.expires_at,
    )


# --- sign-in ---------------------------------------------------------------------------------


def user_password_authenticate(*, email: str, password: str, origin: RequestOrigin) -> User:
    """The user with this email and password; 401 ``invalid_credentials`` or 403 ``account_disabled``."""
    normalized = email_canonical(email)  # the serializer already made it canonical: a no-op there
    user = User.objects.filter(email=normalized).first()
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
            origin=origin,
            detail="unknown email" if user is None else "wrong password",
        )
        metrics.login_record(method=AuthMethod.PASSWORD, result=InvalidCredentials.default_code)
        raise InvalidCredentials()
    if not user.is_active:
        # Only after a correct password: the account's state is not told to someone guessing.
        audit_event_record(
            type=AuditEventType.LOGIN_FAILED,
            user=user,
            method=AuthMethod.PASSWORD,
            origin=origin,
            detail="account disabled",
        )
        metrics.login_record(method=AuthMethod.PASSWORD, result=AccountDisabled.default_code)
        raise AccountDisabled()
    return user


def session_start(
    *,
    user: User,
    method: str,
    origin: RequestOrigin,
    second_factor: str | None = None,
    google_domain: str = "",
) -> IssuedTokens:
    """Open a session (one refresh family) after any successful authentication, and issue its tokens.

    ``second_factor``: the factor the sign-in also proved (``amr`` records both);
    ``google_domain``: the Workspace of a Google sign-in (clients may require one).
    """
    if not user.is_active:
        raise AccountDisabled()
    now = timezone.now()
    session = Session(
        id=uuid.uuid4(),
        user=user,
        method=method,
        amr=[method, second_factor] if second_factor else [method],
        authenticated_at=now,
        google_domain=google_domain,
        created_at=now,
        last_seen_at=now,
        expires_at=now + settings.JWT_SESSION_MAX,
        user_agent=origin.user_agent,
        ip=origin.ip or None,
    )
    refresh_payload = _refresh_payload(user=user, session=session, now=now)
    session.current_refresh_jti = refresh_payload["jti"]
    session.current_refresh_payload = refresh_payload
    # Built entirely here: the fields are validated, the constraints hold by construction (and
    # the database enforces them); checking them would cost a query each on every sign-in.
    session.full_clean(exclude=["user"], validate_unique=False, validate_constraints=False)
    with transaction.atomic():
        # Not taken back since it was checked (accounts.locks).
        sign_in_record(user=user, method=method, second_factor=second_factor, at=now)
        session.save(force_insert=True)
        audit_event_record(
            type=AuditEventType.LOGIN_SUCCEEDED,
            user=user,
            method=method,
            origin=origin,
            session_id=session.pk,
            detail=f"with {second_factor}" if second_factor else "",
        )
    session_cache.session_timer_start(
        session_id=session.pk, user_id=user.pk, ends_at=session.expires_at, facts=session_facts(session)
    )
    metrics.login_record(method=method, result="success")
    # The user row and factors read for the sign-in may predate a change that forgot the claims
    # since: the claims come from the cache's current entry, or are read again after its epoch.
    claims, epoch = session_cache.claims_cache_read(user_id=user.pk)
    if claims is None:
        user.refresh_from_db()
        claims = user_claims(user=user)
        session_cache.claims_cache_write(user_id=user.pk, claims=claims, epoch=epoch)
    return _issued(user=user, session=session, refresh_payload=refresh_payload, claims=claims)


def session_activity_record(*, live: LiveSession, write_last_seen: bool) -> None:
    """Extend the idle timer when it is due; ``write_last_seen`` also records it for the sessions list."""
    if not live.timer_due:
        return
    session_cache.session_timer_start(
        session_id=live.session_id, user_id=live.user_id, ends_at=live.expires_at, facts=live.facts
    )
    if write_last_seen:
        now = timezone.now()
        Session.objects.filter(pk=live.session_id, last_seen_at__lte=now - LAST_SEEN_PRECISION).update(
            last_seen_at=now
        )


def session_facts_refresh(*, session_id: uuid.UUID) -> None:
    """Tell the cache how a session now counts as signed in (a second factor it just proved)."""
    session = Session.objects.filter(pk=session_id, revoked_at=None).first()
    if session is not None:
        session_cache.session_timer_start(
            session_id=session.pk,
            user_id=session.user_id,
            ends_at=session.expires_at,
            facts=session_facts(session),
        )


# --- refresh ---------------------------------------------------------------------------------


def _refresh_session(*, presented: RefreshToken, origin: RequestOrigin) -> tuple[Session, LiveSession]:
    """The presented token's session, alive by the same rule as every request, and its row."""
    try:
        live = session_live(token=presented)
    except SessionIdle:
        idle = Session.objects.filter(pk=uuid_or_none(presented["sid"]), revoked_at=None).first()
        if idle is not None:
            sessions_revoke(sessions=[idle], reason=SessionRevokedReason.IDLE, origin=origin)
        raise
    session = Session.objects.select_related("user").filter(pk=uuid_or_none(presented["sid"])).first()
    if session is None or str(session.user_id) != presented["sub"]:
        raise TokenNotValid()
    if session.revoked_at is not None or session.expires_at <= timezone.now():
        raise SessionEnded()
    if not session.user.is_active:
        raise AccountDisabled()
    return session, live


def refresh_token_rotate(*, token: str, origin: RequestOrigin) -> IssuedTokens:
    """Trade a refresh token for its successor; a reused retired token revokes the whole family."""
    try:
        presented = RefreshToken(token)
    except TokenError as error:
        raise TokenNotValid() from error
    session, live = _refresh_session(presented=presented, origin=origin)
    jti, now = presented["jti"], timezone.now()
    successor = _refresh_payload(user=session.user, session=session, now=now)
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
        payload = _refresh_lost_race(session=session, jti=jti, now=now, origin=origin)
    session_cache.session_timer_start(
        session_id=session.pk,
        user_id=session.user_id,
        ends_at=session.expires_at,
        facts=session_facts(session),
    )
    # The claims the session check just read: current (every change forgets them), and cached.
    return _issued(user=session.user, session=session, refresh_payload=payload, claims=live.claims)


def _refresh_lost_race(*, session: Session, jti: str, now: datetime, origin: RequestOrigin) -> dict:
    """A token that is no longer the current one: the twin tab within the grace, or reuse."""
    session.refresh_from_db()
    if session.revoked_at is not None:
        raise SessionEnded()
    within_grace = (
        session.previous_refresh_jti == jti
        and session.rotated_at is not None
        and now - session.rotated_at <= settings.JWT_REFRESH_REUSE_GRACE
    )
    if within_grace:
        # Two tabs refreshing at once: both get the family's current member, not a new one.
        return session.current_refresh_payload
    if sessions_revoke(sessions=[session], reason=SessionRevokedReason.REFRESH_REUSE, origin=origin):
        # Once per reuse: replays sent together find the session revoked by the first of them.
        audit_event_record(
            type=AuditEventType.REFRESH_REUSED,
            user=session.user,
            method=session.method,
            origin=origin,
            session_id=session.pk,
            detail="a retired refresh token was presented again; session revoked",
        )
        metrics.refresh_reuse_record()
    raise RefreshTokenReused()


# --- revocation ------------------------------------------------------------------------------


def _revocation_audit_type(reason: str) -> AuditEventType:
    return AuditEventType.LOGOUT if reason == SessionRevokedReason.LOGOUT else AuditEventType.SESSION_REVOKED


def _sessions_of(*, user: User, except_session_id: uuid.UUID | None = None) -> list[Session]:
    return list(
        Session.objects.filter(user=user, revoked_at=None)
        .exclude(pk=except_session_id)
        .select_related("user")
    )


def _session_rows_revoke(
    *, sessions: list[Session], reason: str, actor: User | None, origin: RequestOrigin | None
) -> int:
    """Mark the sessions revoked in the database and audit each; returns how many were still alive."""
    now = timezone.now()
    revoked = 0
    with transaction.atomic():
        for session in sessions:
            if not Session.objects.filter(pk=session.pk, revoked_at=None).update(
                revoked_at=now, revoked_reason=reason
            ):
                continue
            revoked += 1
            session.revoked_at, session.revoked_reason = now, reason
            by = f"; by {actor.email}" if actor and actor != session.user else ""
            audit_event_record(
                type=_revocation_audit_type(reason),
                user=session.user,
                method=session.method,
                origin=origin,
                session_id=session.pk,
                detail=f"reason: {reason}{by}",
            )
    metrics.sessions_revoked_record(reason=reason, count=revoked)
    return revoked


def sessions_revoke(
    *,
    sessions: list[Session] | None = None,
    user: User | None = None,
    except_session_id: uuid.UUID | None = None,
    reason: str,
    actor: User | None = None,
    origin: RequestOrigin | None = None,
) -> int:
    """Revoke the given sessions, or all of a user's (but ``except_session_id``); returns how many.

    The cache is told first (503 ``auth_unavailable`` if it cannot be, and nothing changes).
    """
    if sessions is None and user is None:
        raise ValueError("Pass sessions or a user.")
    with transaction.atomic():
        if sessions is None:
            # Locked, then looked for: a sign-in under way is found, or sees this (accounts.locks).
            user_row_lock(user_id=user.pk)
            sessions = _sessions_of(user=user, except_session_id=except_session_id)
        session_cache.sessions_revoked_mark(session_ids=[session.pk for session in sessions])
        if user is not None:  # every session: a sign-in halfway (its second step to come) would be one more
            SignInChallenge.objects.filter(user=user, purpose=ChallengePurpose.SECOND_FACTOR).delete()
        return _session_rows_revoke(sessions=sessions, reason=reason, actor=actor, origin=origin)


def session_logout(*, session: Session, origin: RequestOrigin) -> None:
    """Sign out: revoke the session (found by ``selectors.token_session``)."""
    sessions_revoke(sessions=[session], reason=SessionRevokedReason.LOGOUT, origin=origin)


def user_session_revoke(*, user: User, session_id: uuid.UUID, origin: RequestOrigin) -> None:
    """The user ends one of their own sessions; someone else's is a 404, like a missing one."""
    session = Session.objects.filter(pk=session_id, user=user, revoked_at=None).select_related("user").first()
    if session is None:
        raise NotFound()
    sessions_revoke(sessions=[session], reason=SessionRevokedReason.USER, actor=user, origin=origin)


# --- users -----------------------------------------------------------------------------------


def _claims_forget(user_ids: list[int]) -> None:
    try:
        session_cache.claims_cache_forget(user_ids=user_ids)
    except AuthUnavailable:
        pass  # cached claims expire within CLAIMS_CACHE_TTL; the API itself reads the database


def user_claims_cache_forget(*, instance: User, **signal) -> None:
    """Signal receiver: a user row changed, so what the cache says about the user may be stale."""
    _claims_forget([instance.pk])
    transaction.on_commit(lambda: _claims_forget([instance.pk]))


def users_claims_bump(*, user_ids: list[int]) -> None:
    """Record that the users' token claims (scopes, email, name) changed: tokens get re-issued.
    The cached claims are forgotten now and once committed, so a request between the two cannot
    keep the old ones; a cache outage does not stop the change (``CLAIMS_CACHE_TTL`` bounds it)."""
    if not user_ids:
        return
    User.objects.filter(pk__in=user_ids).update(claims_version=F("claims_version") + 1)
    _claims_forget(user_ids)
    transaction.on_commit(lambda: _claims_forget(user_ids))


def user_deactivate(*, user: User, actor: User | None = None) -> bool:
    """Disable the account: its sessions, tokens and what it sent end (taken_back); False: cache not told.

    Unlike a logout, a deactivation always goes through: the database's ``is_active`` is read
    by every API request, so the user is refused at once either way. The cache only speeds up
    gateways: if it is down, a thread keeps telling it every second until it answers, for
    ``CLAIMS_CACHE_TTL``; after that the claims it held have expired on their own.
    """
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(is_active=False, claims_version=F("claims_version") + 1)
        user.is_active = False
        sessions = _sessions_of(user=user)
        _session_rows_revoke(
            sessions=sessions, reason=SessionRevokedReason.DEACTIVATED, actor=actor, origin=None
        )
        token_hashes = user_access_tokens_revoke(user=user, actor=actor)  # they die with the account
        account_taken_back(user=user, actor=actor, why="account was deactivated")
        account_change_record(type=AuditEventType.ACCOUNT_DEACTIVATED, user=user, actor=actor)

    def cache_tell() -> None:
        session_cache.sessions_revoked_mark(
            session_ids=[session.pk for session in sessions], account_disabled=True
        )
        session_cache.claims_cache_forget(user_ids=[user.pk])
        session_cache.access_tokens_forget(token_hashes=token_hashes)

    try:
        cache_tell()
    except AuthUnavailable:
        session_cache.tell_until_it_answers(cache_tell, within=settings.CLAIMS_CACHE_TTL)
        return False
    return True


def user_delete(*, user: User, actor: User | None = None) -> bool:
    """Delete the account for good: deactivated first, so that its sessions and tokens end
    everywhere at once, then its row with what is only its own (sessions, factors, tokens). The
    security audit keeps the account's events, unlinked. False: as ``user_deactivate``. An
    account with grants is deleted through ``clusters.services.account_delete``."""
    told = user_deactivate(user=user, actor=actor)
    account_change_record(type=AuditEventType.ACCOUNT_DELETED, user=user, actor=actor)  # kept, unlinked
    user_id = user.pk
    user.delete()
    logger.info("user deleted", extra={"user_id": user_id, "actor_id": getattr(actor, "pk", None)})
    return told
