"""Device cookies (OWASP's "Slow Down Online Guessing Attacks with Device Cookies").

Anyone who knows an address can keep its owner locked out: five wrong passwords a minute
fill the per-account throttle, and the right password is then refused too. So a browser that
has signed in to an account successfully gets a device cookie: signed by the portal, naming
that account, the password it proved and a random nonce. A later sign-in to the same account
that presents it is counted in the device's own bucket instead of the account's, so a
stranger's guesses no longer lock out a device its owner has used; unknown devices stay
throttled per account. A device cookie that collects too many failures is throttled in its own
bucket, and every sign-in is still throttled per client address.

Clients that keep no cookies (``tokenDelivery: "body"``: scripts, command-line tools) get the
same value as ``deviceToken`` in the answer's body, and send it back in the body of later
sign-ins to that account.

A device counts only while the password it was earned with is the account's: after a change or
a reset (someone else knew it), cookies earned before, a stolen browser's among them, are
unknown devices again, instead of each buying its own attempts for 180 days.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.core import signing
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare, salted_hmac
from rest_framework.response import Response

from accounts.models import User

DEVICE_COOKIE_LIFETIME = timedelta(days=180)
DEVICE_COOKIE_PATH = "/api/auth/"  # sent only to the sign-in endpoints
DEVICE_TOKEN_MAX_LENGTH = 512  # a signed value of about 200 characters
_SALT = "accounts.devices.login-device"


def device_cookie_name() -> str:
    return "__Secure-loginDevice" if settings.AUTH_COOKIE_SECURE else "loginDevice"


def _password_version(user: User, *, secret: str | None = None) -> str:
    """Changes whenever the user's password hash does: a new password (changed, reset or set by an
    operator), or the same one hashed again with stronger parameters (the next sign-in then
    gives the browser a new cookie). Keyed (by ``secret``, default SECRET_KEY), so the cookie
    tells nothing of the hash."""
    return salted_hmac(_SALT, user.password, secret=secret, algorithm="sha256").hexdigest()[:32]


def _password_version_matches(presented: str, user: User) -> bool:
    """Under SECRET_KEY or a key it replaced (SECRET_KEY_FALLBACKS, which the cookie's signature
    honours too): rotating the key must not make every browser an unknown device."""
    keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return any(constant_time_compare(presented, _password_version(user, secret=key)) for key in keys)


def device_presented(request: HttpRequest) -> str | None:
    """The device the request names: its cookie, or a body's ``deviceToken`` (unchecked)."""
    raw = request.COOKIES.get(device_cookie_name())
    if raw:
        return raw
    data = getattr(request, "data", None)  # DRF's parsed body
    token = data.get("deviceToken") if isinstance(data, dict) else None
    return token if isinstance(token, str) and len(token) <= DEVICE_TOKEN_MAX_LENGTH else None


def device_remember(
    request: HttpRequest, response: Response, *, user: User, in_body: bool, second_factor: bool = False
) -> None:
    """After a successful sign-in step: a new device cookie for ``user`` (``in_body``: the body's
    ``deviceToken``), unless the client named a valid one; ``second_factor``: the step was the
    second, which the password alone never earns (a new one, marked so, unless it named one
    marked so already)."""
    presented = device_presented(request)
    if device_cookie_nonce(presented, user=user, second_factor=second_factor) is not None:
        # Known: kept as it is (after the first step it may say a second step earned it), but
        # made out again under today's SECRET_KEY if an older one signed it (a rotation).
        claims = _claims(presented, email=user.email)
        if claims is not None and claims["p"] != _password_version(user):
            _device_give(response, claims | {"p": _password_version(user)}, in_body=in_body)
        return
    claims = {"e": user.email, "p": _password_version(user), "n": secrets.token_urlsafe(16)}
    _device_give(response, claims | ({"f": 1} if second_factor else {}), in_body=in_body)


def _device_give(response: Response, claims: dict, *, in_body: bool) -> None:
    value = signing.dumps(claims, salt=_SALT)
    if in_body:
        response.data["deviceToken"] = value
    else:
        _cookie_set(response, value)


def _cookie_set(response: HttpResponse, value: str) -> None:
    response.set_cookie(
        device_cookie_name(),
        value,
        max_age=int(DEVICE_COOKIE_LIFETIME.total_seconds()),
        path=DEVICE_COOKIE_PATH,
        secure=settings.AUTH_COOKIE_SECURE,
        httponly=True,
        samesite="Strict",
    )


def device_cookie_renewed(request: HttpRequest, response: HttpResponse, *, user: User) -> HttpResponse:
    """``response``, after ``user`` changed their password on this browser (proving the old one, as
    a sign-in would): a device cookie it holds for them is made out to the new password, keeping
    whether a second step earned it, so this browser stays a known device; other browsers'
    cookies are unknown devices from now on."""
    claims = _claims(request.COOKIES.get(device_cookie_name()), email=user.email)
    if claims is not None:
        renewed = claims | {"p": _password_version(user)}
        _cookie_set(response, signing.dumps(renewed, salt=_SALT))
    return response


def _claims(raw: str | None, *, email: str) -> dict | None:
    """The claims of the device cookie ``raw`` if the portal signed it, for ``email``, and it has
    not expired; else None."""
    if not raw:
        return None
    try:
        claims = signing.loads(raw, salt=_SALT, max_age=DEVICE_COOKIE_LIFETIME)
    except signing.BadSignature:  # also SignatureExpired
        return None
    if not isinstance(claims, dict) or claims.get("e") != email or not isinstance(claims.get("n"), str):
        return None
    return claims


def device_nonce(request: HttpRequest, *, email: str) -> str | None:
    """The nonce of the request's device (cookie or token) if it is valid for the account ``email``
    (canonical), or None. The account is read only when a device signed for it is presented."""
    raw = device_presented(request)
    if _claims(raw, email=email) is None:
        return None
    user = User.objects.filter(email=email).only("email", "password").first()
    return None if user is None else device_cookie_nonce(raw, user=user)


def device_cookie_nonce(raw: str | None, *, user: User, second_factor: bool = False) -> str | None:
    """The nonce of the device cookie ``raw`` if it is valid for ``user`` and the password they
    have now (and, with ``second_factor``, was earned by a second step too); else None."""
    claims = _claims(raw, email=user.email)
    if claims is None or not _password_version_matches(str(claims.get("p", "")), user):
        return None
    return claims["n"] if claims.get("f") == 1 or not second_factor else None
