"""The cache half of a session: its idle timer, its revocation marker, and its user's current claims.

A session is a database row (the durable record, the refresh family) plus three cache entries
that every authenticated request reads in one round trip (``get_many``):

* ``auth:session:<sid>`` — ``{"uid", "seen", "end"}``, alive for ``JWT_TTL``: the idle timer. Gone
  means the session went idle. It is extended only once ``idle_timer_precision()`` has passed
  since the last extension, so a busy session costs a cache write a minute, not one a request.
* ``auth:revoked:<sid>`` — written *before* the database marks a session revoked, and kept
  for longer than any access token of that session can live. A request that raced the
  revocation and re-wrote the idle timer cannot bring the session back: the marker wins.
  If the marker cannot be written, the revocation is refused (503) and the database is not
  touched, so the answer the user gets is always the truth.
* ``auth:claims:v3:<uid>`` — the user's email, name, scope, active and staff flags,
  claims version and second-factor state: what gateways are told about the user, and what the API's views see of
  them (``accounts.models.SessionUser``), so an authenticated request reads no database row. Services forget it whenever they change those facts; it also expires after
  ``CLAIMS_CACHE_TTL``, so a change made behind the services' back (a shell, a data
  migration) reaches ``/validate`` within that time.

Every cache failure is raised as 503 ``auth_unavailable``: authentication fails closed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache

from config.cache import CACHE_ERRORS
from config.errors import AuthUnavailable
from config.outages import cache_outage

logger = logging.getLogger(__name__)

# A revocation marker outlives every access token issued before the revocation by this much.
REVOKED_MARKER_MARGIN = timedelta(minutes=1)
IDLE_TIMER_PRECISION_MAX = timedelta(minutes=1)


def _session_key(session_id: uuid.UUID | str) -> str:
    return f"auth:session:{session_id}"


def _revoked_key(session_id: uuid.UUID | str) -> str:
    return f"auth:revoked:{session_id}"


def _claims_key(user_id: int) -> str:
    # The version names the shape of the entry: a new shape reads no entry an older release wrote.
    return f"auth:claims:v3:{user_id}"


@dataclass(frozen=True)
class CachedClaims:
    """What tokens and gateways say about a user, as the database had it when cached."""

    email: str
    name: str
    scope: str
    active: bool
    staff: bool
    operator: bool
    claims_version: int
    mfa_required: bool  # the user must have a second factor (staff policy, or an operator said so)
    mfa_enrolled: bool  # the user has one


@dataclass(frozen=True)
class CachedSession:
    """One round trip's answer: the idle timer (None: idle), the marker, the claims (None: not cached)."""

    seen: float | None
    user_id: int | None
    ends_at: datetime | None  # the session's absolute end (``JWT_SESSION_MAX`` after sign-in)
    revoked: bool
    claims: CachedClaims | None


def idle_timer_precision() -> timedelta:
    """How stale the idle timer may be: the timeout is ``JWT_TTL`` minus at most this."""
    return min(IDLE_TIMER_PRECISION_MAX, settings.JWT_TTL / 10)


def _outage(error: Exception, doing: str) -> AuthUnavailable:
    cache_outage.report(error)
    return AuthUnavailable(
        f"Sign-in is temporarily unavailable (the session store failed while {doing}); try again shortly."
    )


def session_cache_read(*, session_id: uuid.UUID, user_id: int) -> CachedSession:
    """The session's idle timer, revocation marker and its user's claims, in one round trip."""
    keys = [_session_key(session_id), _revoked_key(session_id), _claims_key(user_id)]
    try:
        found = cache.get_many(keys)
    except CACHE_ERRORS as error:
        raise _outage(error, "reading a session") from error
    timer = found.get(keys[0])
    claims = found.get(keys[2])
    return CachedSession(
        seen=timer["seen"] if isinstance(timer, dict) else None,
        user_id=timer["uid"] if isinstance(timer, dict) else None,
        ends_at=datetime.fromtimestamp(timer["end"], tz=UTC) if isinstance(timer, dict) else None,
        revoked=keys[1] in found,
        claims=CachedClaims(**claims) if isinstance(claims, dict) else None,
    )


def session_timer_due(*, seen: float) -> bool:
    return time.time() - seen >= idle_timer_precision().total_seconds()


def session_timer_start(*, session_id: uuid.UUID, user_id: int, ends_at: datetime) -> None:
    """Start (or extend) the session's idle timer: it ends ``JWT_TTL`` from now."""
    try:
        cache.set(
            _session_key(session_id),
            {"uid": user_id, "seen": time.time(), "end": ends_at.timestamp()},
            timeout=settings.JWT_TTL.total_seconds(),
        )
    except CACHE_ERRORS as error:
        raise _outage(error, "starting a session's idle timer") from error


def sessions_revoked_mark(*, session_ids: Iterable[uuid.UUID]) -> None:
    """Mark sessions revoked and stop their idle timers; raises 503 if the cache cannot take it."""
    session_ids = list(session_ids)
    if not session_ids:
        return
    lifetime = max(settings.JWT_ACCESS_TTL, settings.JWT_TTL) + REVOKED_MARKER_MARGIN
    try:
        cache.set_many({_revoked_key(sid): 1 for sid in session_ids}, timeout=lifetime.total_seconds())
        cache.delete_many([_session_key(sid) for sid in session_ids])
    except CACHE_ERRORS as error:
        raise _outage(error, "revoking sessions") from error


def sessions_alive(*, session_ids: Iterable[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these sessions are neither idle nor marked revoked."""
    session_ids = list(session_ids)
    if not session_ids:
        return set()
    keys = [_session_key(sid) for sid in session_ids] + [_revoked_key(sid) for sid in session_ids]
    try:
        found = cache.get_many(keys)
    except CACHE_ERRORS as error:
        raise _outage(error, "listing sessions") from error
    return {sid for sid in session_ids if _session_key(sid) in found and _revoked_key(sid) not in found}


def claims_cache_write(*, user_id: int, claims: CachedClaims) -> None:
    try:
        cache.set(_claims_key(user_id), asdict(claims), timeout=settings.CLAIMS_CACHE_TTL.total_seconds())
    except CACHE_ERRORS as error:
        raise _outage(error, "caching a user's claims") from error


def claims_cache_forget(*, user_ids: Iterable[int]) -> None:
    """Drop cached claims; the next request reads them from the database again."""
    try:
        cache.delete_many([_claims_key(user_id) for user_id in user_ids])
    except CACHE_ERRORS as error:
        raise _outage(error, "forgetting a user's claims") from error
