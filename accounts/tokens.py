"""Token and key mechanics: the signing key ring, simplejwt token classes bound to it, JWKS.

simplejwt's ``TokenBackend`` signs with one key and writes no ``kid``. Here a :class:`KeyRing`
holds one signing key and any number of verification-only keys, every token's header names
its key, and decoding accepts only the configured algorithm and a ``kid`` the ring knows:
``alg: none``, an HS256 token "signed" with a public key, and unknown or retired keys fail.

Keys come from ``JWT_PRIVATE_KEYS`` (PEMs, the first one signs) or from ``JWT_KEYS_DIR``
(``<kid>.pem`` files plus a ``current`` file naming the signing key; managed by
``manage.py jwt_keys``), or, for HS256, from ``JWT_SECRET``. A key's ``kid`` is its RFC 7638
thumbprint (hex), so the same key always has the same id wherever it is loaded.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import TokenBackendError, TokenBackendExpiredToken, TokenError
from rest_framework_simplejwt.tokens import Token

from accounts.keys import (
    CURRENT_KEY_FILE,
    key_file_created,
    key_thumbprint,
    keys_dir_add,
    keys_dir_mtime,
    keys_dir_scan,
    public_jwk,
)
from config.errors import AuthUnavailable

logger = logging.getLogger(__name__)

SUPPORTED_ALGORITHMS = ("RS256", "EdDSA", "HS256")
# How often a running process looks at JWT_KEYS_DIR for rotated or retired keys.
KEYS_DIR_RECHECK_SECONDS = 5.0
VERIFIED_TOKENS_CACHED = 8192
MAX_TOKEN_LENGTH = 8192
REQUIRED_CLAIMS = ("iss", "aud", "sub", "sid", "jti", "token_type", "iat", "exp")


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: Any  # a cryptography private key, or bytes for HS256
    public_key: Any  # a cryptography public key, or the same bytes for HS256


@dataclass(eq=False)
class KeyRing:
    """The process's keys and the one token backend that signs and verifies with them.

    A rotated or retired key builds a new ring (``key_ring``), and with it a new backend whose
    memory of verified tokens starts empty: nothing about old keys outlives the ring.
    """

    algorithm: str
    signing: SigningKey
    verification: dict[str, Any] = field(default_factory=dict)  # kid -> public key (or secret)
    source_mtime: float | None = None
    # What in JWT_KEYS_DIR could not be used (left out of this ring, or, when this ring was kept
    # because the folder could not be loaded again, why), for the log and the status page.
    problems: str | None = None
    unusable: bool = False  # nothing may be signed or verified with it (see key_ring)

    def public_jwks(self) -> list[dict[str, Any]]:
        if self.algorithm == "HS256":
            return []  # a shared secret is never published
        return [public_jwk(key, kid=kid, algorithm=self.algorithm) for kid, key in self.verification.items()]

    @cached_property
    def backend(self) -> KeyRingTokenBackend:
        return KeyRingTokenBackend(self)


# --- keys ----------------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _check_key_type(private_key: Any, *, algorithm: str, origin: str) -> None:
    expected = {"RS256": rsa.RSAPrivateKey, "EdDSA": ed25519.Ed25519PrivateKey}[algorithm]
    if not isinstance(private_key, expected):
        raise ImproperlyConfigured(f"{origin}: the key does not fit JWT_ALGORITHM={algorithm}.")
    if isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size < 2048:
        raise ImproperlyConfigured(f"{origin}: RSA keys must have at least 2048 bits.")


def _pem_blocks(text: str) -> list[bytes]:
    blocks, current = [], []
    for line in filter(None, (raw.strip() for raw in text.splitlines())):  # blank lines dropped
        current.append(line)
        if line.startswith("-----END"):
            blocks.append("\n".join(current).encode() + b"\n")
            current = []
    if current:
        raise ImproperlyConfigured("JWT_PRIVATE_KEYS holds an incomplete PEM block.")
    return blocks


def _ring_from_secret(algorithm: str) -> KeyRing:
    secret = settings.JWT_SECRET.encode()
    if len(secret) < 32:
        raise ImproperlyConfigured("JWT_ALGORITHM=HS256 needs JWT_SECRET of at least 32 characters.")
    kid = "hs-" + _b64url(hashlib.sha256(b"qdrant-portal kid:" + secret).digest())[:16]
    return KeyRing(algorithm, SigningKey(kid, secret, secret), {kid: secret})


def _ring_from_pems(algorithm: str) -> KeyRing:
    private_keys = [
        serialization.load_pem_private_key(block, password=None)
        for block in _pem_blocks(settings.JWT_PRIVATE_KEYS)
    ]
    if not private_keys:
        raise ImproperlyConfigured("JWT_PRIVATE_KEYS holds no PEM private key.")
    for private_key in private_keys:
        _check_key_type(private_key, algorithm=algorithm, origin="JWT_PRIVATE_KEYS")
    by_kid = {key_thumbprint(key.public_key()): key for key in private_keys}
    return _ring(algorithm, key_thumbprint(private_keys[0].public_key()), by_kid, mtime=None)


def _usable(keys: dict[str, Any], *, algorithm: str, keys_dir: Path) -> tuple[dict[str, Any], list[str]]:
    """The keys of the configured algorithm's type, and a sentence for each of the others."""
    usable, problems = {}, []
    for kid, private_key in keys.items():
        try:
            _check_key_type(private_key, algorithm=algorithm, origin=f"{keys_dir / kid}.pem")
        except ImproperlyConfigured as error:
            problems.append(str(error))
        else:
            usable[kid] = private_key
    return usable, problems


def _ring_from_dir(algorithm: str) -> KeyRing:
    """The folder's usable keys. A file that is not one is left out, and said (the log, the
    status page): a stray or half-copied file must not stop a process from starting or
    serving. Only an unusable signing key (``current``), or none at all, is refused."""
    keys_dir = Path(settings.JWT_KEYS_DIR)
    mtime = keys_dir_mtime(keys_dir)  # before the scan: a change during it is read next time
    contents = keys_dir_scan(keys_dir)
    if not contents.keys and settings.DEBUG and not contents.problems:
        keys_dir_add(keys_dir, algorithm=algorithm)  # development default: a key in var/
        mtime = keys_dir_mtime(keys_dir)
        contents = keys_dir_scan(keys_dir)
    by_kid, wrong_type = _usable(contents.keys, algorithm=algorithm, keys_dir=keys_dir)
    problems = " ".join([*contents.problems, *wrong_type])
    if not by_kid:
        raise ImproperlyConfigured(
            f"No JWT signing key: set JWT_PRIVATE_KEYS, or create one in JWT_KEYS_DIR ({keys_dir}) with "
            f"`manage.py jwt_keys rotate` (or JWT_ALGORITHM=HS256 with JWT_SECRET). {problems}".strip()
        )
    current = contents.current
    if current is not None and current not in by_kid:
        raise ImproperlyConfigured(
            f"{keys_dir / CURRENT_KEY_FILE} names a key that is not there or cannot be used. {problems}".strip()
        )
    if current is None:  # the newest key signs
        current = max(
            by_kid, key=lambda kid: key_file_created(keys_dir, kid) or datetime.min.replace(tzinfo=UTC)
        )
    ring = _ring(algorithm, current, by_kid, mtime=mtime)
    if problems:
        logger.error("JWT_KEYS_DIR: left out what is not a usable key: %s", problems)
        ring.problems = problems
    return ring


def key_ring_load() -> KeyRing:
    """Build the ring from settings; raises ImproperlyConfigured when keys are missing or wrong."""
    algorithm = settings.JWT_ALGORITHM
    if algorithm not in SUPPORTED_ALGORITHMS:
        raise ImproperlyConfigured(f"JWT_ALGORITHM must be one of {', '.join(SUPPORTED_ALGORITHMS)}.")
    if algorithm == "HS256":
        return _ring_from_secret(algorithm)
    if settings.JWT_PRIVATE_KEYS:
        return _ring_from_pems(algorithm)
    return _ring_from_dir(algorithm)


def _ring(algorithm: str, signing_kid: str, by_kid: dict[str, Any], *, mtime: float | None) -> KeyRing:
    signing_private = by_kid[signing_kid]
    signing = SigningKey(signing_kid, signing_private, signing_private.public_key())
    verification = {kid: key.public_key() for kid, key in by_kid.items()}
    return KeyRing(algorithm, signing, verification, source_mtime=mtime)


_ring_lock = threading.Lock()
_ring_state: dict[str, Any] = {"ring": None, "checked": 0.0}


def key_ring(*, unusable_ok: bool = False) -> KeyRing:
    """The process's key ring, re-read when JWT_KEYS_DIR changes (rotation needs no restart);
    503 ``auth_unavailable`` while it must not be used (``unusable_ok``: the status page's view)."""
    ring: KeyRing | None = _ring_state["ring"]
    now = time.monotonic()
    if ring is None or (
        ring.source_mtime is not None and now - _ring_state["checked"] >= KEYS_DIR_RECHECK_SECONDS
    ):
        ring = _ring_now(now)
    if ring.unusable and not unusable_ok:
        raise AuthUnavailable()
    return ring


def _ring_now(now: float) -> KeyRing:
    with _ring_lock:
        ring = _ring_state["ring"]
        if ring is None:
            ring = _ring_state["ring"] = key_ring_load()  # at start: refuse to run without keys
        else:
            mtime = keys_dir_mtime(Path(settings.JWT_KEYS_DIR))
            if mtime != ring.source_mtime:
                ring = _ring_state["ring"] = _ring_reloaded(ring, mtime=mtime)
        _ring_state["checked"] = now
        return ring


def _ring_reloaded(ring: KeyRing, *, mtime: float | None) -> KeyRing:
    """The folder's keys now; while it cannot be loaded (a damaged ``current``), the loaded keys
    whose files are still there, tried again once the folder changes (``mtime``, read first).
    A removed key (retired, or withdrawn as compromised) is never trusted again; without the
    signing key's file, nothing is signed or verified (fail closed) until the folder is fixed."""
    try:
        return key_ring_load()
    except ImproperlyConfigured as error:
        keys_dir = Path(settings.JWT_KEYS_DIR)
        kept = {kid: key for kid, key in ring.verification.items() if (keys_dir / f"{kid}.pem").is_file()}
        # A folder that is gone has no mtime; None would mean "never look again" (keys from
        # the environment), so look again at every recheck until it is back.
        held = KeyRing(ring.algorithm, ring.signing, kept, source_mtime=-1.0 if mtime is None else mtime)
        if ring.signing.kid in kept:
            held.problems = f"{error} Still using the keys loaded before that are still in the folder."
        else:
            held.problems = f"{error} The signing key's file is gone: no token is signed or accepted."
            held.unusable = True
        logger.error("JWT keys not reloaded: %s", held.problems)
        return held


def key_ring_reset() -> None:
    with _ring_lock:
        _ring_state["ring"] = None


@receiver(setting_changed)
def _key_ring_reset_on_setting_change(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("JWT_") or setting == "DEBUG":
        key_ring_reset()


# --- signing and verifying -----------------------------------------------------------------


# Replicas' clocks differ by a little: a token minted by one whose clock runs ahead carries an
# ``iat`` a moment in the future for the others (PyJWT refuses those). RFC 7519 allows a small
# leeway for ``iat``, ``nbf`` and ``exp``; a few seconds cost nothing next to a token's minutes.
CLOCK_LEEWAY = timedelta(seconds=5)


class KeyRingTokenBackend(TokenBackend):
    """simplejwt's backend with a key ring: ``kid`` in every header, decode by ``kid`` only."""

    def __init__(self, ring: KeyRing) -> None:
        super().__init__(algorithm=ring.algorithm, issuer=settings.JWT_ISSUER, leeway=CLOCK_LEEWAY)
        self.ring = ring
        # Verifying a signature (and PyJWT's pure-Python base64 checks) dominates the cost of
        # /validate, and a client presents the same access token many times. A verified token
        # string maps to one payload forever, so it is remembered, bounded, per key ring: a
        # rotated or retired key builds a new ring and backend, and with it an empty memory.
        # Expiry is checked on every use by the token class (Token.verify -> check_exp).
        self._verified = functools.lru_cache(maxsize=VERIFIED_TOKENS_CACHED)(self._decode_verified)

    def encode(self, payload: dict[str, Any]) -> str:
        # Claims in sorted order: a payload read back from the database (jsonb reorders keys)
        # encodes to the very same token, which the refresh reuse grace relies on.
        claims = dict(sorted({**payload, "iss": self.issuer}.items()))
        return jwt.encode(
            claims,
            self.ring.signing.private_key,
            algorithm=self.algorithm,
            headers={"kid": self.ring.signing.kid},
        )

    def decode(self, token: Any, verify: bool = True, *, verify_exp: bool = True) -> dict[str, Any]:
        if not verify:  # the signature; only a logout skips the expiry (ending a session is safe)
            raise TokenBackendError("Tokens are always verified.")
        if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
            raise TokenBackendError("Token is invalid")
        return dict(self._verified(token, verify_exp))

    def _decode_verified(self, token: str, verify_exp: bool) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise TokenBackendError("Token is invalid") from error
        # Checked before any key is chosen: the header names the algorithm we configured, and a
        # key we hold. That is what defeats "alg: none" and HS256-signed-with-the-public-key.
        key = self.ring.verification.get(header.get("kid")) if isinstance(header.get("kid"), str) else None
        if header.get("alg") != self.algorithm or key is None:
            raise TokenBackendError("Token is invalid")
        try:
            return jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                issuer=self.issuer,
                # RFC 8725 section 3.9: a token minted for another audience is not ours to accept.
                # Which of the two a token may carry is its class's to check (PortalToken.verify).
                audience=[settings.JWT_AUDIENCE, refresh_audience()],
                leeway=CLOCK_LEEWAY,
                options={"require": list(REQUIRED_CLAIMS), "verify_exp": verify_exp},
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenBackendExpiredToken("Token is expired") from error
        except jwt.InvalidTokenError as error:
            raise TokenBackendError("Token is invalid") from error


def refresh_audience() -> str:
    """Refresh tokens' ``aud``: not ``JWT_AUDIENCE``, so that a service which checks the signature,
    issuer, audience and expiry but not ``token_type`` still refuses them (RFC 8725 section 2.8,
    cross-JWT confusion): a refresh token lives days and outlives its revoked session there."""
    return f"{settings.JWT_AUDIENCE}/refresh"


class PortalToken(Token):
    """A simplejwt token signed and verified with the process's key ring."""

    def get_token_backend(self) -> KeyRingTokenBackend:
        return key_ring().backend

    @classmethod
    def audience(cls) -> str:
        """The ``aud`` this kind of token is issued with."""
        raise NotImplementedError

    @classmethod
    def accepted_audiences(cls) -> tuple[str, ...]:
        return (cls.audience(),)

    def verify(self) -> None:
        super().verify()  # expiry, jti, token_type
        if self.payload.get("aud") not in self.accepted_audiences():
            raise TokenError("Token is invalid")

    @classmethod
    def issue(
        cls, *, claims: dict[str, Any], issued_at: datetime, session_expires_at: datetime
    ) -> PortalToken:
        """A token living ``lifetime`` from ``issued_at``, but never past the end of its session."""
        token = cls()
        token.set_iat(at_time=issued_at)
        token.set_exp(from_time=min(issued_at + token.lifetime, session_expires_at), lifetime=timedelta(0))
        token["aud"] = cls.audience()
        for name, value in claims.items():
            token[name] = value
        return token

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self["exp"], tz=UTC)

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> PortalToken:
        """The token for a stored payload: signing is deterministic, so it encodes identically."""
        token = cls()
        token.payload = dict(payload)
        return token


class AccessToken(PortalToken):
    token_type = "access"  # noqa: S105  (a claim value, not a secret)

    @classmethod
    def audience(cls) -> str:
        return settings.JWT_AUDIENCE

    @property
    def lifetime(self) -> timedelta:  # simplejwt reads it per instance; the setting may change
        return settings.JWT_ACCESS_TTL


class RefreshToken(PortalToken):
    token_type = "refresh"  # noqa: S105  (a claim value, not a secret)

    @classmethod
    def audience(cls) -> str:
        return refresh_audience()

    @classmethod
    def accepted_audiences(cls) -> tuple[str, ...]:
        # Also JWT_AUDIENCE: refresh tokens issued before they had an audience of their own stay
        # usable here (their session's next refresh replaces them). Remove after JWT_REFRESH_TTL.
        return (refresh_audience(), settings.JWT_AUDIENCE)

    @property
    def lifetime(self) -> timedelta:
        return settings.JWT_REFRESH_TTL
