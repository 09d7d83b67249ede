"""The nonce that binds a Google ID token to the browser that asked for it (OpenID Connect's nonce).

The browser app asks for a nonce (``GET /api/auth/google/nonce``) and hands it to Google's
script, which puts it in the ID token; the same value waits in an httpOnly cookie. A sign-in
with a token that carries a nonce must come with that cookie: a token copied out of a browser
(a log, an extension, a proxy) is useless anywhere else for the hour it is valid. A token
without a nonce (a native app that got one for this client ID its own way) is verified as
before: only the browser app's tokens carry one, and Google signs it in.
"""

from __future__ import annotations

import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.http import HttpRequest, HttpResponse

# Both endpoints that take a Google ID token: /api/auth/google and /api/invitations/sign-up.
GOOGLE_NONCE_COOKIE_PATH = "/api/"
# A page left open this long still signs in; the cookie stays in this browser whatever its age.
GOOGLE_NONCE_LIFETIME = timedelta(days=1)
_NONCE = re.compile(r"[A-Za-z0-9_-]{32,64}")


def google_nonce_cookie_name() -> str:
    return "__Secure-googleNonce" if settings.AUTH_COOKIE_SECURE else "googleNonce"


def google_nonce_from_request(request: HttpRequest) -> str | None:
    """The nonce this browser was given (None: none, or not one we make)."""
    value = request.COOKIES.get(google_nonce_cookie_name(), "")
    return value if _NONCE.fullmatch(value) else None


def google_nonce_issue(request: HttpRequest, response: HttpResponse) -> str:
    """The browser's nonce, or a new one; (re)set in its cookie.

    The nonce a browser already holds is kept: two tabs of the app share the cookie, and a new
    nonce for the second would make the first one's Google sign-in fail.
    """
    nonce = google_nonce_from_request(request) or secrets.token_urlsafe(32)
    response.set_cookie(
        google_nonce_cookie_name(),
        nonce,
        max_age=int(GOOGLE_NONCE_LIFETIME.total_seconds()),
        path=GOOGLE_NONCE_COOKIE_PATH,
        secure=settings.AUTH_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )
    return nonce


def google_nonce_clear(request: HttpRequest, response: HttpResponse) -> None:
    """A nonce is used once: after the sign-in it served, the next one gets a new nonce."""
    if google_nonce_cookie_name() in request.COOKIES:
        response.delete_cookie(google_nonce_cookie_name(), path=GOOGLE_NONCE_COOKIE_PATH, samesite="Strict")
