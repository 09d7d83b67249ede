"""The cache half of a session: its idle timer, its revocation marker, and its user's current claims.

A session is a database row (the durable record, the refresh family) plus three cache entries
that every authenticated request reads in one call (with Redis, usually from this process's
copies, which Redis keeps current: ``config.cache_mirror``):

* ``auth:session:<sid>`` — ``{"uid", "seen", "end", "facts"}``, alive for ``JWT_TTL``: the idle
  timer, and how the session signed in (its clients' sign-in requirements are checked against
  that on every request). Gone means the session went idle. It is extended only once
  ``idle_timer_precision()`` has passed since the last extension, so a busy session costs a
  cache write a minute, not one a request.
* ``auth:revoked:<sid>`` — written *before* the database marks a session revoked, and kept
  for longer than any access token of that session can live. A request that raced the
  revocation and re-wrote the idle timer cannot bring the session back: the marker wins.
  If the marker cannot be written, the revocation is refused (503) and the database is not
  touched, so the answer the user gets is always the truth.
* ``auth:claims:v4:<uid>`` — the user's email, name, scope (with each client's permissions and
  sign-in requirements), active and staff flags, claims version and second-factor state: what
  gateways are told about the user, and what the API's views see of them
  (``accounts.models.SessionUser``), so an authenticated request reads no database row.
  Services forget it whenever they change those facts; it also expires after
  ``CLAIMS_CACHE_TTL``, so a change made behind the services' back (a shell, a data
  migration) reaches ``/validate`` within that time.

Claims and personal access tokens are read from the database by whichever request misses them,
while a change may forget them at the same moment. Each such entry has an *epoch* key
(``auth:claims-epoch:<uid>``, ``auth:pat-epoch:<sha256>``), set to a new random value whenever the
entry is forgotten. An entry is written with the epoch read *before* its database read and
counts only while that epoch is still current: a request that read a row just before a change,
and writes after the change forgot the entry, cannot put the old facts back. Epoch keys live an
hour longer than the entries, which outlives any entry written under the epoch before; like the
revocation markers they must not be evicted early (Redis: ``noeviction`` or a ``volatile-*``
policy with room to spare).

Every cache failure is raised as 503 ``auth_unavailable``: authentication fails closed.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import cache

from accounts.scopes import SignInFacts
from config.cache import CACHE_ERRORS
from config.cache_mirror import CacheMirror
from config.errors import AuthUnavailable
from config.outages import cache_outage

logger = logging.getLogger(__name__)

# A revocation marker outlives every access token issued before the revocation by this much.
REVOKED_MARKER_MARGIN = timedelta(minutes=1)
IDLE_TIMER_PRECISION_MAX = timedelta(minutes=1)
CATCH_UP_INTERVAL = 1.0  # seconds between tries to tell a cache that was down
EPOCH_MARGIN = timedelta(hours=1)


# What every authenticated request reads, copied in each process while Redis says it is unchanged.
_hot_entries = CacheMirror(prefixes=("auth:session:", "auth:revoked:", "auth:claims:", "auth:claims-epoch:"))


def _session_key(session_id: uuid.UUID | str) -> str:
    return f"auth:session:{session_id}"


def _revoked_key(session_id: uuid.UUID | str) -> str:
    return f"auth:revoked:{session_id}"


def _claims_key(user_id: int) -> str:
    # The version names the shape of the entry: a new shape reads no entry an older release wrote.
    return f"auth:claims:v5:{user_id}"


def _claims_epoch_key(user_id: int) -> str:
    return f"auth:claims-epoch:{user_id}"


@dataclass(frozen=True)
class CachedClaims:
    """What tokens and gateways say about a user, as the database had it when cached."""

    email: str
    name: str
    scope: str
    permissions: dict  # client -> its permissions (empty for operators, whose scope is "*")
    requirements: dict  # client -> its sign-in requirement (SignInRequirement.as_dict), if any
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
    revoked_as_disabled: bool  # revoked because its account was deactivated (account_disabled)
    claims: CachedClaims | None
    facts: SignInFacts
    claims_epoch: str | None  # what claims read from the database now must be written with


def idle_timer_precision() -> timedelta:
    """How stale the idle timer may be: the timeout is ``JWT_TTL`` minus at most this."""
    return min(IDLE_TIMER_PRECISION_MAX, settings.JWT_TTL / 10)


def _outage(error: Exception, doing: str) -> AuthUnavailable:
    cache_outage.report(error)
    return AuthUnavailable(
        f"Sign-in is temporarily unavailable (the session store failed while {doing}); try again shortly."
    )


def session_cache_read(*, session_id: uuid.UUID, user_id: int) -> CachedSession:
    """The session's idle timer, revocation marker and its user's claims, in one call."""
    keys = [
        _session_key(session_id),
        _revoked_key(session_id),
        _claims_key(user_id),
        _claims_epoch_key(user_id),
    ]
    try:
        found = _hot_entries.get_many(keys)
    except CACHE_ERRORS as error:
        raise _outage(error, "reading a session") from error
    timer = found.get(keys[0])
    if isinstance(timer, dict) and time.time() - timer["seen"] >= settings.JWT_TTL.total_seconds():
        timer = None  # idle: its entry's expiry, which a copy (or a cache's lagging clean-up) may outlive
    epoch = found.get(keys[3])
    return CachedSession(
        seen=timer["seen"] if isinstance(timer, dict) else None,
        user_id=timer["uid"] if isinstance(timer, dict) else None,
        ends_at=datetime.fromtimestamp(timer["end"], tz=UTC) if isinstance(timer, dict) else None,
        revoked=keys[1] in found,
        revoked_as_disabled=found.get(keys[1]) == REVOKED_AS_DISABLED,
        claims=_claims_current(found.get(keys[2]), epoch),
        facts=_facts(timer.get("facts") if isinstance(timer, dict) else None),
        claims_epoch=epoch,
    )


def _claims_current(entry: object, epoch: str | None) -> CachedClaims | None:
    value = _guarded_value(entry, epoch)
    return CachedClaims(**value) if value is not None else None


# --- Entries a change may forget while a request is filling them (see the module's docstring) ---


def _epoch_ttl() -> float:
    # An epoch must outlive every entry written under the one before it: such an entry is written
    # within one request of the change (its database read), and lives CLAIMS_CACHE_TTL. An hour
    # covers any request; then the key goes, so revoked tokens' epochs do not pile up.
    return settings.CLAIMS_CACHE_TTL.total_seconds() + EPOCH_MARGIN.total_seconds()


def _guarded_value(entry: object, epoch: str | None) -> dict | None:
    """The cached value, unless it was forgotten after it was read from the database."""
    if isinstance(entry, dict) and entry.get("epoch") == epoch and isinstance(entry.get("value"), dict):
        return entry["value"]
    return None


def _guarded_read(key: str, epoch_key: str, doing: str) -> tuple[dict | None, str | None]:
    try:
        found = cache.get_many([key, epoch_key])
    except CACHE_ERRORS as error:
        raise _outage(error, doing) from error
    epoch = found.get(epoch_key)
    return _guarded_value(found.get(key), epoch), epoch


def _guarded_write(key: str, value: dict, epoch: str | None, doing: str) -> None:
    try:
        cache.set(key, {"epoch": epoch, "value": value}, timeout=settings.CLAIMS_CACHE_TTL.total_seconds())
    except CACHE_ERRORS as error:
        raise _outage(error, doing) from error


def _guarded_forget(keys: dict[str, str], doing: str) -> None:
    """Forget entries (``{key: its epoch key}``), and any a request read before this is writing."""
    if not keys:
        return
    try:
        cache.set_many({epoch_key: uuid.uuid4().hex for epoch_key in keys.values()}, timeout=_epoch_ttl())
        cache.delete_many(list(keys))
    except CACHE_ERRORS as error:
        raise _outage(error, doing) from error


def _facts(raw: object) -> SignInFacts:
    """How the session signed in; an entry without them (an older release's) satisfies no requirement."""
    if not isinstance(raw, dict):
        return SignInFacts()
    return SignInFacts(
        method=raw.get("method", ""),
        amr=tuple(raw.get("amr", ())),
        google_domain=raw.get("hd", ""),
        signed_in_at=raw.get("at", 0.0),
    )


def session_timer_due(*, seen: float) -> bool:
    return time.time() - seen >= idle_timer_precision().total_seconds()


def session_timer_start(
    *, session_id: uuid.UUID, user_id: int, ends_at: datetime, facts: SignInFacts
) -> None:
    """Start (or extend) the session's idle timer: it ends ``JWT_TTL`` from now."""
    entry = {
        "uid": user_id,
        "seen": time.time(),
        "end": ends_at.timestamp(),
        "facts": {
            "method": facts.method,
            "amr": list(facts.amr),
            "hd": facts.google_domain,
            "at": facts.signed_in_at,
        },
    }
    try:
        cache.set(_session_key(session_id), entry, timeout=settings.JWT_TTL.total_seconds())
    except CACHE_ERRORS as error:
        raise _outage(error, "starting a session's idle timer") from error
    finally:
        _hot_entries.forget([_session_key(session_id)])


REVOKED_AS_DISABLED = 2  # the revocation marker's value for a deactivated account's sessions (else 1)


def sessions_revoked_mark(*, session_ids: Iterable[uuid.UUID], account_disabled: bool = False) -> None:
    """Mark sessions revoked and stop their idle timers; raises 503 if the cache cannot take it.

    ``account_disabled``: their account was deactivated, which their requests are told (in the
    marker, so that telling costs no database read)."""
    session_ids = list(session_ids)
    if not session_ids:
        return
    lifetime = max(settings.JWT_ACCESS_TTL, settings.JWT_TTL) + REVOKED_MARKER_MARGIN
    marker = REVOKED_AS_DISABLED if account_disabled else 1
    try:
        cache.set_many({_revoked_key(sid): marker for sid in session_ids}, timeout=lifetime.total_seconds())
        cache.delete_many([_session_key(sid) for sid in session_ids])
    except CACHE_ERRORS as error:
        raise _outage(error, "revoking sessions") from error
    finally:
        _hot_entries.forget(
            [_revoked_key(sid) for sid in session_ids] + [_session_key(sid) for sid in session_ids]
        )


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


def claims_cache_write(*, user_id: int, claims: CachedClaims, epoch: str | None) -> None:
    """Cache claims read from the database; ``epoch``: the one read before that database read."""
    try:
        _guarded_write(_claims_key(user_id), asdict(claims), epoch, "caching a user's claims")
    finally:
        _hot_entries.forget([_claims_key(user_id)])


def claims_cache_forget(*, user_ids: Iterable[int]) -> None:
    """Drop cached claims, and any a request is about to write from an older read of the database."""
    keys = {_claims_key(user_id): _claims_epoch_key(user_id) for user_id in user_ids}
    try:
        _guarded_forget(keys, "forgetting a user's claims")
    finally:
        _hot_entries.forget([*keys, *keys.values()])


def claims_cache_read(*, user_id: int) -> tuple[CachedClaims | None, str | None]:
    """The cached claims (None: not cached, or forgotten since) and the epoch to write new ones with."""
    value, epoch = _guarded_read(_claims_key(user_id), _claims_epoch_key(user_id), "reading a user's claims")
    return (CachedClaims(**value) if value is not None else None), epoch


# --- Personal access tokens: ``auth:pat:<sha256>`` ------------------------------------------
# What a token's row says (user, scopes, expiry, when last recorded as used), for
# CLAIMS_CACHE_TTL: revocation and scope changes through the services forget it first.


def _access_token_key(token_hash: str) -> str:
    return f"auth:pat:v2:{token_hash}"


def _access_token_epoch_key(token_hash: str) -> str:
    return f"auth:pat-epoch:{token_hash}"


def access_token_cache_read(*, token_hash: str) -> tuple[dict | None, str | None]:
    """The cached token (None: not cached, or forgotten since) and the epoch to write it with."""
    keys = (_access_token_key(token_hash), _access_token_epoch_key(token_hash))
    return _guarded_read(*keys, "reading an access token")


def access_token_cache_write(*, token_hash: str, entry: dict, epoch: str | None) -> None:
    """Cache a token's row; ``epoch``: the one read before that row was read."""
    _guarded_write(_access_token_key(token_hash), entry, epoch, "caching an access token")


def access_tokens_forget(*, token_hashes: Iterable[str]) -> None:
    """Drop cached tokens (raises 503 when the cache cannot be told, so callers change nothing)."""
    keys = {_access_token_key(token_hash): _access_token_epoch_key(token_hash) for token_hash in token_hashes}
    _guarded_forget(keys, "forgetting access tokens")


def tell_until_it_answers(tell: Callable[[], None], *, within: timedelta) -> None:
    """Retry ``tell`` every second, on a thread of its own, until the cache takes it or ``within``
    has passed (by then what the cache held has expired). One process remembers it: enough for a
    window the cache's own expiry closes anyway."""

    def retry() -> None:
        deadline = time.monotonic() + within.total_seconds()
        while time.monotonic() < deadline:
            time.sleep(CATCH_UP_INTERVAL)
            try:
                tell()
                return
            except AuthUnavailable:
                continue

    threading.Thread(target=retry, name="cache-catch-up", daemon=True).start()
