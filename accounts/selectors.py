"""Reads for users and sessions, and the one rule that says whether a token's session is alive."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string
from rest_framework_simplejwt.exceptions import TokenBackendError

from accounts import session_cache
from accounts.models import Passkey, RecoveryCode, SecondFactor, Session, TotpDevice, User
from accounts.scopes import CredentialScope, SignInFacts, UserScope, session_scope
from accounts.session_cache import CachedClaims
from accounts.tokens import KEYS_DIR_RECHECK_SECONDS, AccessToken, PortalToken, RefreshToken, key_ring
from config.errors import AccountDisabled, MfaEnrolmentRequired, SessionEnded, SessionIdle, TokenNotValid


class ScopeFunction(Protocol):
    def __call__(self, *, user: User) -> UserScope: ...


@cache
def _scope_function(path: str) -> ScopeFunction:
    return import_string(path)


def user_scope(*, user: User) -> UserScope:
    """What the user may act on now, as the app named by ``SCOPE_CLAIM_FUNCTION`` computes it.

    This is the one hook through which accounts learns what a user may act on (clients, their
    permissions and sign-in requirements): the clusters app owns them, and accounts must not
    import it.
    """
    if not settings.SCOPE_CLAIM_FUNCTION:
        return UserScope(scope="")
    return _scope_function(settings.SCOPE_CLAIM_FUNCTION)(user=user)


def user_scope_claim(*, user: User) -> str:
    """The user's clients (``*`` for operators), before any credential narrows them."""
    return user_scope(user=user).scope


def user_second_factors(*, user: User) -> list[str]:
    """The second factors the user can sign in with, in the order the app offers them.

    Plain EXISTS queries rather than one query annotated with all three: Django took three times
    as long to build that one as to ask these (every sign-in asks), and a user without a factor,
    the common case, needs only two.
    """
    factors = [
        factor
        for factor, devices in (
            (SecondFactor.TOTP, TotpDevice.objects.filter(user=user, confirmed_at__isnull=False)),
            (SecondFactor.WEBAUTHN, Passkey.objects.filter(user=user)),
        )
        if devices.exists()
    ]
    if factors and RecoveryCode.objects.filter(user=user, used_at=None).exists():
        factors.append(SecondFactor.RECOVERY)
    return [str(factor.value) for factor in factors]


def user_mfa_required(*, user: User) -> bool:
    """Whether the user must have a second factor: an operator said so, or staff under the policy."""
    return user.mfa_required or (user.is_staff and settings.MFA_REQUIRED_FOR_STAFF)


def user_claims(*, user: User) -> CachedClaims:
    """The user's claims from the database."""
    scope = user_scope(user=user)
    second_factors = user_second_factors(user=user)
    return CachedClaims(
        email=user.email,
        name=user.name,
        scope=scope.scope,
        permissions={client: list(permissions) for client, permissions in scope.permissions.items()},
        requirements={client: requirement.as_dict() for client, requirement in scope.requirements.items()},
        active=user.is_active,
        staff=user.is_staff,
        operator=user.is_operator,
        claims_version=user.claims_version,
        mfa_required=user_mfa_required(user=user),
        mfa_enrolled=bool(second_factors),
    )


def user_profile(*, user: User, scope: str | None = None) -> dict:
    """The contract's ``User`` body (``scope``: already known, e.g. from the live session)."""
    return {
        "id": user.pk,
        "email": user.email,
        "name": user.name,
        "isStaff": user.is_staff,
        "scopes": (user_scope_claim(user=user) if scope is None else scope).split(),
    }


# --- Session liveness -----------------------------------------------------------------------


@dataclass(frozen=True)
class LiveSession:
    """A session a verified token may use right now, and its user's current claims."""

    session_id: uuid.UUID
    user_id: int
    expires_at: datetime
    claims: CachedClaims
    timer_due: bool  # the idle timer should be extended (see session_cache.idle_timer_precision)
    facts: SignInFacts = SignInFacts()

    def credential_scope(self) -> CredentialScope:
        """The clients this session reaches now: its user's, less those whose requirements it misses."""
        return claims_session_scope(claims=self.claims, facts=self.facts)


def claims_session_scope(*, claims: CachedClaims, facts: SignInFacts) -> CredentialScope:
    """A session's scope (its access token's ``scope`` claim): none at all while its user must set
    up a second factor and has none, so that services verifying the token alone (with the JWKS)
    refuse it as the portal does."""
    if claims.mfa_required and not claims.mfa_enrolled:
        return CredentialScope(permissions={})
    return session_scope(
        scope=claims.scope,
        permissions=claims.permissions,
        requirements=claims.requirements,
        facts=facts,
        now=timezone.now(),
    )


def session_facts(session: Session) -> SignInFacts:
    """How a session signed in, from its row."""
    return SignInFacts(
        method=session.method,
        amr=tuple(session.amr),
        google_domain=session.google_domain,
        signed_in_at=session.created_at.timestamp(),
    )


def token_session(*, token: str | None) -> Session | None:
    """The open session a genuine refresh or access token belongs to, expired or not: a logout
    with the access token a client holds ends its session (None: a bad token, an ended session)."""
    try:
        claims = key_ring().backend.decode(token, verify_exp=False)
    except TokenBackendError:
        return None
    if claims["token_type"] not in {RefreshToken.token_type, AccessToken.token_type}:
        return None
    session = Session.objects.select_related("user").filter(pk=uuid_or_none(claims["sid"])).first()
    if session is None or str(session.user_id) != claims["sub"] or session.revoked_at is not None:
        return None
    return session


def uuid_or_none(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def _user_id(token: PortalToken) -> int | None:
    subject = token.get("sub")
    return int(subject) if isinstance(subject, str) and subject.isascii() and subject.isdigit() else None


def _claims_load(*, user_id: int, epoch: str | None) -> CachedClaims:
    """The user's claims from the database, cached under ``epoch`` (read before this read)."""
    user = User.objects.filter(pk=user_id).first()
    if user is None:
        raise TokenNotValid()
    claims = user_claims(user=user)
    session_cache.claims_cache_write(user_id=user_id, claims=claims, epoch=epoch)
    return claims


def user_claims_current(*, user_id: int) -> CachedClaims:
    """The user's claims from the cache, else from the database (then cached); TokenNotValid when gone."""
    claims, epoch = session_cache.claims_cache_read(user_id=user_id)
    return claims or _claims_load(user_id=user_id, epoch=epoch)


def session_live(*, token: PortalToken) -> LiveSession:
    """The live session of a verified token, or the typed error: the rule every path uses.

    Authentication, refresh and ``/validate`` all ask this. It reads the cache in one call
    (no database query) unless the user's claims are not cached. Raises ``SessionEnded``
    (revoked), ``SessionIdle`` (idle longer than ``JWT_TTL``), ``AccountDisabled`` or
    ``TokenNotValid`` (the token names another user than its session).
    """
    session_id, user_id = uuid_or_none(token.get("sid")), _user_id(token)
    if session_id is None or user_id is None:
        raise TokenNotValid()
    return session_id_live(session_id=session_id, user_id=user_id)


def session_id_live(*, session_id: uuid.UUID, user_id: int) -> LiveSession:
    """``session_live`` for a session known by its id (the admin's, bound to a portal session)."""
    cached = session_cache.session_cache_read(session_id=session_id, user_id=user_id)
    if cached.revoked:
        # A deactivation revokes every session too: its user hears why, from the marker itself.
        raise AccountDisabled() if cached.revoked_as_disabled else SessionEnded()
    if cached.seen is None or cached.ends_at is None:
        raise SessionIdle()
    if cached.user_id != user_id:
        raise TokenNotValid()
    if cached.ends_at <= timezone.now():
        raise SessionEnded()
    claims = cached.claims or _claims_load(user_id=user_id, epoch=cached.claims_epoch)
    if not claims.active:
        raise AccountDisabled()
    return LiveSession(
        session_id=session_id,
        user_id=user_id,
        expires_at=cached.ends_at,
        claims=claims,
        timer_due=session_cache.session_timer_due(seen=cached.seen),
        facts=cached.facts,
    )


def session_open(*, session_id: uuid.UUID, user_id: int) -> Session | None:
    """``user_id``'s session ``session_id`` while it is not revoked (None otherwise)."""
    return (
        Session.objects.filter(pk=session_id, user_id=user_id, revoked_at=None).select_related("user").first()
    )


def session_row_live(*, session_id: uuid.UUID, user_id: int) -> bool:
    """What the database alone knows of a session: not revoked, not past its end, user active.
    Only for when the session store is down (it alone knows idleness): the admin's fallback."""
    return Session.objects.filter(
        pk=session_id, user_id=user_id, revoked_at=None, expires_at__gt=timezone.now(), user__is_active=True
    ).exists()


def second_factor_policy_check(*, claims: CachedClaims, allowed: bool = False) -> None:
    """A user who must have a second factor and has none may only set one up (``allowed`` views)."""
    if claims.mfa_required and not claims.mfa_enrolled and not allowed:
        raise MfaEnrolmentRequired()


def session_active_list(*, user: User) -> list[Session]:
    """The user's sessions that can still be used: not revoked, not past their end, not idle."""
    return sessions_active_of(user_ids=[user.pk])


def sessions_active_of(*, user_ids: list[int]) -> list[Session]:
    """These users' sessions that can still be used, most recently seen first (one cache call)."""
    sessions = list(
        Session.objects.filter(user_id__in=user_ids, revoked_at=None, expires_at__gt=timezone.now()).order_by(
            "-last_seen_at"
        )
    )
    alive = session_cache.sessions_alive(session_ids=[session.pk for session in sessions])
    return [session for session in sessions if session.pk in alive]


def sessions_signed_by_count(*, signed_until: datetime | None) -> int:
    """Live sessions whose current refresh token may have been signed before ``signed_until`` (None: ever).

    A key signs from its creation or promotion until another key's creation or promotion, give
    or take the few seconds a running process takes to notice it (``KEYS_DIR_RECHECK_SECONDS``)
    and the whole-second ``iat``: the count errs on the side of sessions a retired key would end.
    """
    now = timezone.now()
    live = Session.objects.filter(
        revoked_at=None, expires_at__gt=now, current_refresh_payload__exp__gt=int(now.timestamp())
    )
    if signed_until is not None:
        latest = int(signed_until.timestamp() + KEYS_DIR_RECHECK_SECONDS)
        live = live.filter(current_refresh_payload__iat__lte=latest)
    return live.count()


@dataclass(frozen=True)
class SecurityOverview:
    totp: bool
    passkeys: list[Passkey]
    recovery_codes_left: int
    mfa_required: bool
    has_password: bool
    reauthenticated_until: datetime | None


def security_overview(*, user_id: int, session_id: uuid.UUID) -> SecurityOverview:
    user = User.objects.get(pk=user_id)
    session = Session.objects.filter(pk=session_id).only("authenticated_at").first()
    until = session.authenticated_at + settings.REAUTHENTICATION_WINDOW if session else None
    return SecurityOverview(
        totp=TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists(),
        passkeys=list(Passkey.objects.filter(user=user)),
        recovery_codes_left=RecoveryCode.objects.filter(user=user, used_at=None).count(),
        mfa_required=user_mfa_required(user=user),
        has_password=user.has_usable_password(),
        reauthenticated_until=until if until and until > timezone.now() else None,
    )
