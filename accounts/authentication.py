"""Cookie and header JWT authentication, the auth cookies, and the browser Origin/CSRF checks.

There is deliberately no ``authenticate_header``: without a ``WWW-Authenticate`` challenge DRF
answers 403 (``not_authenticated`` / ``token_not_valid``), as the contract says.
"""

from __future__ import annotations

import copy
import ipaddress
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request
from rest_framework_simplejwt.exceptions import TokenError

from accounts.access_tokens import TOKEN_PREFIX, LiveAccessToken, access_token_live, access_token_use_record
from accounts.audit import USER_AGENT_MAX, RequestCredential, RequestOrigin
from accounts.factors import RelyingParty
from accounts.models import SessionUser
from accounts.scopes import CredentialScope
from accounts.selectors import LiveSession, second_factor_policy_check, session_live
from accounts.services import IssuedTokens, access_token_issue, session_activity_record
from accounts.session_cache import CachedClaims
from accounts.tokens import AccessToken, key_ring
from config.errors import CsrfFailed, ForeignOrigin, PatNotAllowed, TokenNotValid

# DRF imports this module while rest_framework.views is being imported (it reads the default
# authentication classes at class definition): nothing imported here may import rest_framework.views.

EXTENDED_TOKEN_HEADER = "X-Extended-Token"  # noqa: S105  (a header name)
REFRESH_COOKIE_PATH = "/api/auth/"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


# --- where tokens travel ---------------------------------------------------------------------


def access_cookie_name() -> str:
    # RFC 6265bis prefixes: a __Host- cookie is Secure, host-only and Path=/, so a sibling
    # subdomain or a plain-HTTP page cannot plant or overwrite it.
    return "__Host-accessToken" if settings.AUTH_COOKIE_SECURE else "accessToken"


def refresh_cookie_name() -> str:
    return "__Secure-refreshToken" if settings.AUTH_COOKIE_SECURE else "refreshToken"


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def access_token_from_request(request: HttpRequest) -> tuple[str | None, bool]:
    """The access token and whether it came from the cookie (headers win over the cookie)."""
    header_token = _bearer(request) or request.META.get("HTTP_X_AUTH_TOKEN", "").strip()
    if header_token:
        return header_token, False
    cookie_token = request.COOKIES.get(access_cookie_name())
    return (cookie_token, True) if cookie_token else (None, False)


def refresh_token_from_request(request: HttpRequest) -> tuple[str | None, bool]:
    """The refresh token and whether it came from the cookie (else from ``Authorization``)."""
    header_token = _bearer(request)
    if header_token:
        return header_token, False
    cookie_token = request.COOKIES.get(refresh_cookie_name())
    return (cookie_token, True) if cookie_token else (None, False)


def client_ip(request: HttpRequest) -> str | None:
    """The client address: REMOTE_ADDR, or the one TRUSTED_PROXY_HOPS proxies in front of us saw."""
    hops = settings.TRUSTED_PROXY_HOPS
    forwarded = [
        part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()
    ]
    if hops and len(forwarded) >= hops and _is_ip(forwarded[-hops]):
        return forwarded[-hops]
    remote_addr = request.META.get("REMOTE_ADDR") or ""
    return remote_addr if _is_ip(remote_addr) else None


def _is_ip(text: str) -> bool:
    """A bare IPv4/IPv6 address (a proxy may pass 'unknown' or 'host:port'; sessions store only IPs)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def request_origin(request: HttpRequest) -> RequestOrigin:
    """The client address and user agent, as sessions and the audit log record them."""
    return RequestOrigin(
        ip=client_ip(request), user_agent=request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX]
    )


def relying_party(request: HttpRequest) -> RelyingParty:
    """Whom passkeys are for: WEBAUTHN_RP_ID / WEBAUTHN_ORIGINS, else the host this request names."""
    origin = f"{request.scheme}://{request.get_host()}"
    rp_id = settings.WEBAUTHN_RP_ID or request.get_host().rsplit(":", 1)[0].strip("[]")
    return RelyingParty(rp_id=rp_id, origins=tuple(settings.WEBAUTHN_ORIGINS or [origin]))


def _max_age(expires_at: datetime) -> int:
    # Rounded up: a token with 0.9 s left must not travel in a cookie the browser drops at once
    # (Max-Age=0 deletes it). The token's own `exp` stays the authority on when it ends.
    return max(0, math.ceil((expires_at - timezone.now()).total_seconds()))


def access_cookie_set(response: HttpResponse, *, token: str, expires_at: datetime) -> None:
    response.set_cookie(
        access_cookie_name(),
        token,
        max_age=_max_age(expires_at),
        path="/",
        secure=settings.AUTH_COOKIE_SECURE,
        httponly=True,
        samesite=settings.ACCESS_COOKIE_SAMESITE,
    )


def auth_cookies_set(response: HttpResponse, *, issued: IssuedTokens) -> None:
    access_cookie_set(response, token=issued.access_token, expires_at=issued.access_expires_at)
    response.set_cookie(
        refresh_cookie_name(),
        issued.refresh_token,
        max_age=_max_age(issued.refresh_expires_at),
        path=REFRESH_COOKIE_PATH,
        secure=settings.AUTH_COOKIE_SECURE,
        httponly=True,
        samesite=settings.REFRESH_COOKIE_SAMESITE,
    )


def auth_cookies_clear(response: HttpResponse) -> None:
    response.delete_cookie(access_cookie_name(), path="/", samesite=settings.ACCESS_COOKIE_SAMESITE)
    response.delete_cookie(
        refresh_cookie_name(), path=REFRESH_COOKIE_PATH, samesite=settings.REFRESH_COOKIE_SAMESITE
    )
    # delete_cookie() sets Secure only for __Host-/__Secure- names; keep the attributes uniform.
    for name in (access_cookie_name(), refresh_cookie_name()):
        response.cookies[name]["secure"] = settings.AUTH_COOKIE_SECURE
        response.cookies[name]["httponly"] = True


# --- browser checks --------------------------------------------------------------------------


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def origin_allowed(request: HttpRequest) -> bool:
    """No Origin (curl, a mobile app), this site, or a configured browser app origin."""
    origin = request.META.get("HTTP_ORIGIN")
    if origin is None:
        return True
    origin = origin.lower()
    if origin == "null":
        return False
    if origin == f"{request.scheme}://{request.get_host()}".lower():
        return True
    allowed = {_origin_of(o) for o in (*settings.CSRF_TRUSTED_ORIGINS, *settings.CORS_ALLOWED_ORIGINS)}
    return origin in allowed


def browser_origin_check(request: HttpRequest) -> None:
    if not origin_allowed(request):
        raise ForeignOrigin()


class _CSRFCheck(CsrfViewMiddleware):
    def _reject(self, request: HttpRequest, reason: str) -> str:
        return reason  # report instead of answering with Django's HTML page


def csrf_check(request: HttpRequest) -> None:
    """Django's CSRF check (token and, for HTTPS, Referer), with the token taken from the
    ``X-CSRFToken`` header only, as the contract says.

    Django reads a POST's body for a form's ``csrfmiddlewaretoken``: that would let a plain HTML
    form carry the token, and a malformed multipart body would fail the check with a parse error
    (and a traceback in the log) instead of ``csrf_failed``. Checking a copy of the request whose
    method is PUT keeps the rest of Django's check (Referer on HTTPS, the cookie) unchanged."""
    headers_only = copy.copy(request)
    headers_only.method = "PUT"
    check = _CSRFCheck(lambda _request: None)
    check.process_request(headers_only)
    reason = check.process_view(headers_only, None, (), {})
    if reason:
        raise CsrfFailed(f"CSRF check failed: {reason}")


# What a gateway says of the request it asks /validate about: nginx's X-Original-Method (as
# deploy/gateway sets it), Traefik's X-Forwarded-Method. The stricter wins: a client may add
# either header itself, but cannot hide the method its gateway reports.
GUARDED_METHOD_HEADERS = ("HTTP_X_ORIGINAL_METHOD", "HTTP_X_FORWARDED_METHOD")
CSRF_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})  # Django's CSRF check's


def guarded_request_csrf_check(request: HttpRequest) -> None:
    """At ``/validate``, for a token from the cookie: a write the gateway guards needs the Origin
    and CSRF token a write to the portal's own API needs (the service behind the gateway gets no
    cookie, so it cannot check them itself)."""
    reported = {request.META.get(header, "").strip().upper() for header in GUARDED_METHOD_HEADERS}
    if not reported - CSRF_SAFE_METHODS - {""}:
        return
    browser_origin_check(request)
    # The subrequest is a GET, which Django's check lets through; csrf_check checks it as a write.
    csrf_check(request)


# --- the authentication class ----------------------------------------------------------------


@dataclass(frozen=True)
class TokenAuth:
    """``request.auth``: the verified access token, its live session, how it arrived, what it reaches."""

    token: AccessToken
    session: LiveSession
    from_cookie: bool
    scope: CredentialScope


@dataclass(frozen=True)
class PersonalTokenAuth:
    """``request.auth`` for a personal access token: it has no session (views that need one refuse it)."""

    token: LiveAccessToken
    scope: CredentialScope
    from_cookie = False


def _session_user(*, user_id: int, claims: CachedClaims, scope: CredentialScope) -> SessionUser:
    return SessionUser.from_claims(
        user_id=user_id,
        email=claims.email,
        name=claims.name,
        active=claims.active,
        staff=claims.staff,
        operator=claims.operator,
        claims_version=claims.claims_version,
        credential_scope=scope,
    )


def request_credential(request: Request) -> RequestCredential:
    """The session or personal access token an authenticated request used, as audit trails name it."""
    auth = request.auth
    if isinstance(auth, PersonalTokenAuth):
        return RequestCredential(access_token_id=auth.token.token_id)
    if isinstance(auth, TokenAuth):
        return RequestCredential(session_id=auth.session.session_id)
    return RequestCredential()


def personal_token_live(request: HttpRequest, raw: str) -> LiveAccessToken:
    """A personal access token, accepted only as ``Authorization: Bearer`` (never a cookie, no CSRF).

    Its use is recorded here only by callers that accept it (``personal_token_use_record``).
    """
    if _bearer(request) != raw:
        raise TokenNotValid("A personal access token is accepted only as Authorization: Bearer.")
    live = access_token_live(secret=raw)
    second_factor_policy_check(claims=live.claims)
    return live


def personal_token_use_record(request: HttpRequest, live: LiveAccessToken) -> None:
    """When and from where the token was last used: only for a request that accepted it."""
    access_token_use_record(live=live, origin=request_origin(request))


def access_token_verify(raw: str) -> AccessToken:
    """Signature, algorithm, kid, issuer, expiry and ``token_type == "access"``; else token_not_valid."""
    try:
        return AccessToken(raw)
    except TokenError as error:
        raise TokenNotValid() from error


class JWTAuthentication(BaseAuthentication):
    """Access token from the cookie, ``Authorization: Bearer`` or ``X-Auth-Token``."""

    def authenticate(self, request: Request) -> tuple[SessionUser, TokenAuth | PersonalTokenAuth] | None:
        raw, from_cookie = access_token_from_request(request._request)
        if raw is None:
            return None
        view = (request.parser_context or {}).get("view")
        if raw.startswith(TOKEN_PREFIX):
            return self._personal_token_authenticate(request, raw, view)
        token = access_token_verify(raw)
        live = session_live(token=token)
        scope = live.credential_scope()
        user = _session_user(user_id=live.user_id, claims=live.claims, scope=scope)
        second_factor_policy_check(
            claims=live.claims, allowed=getattr(view, "allowed_before_enrolment", False)
        )
        if from_cookie and request.method in UNSAFE_METHODS:
            browser_origin_check(request._request)
            csrf_check(request._request)
        session_activity_record(live=live, write_last_seen=True)
        if token.get("cv") != user.claims_version:
            fresh = access_token_issue(
                user=user,
                session_id=live.session_id,
                session_expires_at=live.expires_at,
                scope=scope.claim,
                scope_valid_until=scope.valid_until,
            )
            request._request.extended_access_token = (fresh, from_cookie)
        return user, TokenAuth(token=token, session=live, from_cookie=from_cookie, scope=scope)

    @staticmethod
    def _personal_token_authenticate(
        request: Request, raw: str, view: Any
    ) -> tuple[SessionUser, PersonalTokenAuth]:
        live = personal_token_live(request._request, raw)
        # Views opt in: what needs a session (tokens, members, second factors) never sees a token.
        if not getattr(view, "accepts_personal_access_tokens", False):
            raise PatNotAllowed()
        personal_token_use_record(request._request, live)
        user = _session_user(user_id=live.user_id, claims=live.claims, scope=live.scope)
        return user, PersonalTokenAuth(token=live, scope=live.scope)


class ExtendedTokenMiddleware:
    """Hands out the fresh access token the authentication class minted for out-of-date claims.

    Claims (email, scope) change only through the admin and management commands, never through
    a token-authenticated API request, so the check before the view is the only one needed.
    """

    def __init__(self, get_response: Any) -> None:
        # Loaded once when the server builds its handler (gunicorn, runserver): a production
        # process without usable signing keys refuses to start instead of failing at the first
        # sign-in. Management commands (collectstatic at image build, jwt_keys) need no keys.
        key_ring(unusable_ok=True)
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        extended = getattr(request, "extended_access_token", None)
        if extended is not None:
            token, from_cookie = extended
            if from_cookie:
                access_cookie_set(response, token=str(token), expires_at=token.expires_at)
            else:
                response[EXTENDED_TOKEN_HEADER] = str(token)
        return response
