"""Login throttles, per client address and per account, on the cache (429 with Retry-After)."""

from __future__ import annotations

import hashlib

from django.conf import settings
from rest_framework import exceptions
from rest_framework.throttling import SimpleRateThrottle

from accounts.authentication import client_ip
from accounts.models import User
from accounts.services import auth_unavailable


class _CacheThrottle(SimpleRateThrottle):
    setting_name = ""

    def get_rate(self) -> str:
        # Read at request time (not class-definition time) so the setting can change in tests.
        return getattr(settings, self.setting_name)

    def allow_request(self, request, view) -> bool:
        try:
            return super().allow_request(request, view)
        except exceptions.APIException:
            raise
        except Exception as error:  # the cache is down: refuse rather than allow unlimited guessing
            raise auth_unavailable() from error


class LoginIPThrottle(_CacheThrottle):
    scope = "login_ip"
    setting_name = "LOGIN_THROTTLE_IP"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request) or "unknown"}


class LoginAccountThrottle(_CacheThrottle):
    """Guesses against one account from many addresses (the email need not exist)."""

    scope = "login_account"
    setting_name = "LOGIN_THROTTLE_ACCOUNT"

    def get_cache_key(self, request, view) -> str | None:
        data = request.data
        email = data.get("email") if isinstance(data, dict) else None
        if not isinstance(email, str) or not email.strip():
            return None  # nothing to count: the request fails validation anyway
        digest = hashlib.sha256(User.objects.normalize_email(email).encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": digest}
