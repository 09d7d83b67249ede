"""The nonce that binds a Google ID token to the browser that asked for it (OpenID Connect's nonce).

The browser holds a secret in an httpOnly cookie; the nonce is that secret's SHA-256. The
browser app asks for the nonce (``GET /api/auth/google/nonce``) and hands it to Google's
script, which puts it in the ID token. A sign-in with a token that carries a nonce must come
with the secret it was made from: a token copied out of a browser (a log, an extension, a
proxy) shows its nonce, never the secret, so it is useless anywhere else for the hour it is
valid. A token without a nonce (a native app that got one for this client ID its own way) is
verified as before: only the browser app's tokens carry one, and Google signs it in.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# "__Host-": only this host can set it (no Domain attribute), so a sibling subdomain cannot
# plant a secret it knows; the prefix requires the path "/".
GOOGLE_NONCE_COOKIE_PATH = "/"
# A page left open this long still signs in; the cookie stays in this browser whatever its age.
GOOGLE_NONCE_LIFETIME = timedelta(days=1)
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)


def google_nonce_cookie_name() -> str:
    return "__Host-googleNonce" if settings.AUTH_COOKIE_SECURE else "googleNonce"


def _secret(request: HttpRequest) -> str | None:
    value = request.COOKIES.get(google_nonce_cookie_name(), "")
    return value if _SECRET.fullmatch(value) else None


def _nonce_of(secret: str) -> str:
    """What Google's token carries: a hash of the secret, so the token never reveals it."""
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()).rstrip(b"=").decode()


def google_nonce_from_request(request: HttpRequest) -> str | None:
    """The nonce of the secret this browser holds (None: it holds none we made)."""
    secret = _secret(request)
    return _nonce_of(secret) if secret else None


def google_nonce_issue(request: HttpRequest, response: HttpResponse) -> str:
    """The nonce of the browser's secret, or of a new one; the secret (re)set in its cookie.

    The secret a browser already holds is kept: every tab of the app shares the cookie, and a
    new secret for the second would make the first one's Google sign-in fail.
    """
    secret = _secret(request) or secrets.token_urlsafe(32)
    response.set_cookie(
        google_nonce_cookie_name(),
        secret,
        max_age=int(GOOGLE_NONCE_LIFETIME.total_seconds()),
        path=GOOGLE_NONCE_COOKIE_PATH,
        secure=settings.AUTH_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )
    return _nonce_of(secret)


def google_nonce_clear(request: HttpRequest, response: HttpResponse) -> None:
    """A nonce is used once: after the sign-in it served, the next one gets a new secret."""
    if google_nonce_cookie_name() in request.COOKIES:
        response.delete_cookie(google_nonce_cookie_name(), path=GOOGLE_NONCE_COOKIE_PATH, samesite="Strict")
