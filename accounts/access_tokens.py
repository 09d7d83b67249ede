"""Personal access tokens for scripts and CI: made, listed, revoked, and recognised on requests.

A token is ``qpt_`` + 43 base62 characters (256 random bits) + a 6-character base62 CRC32 of
them, so secret scanners can recognise one and check it offline, as GitHub's tokens do. Only
its SHA-256 is stored (a 256-bit secret needs no slow hash); a request's token is found by its
display prefix and compared with ``hmac.compare_digest``, as django-rest-knox does.

A token can do at most what its user can do at each request, narrowed to its own scopes
(``accounts.scopes.token_scope``), and only on views that accept it; the user's deactivation
revokes it, and removal from a client takes the client out of its scopes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import uuid
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts import session_cache
from accounts.audit import RequestOrigin, audit_event_record
from accounts.locks import session_still_acting, user_row_lock
from accounts.models import AuditEventType, PersonalAccessToken, User
from accounts.scopes import CredentialScope, SignInFacts, session_scope, token_scope
from accounts.selectors import user_claims_current, user_scope
from accounts.session_cache import CachedClaims
from config.errors import (
    AccountDisabled,
    InvalidRequest,
    NotFound,
    TokenNotValid,
    TokenScopeExceeded,
)

TOKEN_PREFIX = "qpt_"  # noqa: S105  (the recognisable start of every token, not a secret)
_ALPHABET = string.digits + string.ascii_uppercase + string.ascii_lowercase
_BODY_LENGTH = 43  # 62**43 > 2**256
_CHECKSUM_LENGTH = 6  # 62**6 > 2**32
TOKEN_LENGTH = len(TOKEN_PREFIX) + _BODY_LENGTH + _CHECKSUM_LENGTH
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 8
# last_used_at is for people reading the list: written at most once a minute per token.
LAST_USED_PRECISION = timedelta(minutes=1)


def _base62(number: int, length: int) -> str:
    digits = []
    for _ in range(length):
        number, digit = divmod(number, 62)
        digits.append(_ALPHABET[digit])
    return "".join(reversed(digits))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECKSUM_LENGTH)


def access_token_secret_new() -> str:
    body = _base62(secrets.randbits(256), _BODY_LENGTH)
    return TOKEN_PREFIX + body + _checksum(body)


def access_token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def access_token_well_formed(secret: str) -> bool:
    """The shape and checksum: a typo or a truncated token is refused without a database query."""
    if len(secret) != TOKEN_LENGTH or not secret.startswith(TOKEN_PREFIX):
        return False
    # Every character checked, the checksum's too: compare_digest raises on a non-ASCII string
    # (a header's byte 0xE9 arrives as "é").
    if not all(char in _ALPHABET for char in secret[len(TOKEN_PREFIX) :]):
        return False
    body, checksum = secret[len(TOKEN_PREFIX) : -_CHECKSUM_LENGTH], secret[-_CHECKSUM_LENGTH:]
    return hmac.compare_digest(checksum, _checksum(body))


# --- creating, listing, revoking ----------------------------------------------------------


def _scopes_check(*, user: User, facts: SignInFacts, clients: dict[str, list[str]]) -> None:
    """Every client and permission asked for is one this session may use now (else 403)."""
    scope = user_scope(user=user)
    reach = session_scope(
        scope=scope.scope,
        permissions=scope.permissions,
        requirements={client: requirement.as_dict() for client, requirement in scope.requirements.items()},
        facts=facts,
        now=timezone.now(),
    )
    unknown = {permission for permissions in clients.values() for permission in permissions}
    unknown -= set(scope.token_permissions)
    if unknown:
        allowed = ", ".join(scope.token_permissions)
        raise InvalidRequest(fields={"clients": [f"Unknown permission(s); a token may have: {allowed}."]})
    for client, permissions in clients.items():
        if not all(reach.allows(client, permission) for permission in permissions):
            raise TokenScopeExceeded(
                f"This session cannot give a token {', '.join(permissions)} on {client}: "
                "a token can do at most what you can do now, from this session."
            )


def _lifetime_text(length: timedelta) -> str:
    """``30 days``, ``12 hours``, ``1 minute``: the largest unit that says it exactly."""
    seconds = int(length.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{seconds} seconds"


def access_token_create(
    *,
    user: User,
    session_id: uuid.UUID,
    facts: SignInFacts,
    name: str,
    expires_in: timedelta,
    clients: dict[str, list[str]],
    origin: RequestOrigin,
) -> tuple[PersonalAccessToken, str]:
    """A new token and its secret (shown once; only its hash is kept), made by the session
    ``session_id`` (signed in as ``facts`` says)."""
    if expires_in > settings.PAT_MAX_TTL:
        most = _lifetime_text(settings.PAT_MAX_TTL)
        raise InvalidRequest(fields={"expiresIn": [f"A token lives at most {most} (PAT_MAX_TTL)."]})
    secret, now = access_token_secret_new(), timezone.now()
    token = PersonalAccessToken(
        user=user,
        name=name,
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        token_hash=access_token_hash(secret),
        scopes={client: sorted(set(permissions)) for client, permissions in clients.items()},
        created_at=now,
        expires_at=now + expires_in,
    )
    token.full_clean(exclude=["user"], validate_constraints=False)
    with transaction.atomic():
        # Checked under the user's row lock (accounts.locks): a password change or a removal from
        # a client either finds this token, or has ended the session or the grant it checks.
        session_still_acting(user_id=user.pk, session_id=session_id)
        _scopes_check(user=user, facts=facts, clients=clients)
        token.save(force_insert=True)
        audit_event_record(
            type=AuditEventType.ACCESS_TOKEN_CREATED,
            user=user,
            origin=origin,
            detail=f"{token.prefix}… {name!r}: {_scopes_text(token.scopes)}",
        )
    return token, secret


def _scopes_text(scopes: dict[str, list[str]]) -> str:
    return "; ".join(f"{client} {'/'.join(permissions)}" for client, permissions in sorted(scopes.items()))


def access_token_list(*, user: User) -> QuerySet[PersonalAccessToken]:
    """The user's tokens that are not revoked (expired ones too, marked by their date)."""
    return PersonalAccessToken.objects.filter(user=user, revoked_at=None).order_by("-created_at")


def access_tokens_of_client(*, client: str) -> QuerySet[PersonalAccessToken]:
    """Live tokens that reach ``client`` (for its admins)."""
    return (
        PersonalAccessToken.objects.filter(
            revoked_at=None, expires_at__gt=timezone.now(), scopes__has_key=client
        )
        .select_related("user")
        .order_by("-created_at")
    )


def access_tokens_revoke(
    *,
    tokens: list[PersonalAccessToken],
    actor: User | None,
    origin: RequestOrigin | None = None,
    why: str = "",
) -> int:
    """Revoke tokens: the cache forgets them first (503 and no change when it cannot), and again
    once the revocation commits, so that a request in between cannot cache a token still live."""
    hashes = [token.token_hash for token in tokens]
    session_cache.access_tokens_forget(token_hashes=hashes)
    revoked = access_token_rows_revoke(tokens=tokens, actor=actor, origin=origin, why=why)
    transaction.on_commit(lambda: session_cache.access_tokens_forget(token_hashes=hashes), robust=True)
    return revoked


def access_token_rows_revoke(
    *,
    tokens: list[PersonalAccessToken],
    actor: User | None,
    origin: RequestOrigin | None = None,
    why: str = "",
) -> int:
    """Mark tokens revoked in the database and audit it; the caller tells the cache."""
    revoked, now = 0, timezone.now()
    with transaction.atomic():
        for token in tokens:
            if not PersonalAccessToken.objects.filter(pk=token.pk, revoked_at=None).update(
                revoked_at=now, revoked_by_email=actor.email if actor else ""
            ):
                continue
            revoked += 1
            by = f" by {actor.email}" if actor and actor.pk != token.user_id else ""
            audit_event_record(
                type=AuditEventType.ACCESS_TOKEN_REVOKED,
                user=token.user,
                origin=origin,
                detail=f"{token.prefix}… {token.name!r}{by}{why}",
            )
    return revoked


def user_access_token_revoke(*, user: User, token_id: int, origin: RequestOrigin) -> None:
    """The user revokes one of their tokens; someone else's is a 404, like a missing one."""
    token = PersonalAccessToken.objects.select_related("user").filter(pk=token_id, user_id=user.pk).first()
    if token is None or token.revoked_at is not None:
        raise NotFound()
    access_tokens_revoke(tokens=[token], actor=user, origin=origin)


def access_tokens_client_remove(
    *, client: str, actor: User | None, why: str, user_id: int | None = None, token_id: int | None = None
) -> int:
    """Take ``client`` out of the user's tokens (or one token); tokens left empty die. Returns how many
    tokens reached the client."""
    tokens = PersonalAccessToken.objects.select_related("user").filter(
        revoked_at=None, scopes__has_key=client
    )
    if user_id is not None:
        tokens = tokens.filter(user_id=user_id)
    if token_id is not None:
        tokens = tokens.filter(pk=token_id)
    tokens = list(tokens)
    # Forgotten first (503 and no change when the cache cannot) and again once committed, so a
    # request in between cannot cache the old scopes.
    hashes = [token.token_hash for token in tokens]
    session_cache.access_tokens_forget(token_hashes=hashes)
    emptied = []
    for token in tokens:
        scopes = {name: permissions for name, permissions in token.scopes.items() if name != client}
        if scopes:
            PersonalAccessToken.objects.filter(pk=token.pk).update(scopes=scopes)
        else:
            emptied.append(token)
    access_token_rows_revoke(tokens=emptied, actor=actor, why=f" ({why})")
    transaction.on_commit(lambda: session_cache.access_tokens_forget(token_hashes=hashes), robust=True)
    return len(tokens)


def _live_tokens_of(user: User) -> list[PersonalAccessToken]:
    return list(PersonalAccessToken.objects.select_related("user").filter(user=user, revoked_at=None))


def user_access_tokens_revoke(*, user: User, actor: User | None) -> list[str]:
    """A deactivated user's tokens die with the account (reactivation does not bring them back).

    Database only, in the deactivation's transaction, whether or not the cache answers; returns
    the hashes the caller makes the cache forget.
    """
    tokens = _live_tokens_of(user)
    access_token_rows_revoke(tokens=tokens, actor=actor, why=" (account deactivated)")
    return [token.token_hash for token in tokens]


def user_access_tokens_end(
    *, user: User, actor: User | None, why: str, origin: RequestOrigin | None = None
) -> int:
    """Every live token of the user ends, when the account is taken back (a password reset, or an
    operator setting the password): someone who knew the old password may have made one."""
    with transaction.atomic():
        # Locked, then looked for: a token being made is found, or refused (accounts.locks).
        user_row_lock(user_id=user.pk)
        return access_tokens_revoke(tokens=_live_tokens_of(user), actor=actor, origin=origin, why=f" ({why})")


# --- recognising a token on a request ---------------------------------------------------------


@dataclass(frozen=True)
class LiveAccessToken:
    """A token a request may use right now, its user's current claims, and what it reaches."""

    token_id: int
    token_hash: str
    user_id: int
    claims: CachedClaims
    scope: CredentialScope
    used_at: float  # when its use was last written to the database


def _entry_load(secret: str, token_hash: str, epoch: str | None) -> dict:
    """The token's row as the cache keeps it (cached under ``epoch``, read before this read);
    TokenNotValid for an unknown or revoked token."""
    candidates = PersonalAccessToken.objects.filter(
        prefix=secret[:DISPLAY_PREFIX_LENGTH], revoked_at=None
    ).values("pk", "user_id", "token_hash", "scopes", "expires_at", "last_used_at")
    for row in candidates:
        if hmac.compare_digest(row["token_hash"], token_hash):
            used = row["last_used_at"].timestamp() if row["last_used_at"] else 0.0
            entry = {
                "id": row["pk"],
                "uid": row["user_id"],
                "scopes": row["scopes"],
                "exp": row["expires_at"].timestamp(),
                "used": used,
            }
            session_cache.access_token_cache_write(token_hash=token_hash, entry=entry, epoch=epoch)
            return entry
    raise TokenNotValid()


def access_token_live(*, secret: str) -> LiveAccessToken:
    """The live token ``secret`` names, or the typed error (token_not_valid, account_disabled)."""
    if not access_token_well_formed(secret):
        raise TokenNotValid()
    token_hash = access_token_hash(secret)
    entry, epoch = session_cache.access_token_cache_read(token_hash=token_hash)
    entry = entry or _entry_load(secret, token_hash, epoch)
    if entry["exp"] <= timezone.now().timestamp():
        raise TokenNotValid("This personal access token has expired.")
    claims = user_claims_current(user_id=entry["uid"])
    if not claims.active:
        raise AccountDisabled()
    return LiveAccessToken(
        token_id=entry["id"],
        token_hash=token_hash,
        user_id=entry["uid"],
        claims=claims,
        scope=token_scope(scope=claims.scope, permissions=claims.permissions, granted=entry["scopes"]),
        used_at=entry["used"],
    )


def access_token_use_record(*, live: LiveAccessToken, origin: RequestOrigin) -> None:
    """Record when and from where the token was last used, at most once a minute."""
    now = timezone.now()
    if now - datetime.fromtimestamp(live.used_at, tz=UTC) < LAST_USED_PRECISION:
        return
    PersonalAccessToken.objects.filter(pk=live.token_id).update(last_used_at=now, last_used_from=origin.ip)
    # Read again rather than rebuilt from `live`, and written under the epoch read: a token
    # revoked meanwhile has lost its entry and must not get one back.
    entry, epoch = session_cache.access_token_cache_read(token_hash=live.token_hash)
    if entry is not None:
        session_cache.access_token_cache_write(
            token_hash=live.token_hash, entry={**entry, "used": now.timestamp()}, epoch=epoch
        )
