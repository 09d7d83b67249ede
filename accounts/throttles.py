"""Throttles on the cache (429 with Retry-After): sign-in per client address and per account,
and what a signed-in user may repeat (``UserThrottle``). The per-account limit leaves a record
in the audit log when it refuses, once per window.

Counted with ``config.ratelimit``: atomically, so that requests sent together cannot all pass
(DRF's own throttle reads and writes back a list), and never more than the rate in any stretch
of its period."""

from __future__ import annotations

import hashlib
import ipaddress

from django.conf import settings
from django.db import DatabaseError
from rest_framework.throttling import SimpleRateThrottle

from accounts.audit import sign_in_throttled_record
from accounts.authentication import client_ip, request_origin
from accounts.devices import device_nonce
from accounts.emails import email_canonical_or_none
from config import metrics
from config.cache import CACHE_ERRORS
from config.errors import AuthUnavailable
from config.ratelimit import attempt_take


class _CacheThrottle(SimpleRateThrottle):
    """DRF's rate settings and cache keys; counted by ``config.ratelimit`` instead of DRF's list."""

    setting_name = ""

    def get_rate(self) -> str:
        # Read at request time (not class-definition time) so the setting can change in tests.
        return getattr(settings, self.setting_name)

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        try:
            self.retry_after = attempt_take(
                key=self.key, limit=self.num_requests, seconds=self.duration, now=self.timer()
            )
        except CACHE_ERRORS as error:  # the cache is down: refuse rather than allow unlimited guessing
            raise AuthUnavailable() from error
        if self.retry_after is not None:
            metrics.login_throttled_record(throttle=self.scope)
            return False
        return True

    def wait(self) -> float | None:
        return self.retry_after


def _request_email(request) -> str | None:
    """The body's email, canonical; None when no account can have it (validation refuses the request)."""
    data = request.data
    return email_canonical_or_none(data.get("email")) if isinstance(data, dict) else None


def _digest(email: str) -> str:
    return hashlib.sha256(email.encode()).hexdigest()


def _address_bucket(ip: str | None) -> str:
    """What one client's attempts are counted under: an IPv4 address, or an IPv6 address's /64.

    A home or a server gets a whole /64 and may use any address in it: counted one by one,
    its attempts would never be limited.
    """
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return ip or "unknown"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(getattr(address, "ipv4_mapped", None) or address)


class LoginIPThrottle(_CacheThrottle):
    scope = "login_ip"
    setting_name = "LOGIN_THROTTLE_IP"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": _address_bucket(client_ip(request))}


class PublicIPThrottle(LoginIPThrottle):
    """Requests per address that try no credential (a reset request, an invitation's preview), in
    a bucket of their own at the same rate: a team opening its invitations from one office
    network must not spend that network's sign-ins."""

    scope = "public_ip"


class LoginAccountThrottle(_CacheThrottle):
    """Guesses against one account from many addresses (the email need not exist).

    A browser holding a device cookie for the account counts in its own bucket instead
    (``accounts.devices``), so strangers' guesses cannot lock its owner out.
    """

    scope = "login_account"
    setting_name = "LOGIN_THROTTLE_ACCOUNT"

    def get_cache_key(self, request, view) -> str | None:
        email = _request_email(request)
        if email is None:
            return None  # no password is tried
        nonce = device_nonce(request, email=email)
        if nonce is not None:
            return self.cache_format % {"scope": "login_device", "ident": nonce}
        return self.cache_format % {"scope": self.scope, "ident": _digest(email)}

    def allow_request(self, request, view) -> bool:
        allowed = super().allow_request(request, view)
        if not allowed:
            self._refusal_record(request, view)
        return allowed

    def _refusal_record(self, request, view) -> None:
        """Audit the account's refused sign-ins: one row per account and window however many
        attempts are refused (from however many devices), so an attacker cannot flood the log."""
        email = _request_email(request)  # not None: only a request with an account is counted
        marker = self.cache_format % {"scope": "login_account_refused", "ident": _digest(email)}
        try:
            first = self.cache.add(marker, True, timeout=self.duration)
        except CACHE_ERRORS as error:
            raise AuthUnavailable() from error
        if not first:
            return
        limit = "per-device" if device_nonce(request, email=email) is not None else "per-account"
        try:
            sign_in_throttled_record(
                email=email,
                method=getattr(view, "auth_method", ""),
                origin=request_origin(request),
                detail=f"{limit} limit {self.rate}",
            )
        except DatabaseError:
            self.cache.delete(marker)  # the next refusal in this window tries again
            raise


class PasswordResetThrottle(_CacheThrottle):
    """Reset requests per address, in a bucket of their own: strangers' wrong passwords for an
    account must not also refuse its owner the way back in (``password_reset_due``)."""

    scope = "password_reset"
    setting_name = "LOGIN_THROTTLE_ACCOUNT"

    def get_cache_key(self, request, view) -> str | None:
        email = _request_email(request)
        return None if email is None else self.cache_format % {"scope": self.scope, "ident": _digest(email)}


def password_reset_due(request, view) -> bool:
    """Whether to act on a reset request for its address. One asked for too often is answered
    202 like any other and nothing is done: a 429 would let strangers, asking from many
    addresses, refuse its owner the way back in. The owner finds the link one of those requests
    sent (one email per ``PASSWORD_RESET_EMAIL_INTERVAL``) in the inbox."""
    return PasswordResetThrottle().allow_request(request, view)


class UserThrottle(_CacheThrottle):
    """Attempts per signed-in user; subclasses name the ``scope`` and the rate's ``setting_name``."""

    def get_cache_key(self, request, view) -> str | None:
        user_id = getattr(request.user, "pk", None)
        return None if user_id is None else self.cache_format % {"scope": self.scope, "ident": user_id}


class PasswordChangeThrottle(_CacheThrottle):
    """Password changes per session: a stolen session must not be able to guess the current
    password at full speed (each guess is a change attempt), so it gets the login's rate. Per
    session, not per account: its guesses must not refuse the owner's own session the change
    that shuts it out (a session cannot make another without the password)."""

    scope = "password_change"
    setting_name = "LOGIN_THROTTLE_ACCOUNT"

    def get_cache_key(self, request, view) -> str | None:
        session = getattr(request.auth, "session", None)
        if session is None:
            return None  # not signed in: refused before anything is tried
        return self.cache_format % {"scope": self.scope, "ident": session.session_id}
