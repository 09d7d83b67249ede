"""Device cookies (OWASP's "Slow Down Online Guessing Attacks with Device Cookies").

Anyone who knows an address can keep its owner locked out: five wrong passwords a minute
fill the per-account throttle, and the right password is then refused too. So a browser that
has signed in to an account successfully gets a device cookie: signed by the portal, naming
that account and a random nonce. A later sign-in to the same account that presents it is
counted in the device's own bucket instead of the account's, so a stranger's guesses no
longer lock out a device its owner has used; unknown devices stay throttled per account.
A device cookie that collects too many failures is throttled in its own bucket, and every
sign-in is still throttled per client address.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse

DEVICE_COOKIE_LIFETIME = timedelta(days=180)
DEVICE_COOKIE_PATH = "/api/auth/"  # sent only to the sign-in endpoints
_SALT = "accounts.devices.login-device"


def device_cookie_name() -> str:
    return "__Secure-loginDevice" if settings.AUTH_COOKIE_SECURE else "loginDevice"


def device_cookie_set(response: HttpResponse, *, email: str, second_factor: bool = False) -> None:
    """Give this browser a device cookie for ``email`` (canonical), after a successful sign-in;
    ``second_factor``: after its second step too, which the password alone never earns."""
    claims = {"e": email, "n": secrets.token_urlsafe(16)} | ({"f": 1} if second_factor else {})
    value = signing.dumps(claims, salt=_SALT)
    response.set_cookie(
        device_cookie_name(),
        value,
        max_age=int(DEVICE_COOKIE_LIFETIME.total_seconds()),
        path=DEVICE_COOKIE_PATH,
        secure=settings.AUTH_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )


def device_nonce(request: HttpRequest, *, email: str) -> str | None:
    """The nonce of a valid device cookie issued for ``email``, or None (no cookie, forged, expired, another account)."""
    return device_cookie_nonce(request.COOKIES.get(device_cookie_name()), email=email)


def device_cookie_nonce(raw: str | None, *, email: str, second_factor: bool = False) -> str | None:
    """The nonce of the device cookie ``raw`` if it is valid for ``email`` (and, with
    ``second_factor``, was earned by a second step too); else None."""
    if not raw:
        return None
    try:
        claims = signing.loads(raw, salt=_SALT, max_age=DEVICE_COOKIE_LIFETIME)
    except signing.BadSignature:  # also SignatureExpired
        return None
    if not isinstance(claims, dict) or claims.get("e") != email or not isinstance(claims.get("n"), str):
        return None
    return claims["n"] if claims.get("f") == 1 or not second_factor else None
