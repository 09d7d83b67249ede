"""Fixtures for the Google sign-in tests (helpers in tests/accounts/google_tokens.py)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import override_settings

from tests.accounts.google_tokens import KID, FakeGoogle, certificate_pem, private_key


@pytest.fixture(scope="module")
def google_key() -> rsa.RSAPrivateKey:
    return private_key()


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    return private_key()


@pytest.fixture
def google(google_key) -> FakeGoogle:
    """Google's certificate endpoint, serving the certificate of ``google_key``."""
    return FakeGoogle({KID: certificate_pem(google_key)})


@pytest.fixture
def in_process_cache():
    """Run on the in-process cache, emptied first.

    Redis expires keys on its own clock, which time-machine cannot move: tests that travel in
    time past a cache entry's lifetime use this. Changing CACHES resets django.core.cache.caches
    (Django's setting_changed handler), so the code under test sees the new cache.
    """
    from django.core.cache import cache

    with override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "time-travel"}
        }
    ):
        cache.clear()
        yield cache
        cache.clear()
