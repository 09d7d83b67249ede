"""Google ID token verification: the only module that imports google-auth.

``google_id_token_verify`` answers with a :class:`GoogleIdentity` or raises one of the typed
errors below; nothing google-auth raises escapes this module. What google-auth 2.62 raises,
read from its source (``google/oauth2/id_token.py``, ``google/auth/jwt.py``):

* certificates are fetched *before* the token is parsed; a non-200 answer raises
  ``TransportError`` and so does any ``requests`` failure (``transport/requests.py``);
* a token without three segments or with a segment that is not a JSON object raises
  ``MalformedError`` (a ``ValueError``); bad base64 raises ``binascii.Error`` (a ``ValueError``);
* an unsupported ``alg``, a wrong ``aud``, an expired token or one "used too early" raise
  ``InvalidValue`` (a ``ValueError``); an unknown ``kid``, a bad signature or a missing
  ``iat``/``exp`` raise ``MalformedError``;
* a non-numeric ``iat``/``exp`` raises a bare ``TypeError`` and a missing ``iss`` a bare
  ``KeyError``;
* a wrong issuer raises the base ``GoogleAuthError``, which is *not* a ``ValueError``.

Domain policy (``GOOGLE_ALLOWED_DOMAINS``) is deliberately not applied here: it decides
whether an *unknown* person may get an account, not whether a token is genuine, so a user who
already exists (linked by ``sub``) keeps signing in whatever their domain. The sign-in service
applies it with :meth:`GoogleIdentity.domain_allowed`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import google.auth.transport
import google.auth.transport.requests
import requests
from django.conf import settings
from django.core.cache import cache
from google.auth import exceptions as google_exceptions
from google.auth import jwt as google_jwt
from google.oauth2 import id_token as google_id_token

from config.cache import CACHE_ERRORS
from config.errors import EmailNotVerified, GoogleUnavailable, InvalidGoogleToken, InvalidRequest, NotFound
from config.text import display_text_clean

logger = logging.getLogger(__name__)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
# Tolerated difference between our clock and Google's for `iat` and `exp`.
CLOCK_SKEW_SECONDS = 10
# Google ID tokens are about 1 KiB; anything far larger is not one, and is refused before any
# parsing or download.
CREDENTIAL_MAX_LENGTH = 8192
# How long a certificate download may take: google-auth's own default is 120 s, far too long
# for someone waiting on a sign-in.
CERTS_TIMEOUT_SECONDS = 10
CERTS_TTL_DEFAULT_SECONDS = 60 * 60
CERTS_TTL_MAX_SECONDS = 24 * 60 * 60

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_NOT_STORABLE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache)\s*(?:[=,]|$)", re.IGNORECASE)


# --- Errors ---------------------------------------------------------------------------------
# What this module raises: config.errors' InvalidGoogleToken (401), EmailNotVerified (403),
# GoogleUnavailable (503), NotFound (404, sign-in switched off) and InvalidRequest (400, not a
# JWT at all: a client bug, not a failed sign-in).


def _credential_malformed(message: str) -> InvalidRequest:
    return InvalidRequest(fields={"credential": [message]})


# --- Identity -----------------------------------------------------------------------------


@dataclass(frozen=True)
class GoogleIdentity:
    """What a verified Google ID token says about the person signing in."""

    sub: str
    email: str
    email_verified: bool
    name: str
    hosted_domain: str | None

    @property
    def email_domain(self) -> str:
        return self.email.rpartition("@")[2].lower()

    @property
    def email_authoritative(self) -> bool:
        """Whether Google owns the mailbox, so the email proves who this is *today*.

        Google's guidance ("Verify the Google ID token"): Google is authoritative for
        ``@gmail.com`` addresses and for Workspace accounts (``hd`` set). For any other
        address ``email_verified`` only means the address was verified when the Google
        account was created; the mailbox may have changed hands since. Link an existing
        portal user by email only when this is true.
        """
        return self.email_verified and (self.email_domain == "gmail.com" or bool(self.hosted_domain))

    def domain_allowed(self, allowed_domains: Iterable[str]) -> bool:
        """Whether this identity may be provisioned under ``GOOGLE_ALLOWED_DOMAINS``.

        Both the Workspace domain (``hd``) and the email's domain must be allowed: the email
        domain alone is not enough, since anyone can create a consumer Google account with a
        verified ``@company.example`` address that the company's Workspace does not manage.
        """
        allowed = {domain.strip().lower() for domain in allowed_domains}
        return (
            self.email_verified
            and self.hosted_domain is not None
            and self.hosted_domain in allowed
            and self.email_domain in allowed
        )


# --- Certificate transport ----------------------------------------------------------------


class _CachedResponse(google.auth.transport.Response):
    def __init__(self, *, status: int, headers: Mapping[str, str], data: bytes) -> None:
        self._status = status
        self._headers = dict(headers)
        self._data = data

    @property
    def status(self) -> int:
        return self._status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._headers

    @property
    def data(self) -> bytes:
        return self._data


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return str(value)
    return ""


def _certs_ttl(headers: Mapping[str, str]) -> int:
    """Seconds the certificates stay fresh (RFC 9111 §4.2.1, §4.2.3), capped at 24 hours."""
    cache_control = _header(headers, "cache-control")
    if _NOT_STORABLE.search(cache_control):
        return 0
    match = _MAX_AGE.search(cache_control)
    ttl = int(match.group(1)) if match else CERTS_TTL_DEFAULT_SECONDS
    age = _header(headers, "age").strip()
    if age.isascii() and age.isdigit():  # not "²", which isdigit takes and int refuses
        ttl -= int(age)
    return max(0, min(ttl, CERTS_TTL_MAX_SECONDS))


def _certs_valid(data: bytes) -> bool:
    """Google's v1 format: a non-empty ``{kid: PEM}`` object (never a JWK set)."""
    try:
        certs = json.loads(data.decode("utf-8"))
    except ValueError:
        return False
    return (
        isinstance(certs, dict)
        and bool(certs)
        and "keys" not in certs
        and all(isinstance(pem, str) for pem in certs.values())
    )


class CachingRequest(google.auth.transport.Request):
    """A google-auth transport that keeps Google's certificates in the Django cache.

    google-auth downloads the certificates on every verification; this answers GETs of the
    certificate URL from the cache for as long as Google's ``Cache-Control: max-age`` says
    (one hour without one, never more than a day, never a non-200 answer). Every other
    request goes straight to ``inner``. A broken cache costs a download, never a sign-in.
    """

    cacheable_urls = frozenset({GOOGLE_CERTS_URL})

    def __init__(self, inner: google.auth.transport.Request | None = None) -> None:
        self.inner = inner or google.auth.transport.requests.Request(session=requests.Session())

    @staticmethod
    def cache_key(url: str) -> str:
        return "google:certs:" + hashlib.sha256(url.encode()).hexdigest()[:32]

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        timeout = CERTS_TIMEOUT_SECONDS if timeout is None else timeout
        if method.upper() != "GET" or url not in self.cacheable_urls:
            return self.inner(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)

        key = self.cache_key(url)
        try:
            cached = cache.get(key)
        except CACHE_ERRORS:  # a cache outage must not stop sign-ins: download instead
            logger.warning("Google certificate cache unreadable; downloading", exc_info=True)
            cached = None
        if isinstance(cached, dict) and isinstance(cached.get("data"), bytes):
            return _CachedResponse(status=200, headers=cached.get("headers") or {}, data=cached["data"])

        response = self.inner(url, method=method, body=body, headers=headers, timeout=timeout, **kwargs)
        if response.status != 200:
            return response  # google-auth turns this into TransportError
        data = response.data
        if not _certs_valid(data):
            # A captive portal or proxy error page: google-auth would report it as a
            # malformed *token* (json ValueError), which would blame the user.
            raise google_exceptions.TransportError("Google's certificate response is not a certificate set")
        ttl = _certs_ttl(response.headers)
        if ttl > 0:
            try:
                cache.set(key, {"data": data, "headers": {"cache-control": f"max-age={ttl}"}}, ttl)
            except CACHE_ERRORS:
                logger.warning("Google certificate cache unwritable", exc_info=True)
        return response


_google_request: CachingRequest | None = None


def google_request() -> google.auth.transport.Request:
    """The process-wide caching transport used for verification (created on first use)."""
    global _google_request
    if _google_request is None:
        _google_request = CachingRequest()
    return _google_request


# --- Verification -------------------------------------------------------------------------


def _client_ids() -> list[str]:
    return [client_id for client_id in (settings.GOOGLE_CLIENT_IDS or []) if client_id]


def google_sign_in_enabled() -> bool:
    """Whether Google sign-in is configured (``GOOGLE_CLIENT_IDS`` is not empty)."""
    return bool(_client_ids())


def _structure_check(token: Any) -> None:
    """Refuse what is not even a JWT, before any certificate download."""
    if not isinstance(token, str) or not token.strip():
        raise _credential_malformed("This field may not be blank.")
    if len(token) > CREDENTIAL_MAX_LENGTH or not token.isascii():
        raise _credential_malformed("This is not a Google ID token.")
    try:
        google_jwt.decode(token, verify=False)
    except ValueError:  # MalformedError, binascii.Error, UnicodeDecodeError
        raise _credential_malformed("This is not a Google ID token.") from None


def _rejected(reason: str, exc: BaseException | None = None) -> InvalidGoogleToken:
    # google-auth's messages name claims (aud, alg), never the token itself; still truncated
    # and repr'd because every claim is attacker-chosen.
    logger.info("Google ID token rejected: %s%s", reason, f" ({str(exc)[:200]!r})" if exc else "")
    return InvalidGoogleToken()


def _claim_str(claims: Mapping[str, Any], name: str) -> str:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) else ""


def _nonce_check(token_nonce: Any, *, expected: str | None) -> None:
    """A token that carries a nonce is accepted only with the nonce the browser holds
    (``accounts.google_nonce``); one without (not asked for by the browser app) passes."""
    if token_nonce is None:
        return
    if not (
        isinstance(token_nonce, str)
        and expected
        and hmac.compare_digest(token_nonce.encode(), expected.encode())
    ):
        raise _rejected("nonce is not the one this browser was given")


def google_id_token_verify(
    *, token: str, nonce: str | None = None, request: google.auth.transport.Request | None = None
) -> GoogleIdentity:
    """Verify a Google ID token (the Sign in with Google ``credential``) and say who it names.

    google-auth checks the signature against Google's certificates, ``iat``/``exp`` (with
    ``CLOCK_SKEW_SECONDS``), ``aud`` against ``GOOGLE_CLIENT_IDS`` and ``iss``; on top of
    that, ``azp`` must be one of our client IDs when present, ``sub`` and ``email`` must be
    there and ``email_verified`` true, and a ``nonce`` in the token must be ``nonce`` (the one
    the browser sending it was given).
    """
    client_ids = _client_ids()
    if not client_ids:
        raise NotFound()
    _structure_check(token)

    try:
        claims = google_id_token.verify_oauth2_token(
            token,
            request or google_request(),
            audience=client_ids,
            clock_skew_in_seconds=CLOCK_SKEW_SECONDS,
        )
    except google_exceptions.TransportError as exc:
        logger.warning("Google certificates could not be fetched: %s", str(exc)[:200])
        raise GoogleUnavailable() from exc
    except (ValueError, TypeError, KeyError, google_exceptions.GoogleAuthError) as exc:
        # ValueError covers InvalidValue and MalformedError; GoogleAuthError the wrong issuer;
        # TypeError and KeyError a non-numeric iat/exp and a missing iss.
        raise _rejected(type(exc).__name__, exc) from exc

    if not isinstance(claims, Mapping):
        raise _rejected("claims are not an object")
    azp = claims.get("azp")
    if azp is not None and azp not in client_ids:
        raise _rejected("authorized party is not one of GOOGLE_CLIENT_IDS")
    _nonce_check(claims.get("nonce"), expected=nonce)
    sub = _claim_str(claims, "sub")
    email = _claim_str(claims, "email")
    if not sub:
        raise _rejected("no sub claim")
    if not email or "@" not in email:
        raise _rejected("no email claim")

    email_verified = claims.get("email_verified")
    # Google sends a JSON boolean; tokens from older endpoints carried the string "true".
    if not (email_verified is True or email_verified == "true"):
        raise EmailNotVerified()

    hosted_domain = _claim_str(claims, "hd").lower() or None
    return GoogleIdentity(
        sub=sub,
        email=email,
        email_verified=True,
        name=display_text_clean(_claim_str(claims, "name")),  # another system's choice: kept, cleaned
        hosted_domain=hosted_domain,
    )
