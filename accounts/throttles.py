"""Login throttles, per client address and per account, on the cache (429 with Retry-After)."""

from __future__ import annotations

import hashlib

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from accounts.authentication import client_ip
from accounts.devices import device_nonce
from accounts.emails import email_canonical_or_none
from config import metrics
from config.cache import CACHE_ERRORS
from config.errors import AuthUnavailable


class _CacheThrottle(SimpleRateThrottle):
    setting_name = ""

    def get_rate(self) -> str:
        # Read at request time (not class-definition time) so the setting can change in tests.
        return getattr(settings, self.setting_name)

    def allow_request(self, request, view) -> bool:
        try:
            allowed = super().allow_request(request, view)
        except CACHE_ERRORS as error:  # the cache is down: refuse rather than allow unlimited guessing
            raise AuthUnavailable() from error
        if not allowed:
            metrics.login_throttled_record(throttle=self.scope)
        return allowed


class LoginIPThrottle(_CacheThrottle):
    scope = "login_ip"
    setting_name = "LOGIN_THROTTLE_IP"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request) or "unknown"}


class LoginAccountThrottle(_CacheThrottle):
    """Guesses against one account from many addresses (the email need not exist).

    A browser holding a device cookie for the account counts in its own bucket instead
    (``accounts.devices``), so strangers' guesses cannot lock its owner out.
    """

    scope = "login_account"
    setting_name = "LOGIN_THROTTLE_ACCOUNT"

    def get_cache_key(self, request, view) -> str | None:
        data = request.data
        email = email_canonical_or_none(data.get("email")) if isinstance(data, dict) else None
        if email is None:
            return None  # no account can have it: the request fails validation, no password is tried
        nonce = device_nonce(request, email=email)
        if nonce is not None:
            return self.cache_format % {"scope": "login_device", "ident": nonce}
        digest = hashlib.sha256(email.encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": digest}


class PasswordChangeThrottle(_CacheThrottle):
    """Password changes per account: a stolen session must not be able to guess the current
    password at full speed (each guess is a change attempt), so it gets the login's rate."""

    scope = "password_change"
    setting_name = "LOGIN_THROTTLE_ACCOUNT"

    def get_cache_key(self, request, view) -> str | None:
        user_id = getattr(request.user, "pk", None)
        return None if user_id is None else self.cache_format % {"scope": self.scope, "ident": user_id}
