"""A resource service that verifies the portal's access tokens itself, with the portal's JWKS.

Not part of the portal: a plain WSGI application on the standard library and PyJWT (with
``cryptography``). It serves one resource, ``GET /clients/<client>/things``, to callers whose
access token's ``scope`` names ``<client>`` (or is ``*``). See README.md beside this file for
when a service should verify tokens like this and when it should ask the portal instead.

Run it with ``python examples/resource_service/service.py``; configuration by environment:

    PORTAL_URL              the portal's base URL (default http://127.0.0.1:8000)
    JWKS_URL                the key set (default: PORTAL_URL + /.well-known/jwks.json)
    JWT_ISSUER              the portal's JWT_ISSUER (default qdrant-portal)
    JWT_AUDIENCE            the portal's JWT_AUDIENCE (default qdrant-portal)
    JWT_ALGORITHMS          accepted algorithms, RS256 and/or EdDSA (default RS256)
    JWKS_CACHE_SECONDS      how long the key set is trusted before it is fetched again (300)
    JWKS_REFETCH_INTERVAL   least seconds between early fetches for an unknown kid (30)
    JWT_LEEWAY              seconds of clock difference tolerated on exp and iat (5)
    HOST, PORT              where to listen (127.0.0.1, 8081)
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import socketserver
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import jwt

# Asymmetric only: a service holding the portal's public keys must never accept a token whose
# header asks for HMAC ("HS256 signed with the public key") or for no signature at all.
SUPPORTED_ALGORITHMS = ("RS256", "EdDSA")
REQUIRED_CLAIMS = ["iss", "aud", "sub", "iat", "exp", "token_type"]
MAX_TOKEN_LENGTH = 8192
THINGS_PATH = re.compile(r"/clients/(?P<client>[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?)/things")

logger = logging.getLogger("resource_service")


class ConfigurationError(ValueError):
    """The environment does not describe a usable configuration."""


@dataclass(frozen=True)
class Settings:
    jwks_url: str
    issuer: str
    audience: str
    algorithms: tuple[str, ...]
    jwks_cache_seconds: float
    jwks_refetch_interval: float
    leeway: float
    host: str
    port: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        def value(name: str, default: str) -> str:
            return environ.get(name, "").strip() or default

        def seconds(name: str, default: str) -> float:
            try:
                number = float(value(name, default))
            except ValueError:
                raise ConfigurationError(f"{name} must be a number of seconds.") from None
            if not math.isfinite(number) or number < 0:
                raise ConfigurationError(f"{name} must be a number of seconds, not negative.")
            return number

        algorithms = tuple(
            name.strip() for name in value("JWT_ALGORITHMS", "RS256").split(",") if name.strip()
        )
        unsupported = sorted(set(algorithms) - set(SUPPORTED_ALGORITHMS))
        if unsupported or not algorithms:
            raise ConfigurationError(
                f"JWT_ALGORITHMS: {', '.join(unsupported) or 'none given'} not accepted; "
                f"use {' and/or '.join(SUPPORTED_ALGORITHMS)}."
            )
        portal = value("PORTAL_URL", "http://127.0.0.1:8000").rstrip("/")
        cache_seconds = seconds("JWKS_CACHE_SECONDS", "300")
        if cache_seconds == 0:
            raise ConfigurationError("JWKS_CACHE_SECONDS must be more than 0.")
        try:
            port = int(value("PORT", "8081"))
        except ValueError:
            raise ConfigurationError("PORT must be a whole number.") from None
        return cls(
            jwks_url=value("JWKS_URL", f"{portal}/.well-known/jwks.json"),
            issuer=value("JWT_ISSUER", "qdrant-portal"),
            audience=value("JWT_AUDIENCE", "qdrant-portal"),
            algorithms=algorithms,
            jwks_cache_seconds=cache_seconds,
            jwks_refetch_interval=seconds("JWKS_REFETCH_INTERVAL", "30"),
            leeway=seconds("JWT_LEEWAY", "5"),
            host=value("HOST", "127.0.0.1"),
            port=port,
        )


# --- answers ---------------------------------------------------------------------------------


class Refusal(Exception):
    """An error answer: status, stable code, sentence (the portal's {"code", "detail"} shape)."""

    def __init__(
        self,
        status: int,
        code: str,
        detail: str,
        challenge: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.code, self.detail, self.challenge = status, code, detail, challenge
        self.retry_after = retry_after


def not_authenticated() -> Refusal:
    return Refusal(401, "not_authenticated", "Authentication credentials were not provided.", "Bearer")


def token_not_valid(detail: str = "Token is invalid or expired.") -> Refusal:
    return Refusal(401, "token_not_valid", detail, 'Bearer error="invalid_token"')


def personal_access_token_refused() -> Refusal:
    return token_not_valid(
        "Personal access tokens (qpt_...) are not JWTs and cannot be verified here: "
        "they are checked at the portal's /api/auth/validate."
    )


def permission_denied() -> Refusal:
    return Refusal(403, "permission_denied", "Insufficient permissions", 'Bearer error="insufficient_scope"')


def keys_unavailable(retry_after: float) -> Refusal:
    return Refusal(
        503,
        "auth_unavailable",
        "The portal's signing keys cannot be fetched; try again shortly.",
        retry_after=retry_after,
    )


def key_not_yet_known(retry_after: float) -> Refusal:
    return Refusal(
        503,
        "auth_unavailable",
        "The token's signing key is not in the portal's key set as last fetched (it may have "
        "just been added); the set is fetched again shortly: try again after Retry-After.",
        retry_after=retry_after,
    )


# --- the portal's keys -----------------------------------------------------------------------

FETCH_TIMEOUT_SECONDS = 5
# After a failed fetch, requests that need the key set are answered 503 at once for this long,
# rather than each waiting out another timeout of a portal that hangs.
FAILED_FETCH_PAUSE_SECONDS = 5
_FETCH = object()  # what ``PortalKeys._lookup`` answers when this request must fetch the set


class PortalKeys:
    """The portal's public keys, fetched from its JWKS and trusted for ``jwks_cache_seconds``.

    One fetch at a time (the others wait for its outcome, or use the cached set), never under
    the lock, and a failed fetch is remembered for ``FAILED_FETCH_PAUSE_SECONDS``. A ``kid``
    the cached set does not know may be a key the portal has just rotated in, so the set is
    fetched again at once, but at most once per ``jwks_refetch_interval``: a flood of tokens
    with made-up kids costs the portal one request per interval, not one per token. The set a
    fetch brings is final for the kid it was fetched for for one interval (401 when it lacks
    it; then it may be fetched again: a replica that has not read a rotated key yet may have
    served that set); any other unknown kid within the interval is answered 503 with ``Retry-After``,
    not 401, since the set may simply be older than that kid's key. A retired key disappears
    from the set, and so from here once the cached set expires.
    """

    def __init__(self, settings: Settings) -> None:
        # Caching is done here rather than by PyJWT (whose per-kid cache, cache_keys, would
        # never forget a key: retired keys would stay valid).
        self._client = jwt.PyJWKClient(
            settings.jwks_url, cache_keys=False, cache_jwk_set=False, timeout=FETCH_TIMEOUT_SECONDS
        )
        self._cache_seconds = settings.jwks_cache_seconds
        self._refetch_interval = settings.jwks_refetch_interval
        self._changed = threading.Condition()  # guards the fields below; never held while fetching
        self._key_set: jwt.PyJWKSet | None = None
        self._key_set_fetched_at = 0.0  # when the fetch that brought the set started
        self._kid_not_in_key_set: str | None = None  # the kid the set was fetched for, if it lacks it
        self._last_refetch = -math.inf  # when the latest early fetch started, whatever its outcome
        self._failed_until = -math.inf
        self._fetching = False

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The signing key with this kid, or None; raises ``Refusal`` (503) when it cannot be told."""
        with self._changed:
            found = self._lookup(kid)
        return self._fetch(kid) if found is _FETCH else found

    def _lookup(self, kid: str) -> Any:
        """The key, None, or ``_FETCH`` (then this request fetches); waits while another fetches."""
        while True:
            now = time.monotonic()
            fresh = self._key_set is not None and now - self._key_set_fetched_at < self._cache_seconds
            if fresh:
                key = self._find(self._key_set, kid)
                if key is not None:
                    return key
                if now - self._last_refetch < self._refetch_interval:
                    if kid == self._kid_not_in_key_set:  # the set fetched for it lacks it: 401
                        return None
                    raise key_not_yet_known(self._last_refetch + self._refetch_interval - now)
            if now < self._failed_until:
                raise keys_unavailable(self._failed_until - now)
            if not self._fetching:
                self._fetching = True
                if fresh:  # an early fetch, for an unknown kid: these are rate-limited
                    self._last_refetch = now
                return _FETCH
            self._changed.wait()  # another request is fetching: its outcome decides this one too

    def _fetch(self, kid: str) -> jwt.PyJWK | None:
        started, key_set = time.monotonic(), None
        try:
            key_set = self._client.get_jwk_set()
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, json.JSONDecodeError) as error:
            logger.warning("cannot use the portal's key set: %s", error)
        finally:
            self._fetched(kid, key_set, started=started)
        if key_set is None:
            raise keys_unavailable(FAILED_FETCH_PAUSE_SECONDS)
        return self._find(key_set, kid)

    def _fetched(self, kid: str, key_set: jwt.PyJWKSet | None, *, started: float) -> None:
        """Keep a fetch's outcome (None: it failed) and wake the requests that wait for it."""
        with self._changed:
            self._fetching = False
            if key_set is None:
                self._failed_until = time.monotonic() + FAILED_FETCH_PAUSE_SECONDS
            else:
                self._key_set, self._key_set_fetched_at = key_set, started
                self._kid_not_in_key_set = None if self._find(key_set, kid) else kid
            self._changed.notify_all()

    @staticmethod
    def _find(key_set: jwt.PyJWKSet, kid: str) -> jwt.PyJWK | None:
        return next(
            (key for key in key_set.keys if key.key_id == kid and key.public_key_use in ("sig", None)), None
        )


# --- verifying a token -----------------------------------------------------------------------


class TokenVerifier:
    def __init__(self, settings: Settings, keys: PortalKeys) -> None:
        self.settings = settings
        self.keys = keys

    def claims(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token; raises ``Refusal`` otherwise."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise token_not_valid()
        if token.startswith("qpt_"):
            raise personal_access_token_refused()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise token_not_valid() from None
        algorithm, kid = header.get("alg"), header.get("kid")
        # Decided before any key is used: one of the configured algorithms, and a key of ours
        # that is meant for exactly that algorithm (RFC 8725 section 3.1).
        if algorithm not in self.settings.algorithms or not isinstance(kid, str):
            raise token_not_valid()
        key = self.keys.key(kid)
        if key is None or key.algorithm_name != algorithm:
            raise token_not_valid()
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[algorithm],
                issuer=self.settings.issuer,
                audience=self.settings.audience,
                leeway=self.settings.leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.InvalidTokenError:
            raise token_not_valid() from None
        # A refresh token is signed by the same key: it must never open a resource.
        if claims.get("token_type") != "access" or not isinstance(claims.get("scope", ""), str):
            raise token_not_valid()
        return claims


def token_from(environ: Mapping[str, Any]) -> str | None:
    """The access token from ``Authorization: Bearer`` or ``X-Auth-Token`` (as the portal accepts)."""
    scheme, _, credentials = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return environ.get("HTTP_X_AUTH_TOKEN", "").strip() or None


def scope_allows(claims: Mapping[str, Any], client: str) -> bool:
    granted = claims.get("scope", "").split()
    return "*" in granted or client in granted


# --- the application -------------------------------------------------------------------------

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class ResourceService:
    """The WSGI application."""

    def __init__(self, settings: Settings) -> None:
        self.verifier = TokenVerifier(settings, PortalKeys(settings))

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = [("Content-Type", "application/json"), ("Cache-Control", "no-store")]
        try:
            status, body = 200, self.things(environ)
        except Refusal as refusal:
            status, body = refusal.status, {"code": refusal.code, "detail": refusal.detail}
            if refusal.challenge:
                headers.append(("WWW-Authenticate", refusal.challenge))
            if refusal.retry_after is not None:
                headers.append(("Retry-After", str(max(1, math.ceil(refusal.retry_after)))))
            if status == 405:
                headers.append(("Allow", "GET"))
        payload = json.dumps(body).encode()
        headers.append(("Content-Length", str(len(payload))))
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [payload]

    def things(self, environ: Mapping[str, Any]) -> dict[str, Any]:
        match = THINGS_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if match is None:
            raise Refusal(404, "not_found", "Not found.")
        if environ.get("REQUEST_METHOD") != "GET":
            raise Refusal(405, "method_not_allowed", "Only GET is allowed here.")
        token = token_from(environ)
        if token is None:
            raise not_authenticated()
        claims = self.verifier.claims(token)
        client = match["client"]
        if not scope_allows(claims, client):
            raise permission_denied()
        return {
            "client": client,
            "userId": claims["sub"],
            "things": [f"{client}-thing-1", f"{client}-thing-2"],
        }


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class RequestLogHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s %s", self.address_string(), format % args)


def server_make(settings: Settings) -> WSGIServer:
    return make_server(
        settings.host,
        settings.port,
        ResourceService(settings),
        server_class=ThreadingWSGIServer,
        handler_class=RequestLogHandler,
    )


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env(os.environ)
    except ConfigurationError as error:
        logger.error("%s", error)
        return 2
    with server_make(settings) as server:
        logger.info(
            "listening on http://%s:%s; keys from %s", settings.host, server.server_port, settings.jwks_url
        )
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
