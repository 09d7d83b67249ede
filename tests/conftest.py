"""Shared fixtures: users, clients, an API client, and a fast password hasher."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import User


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _isolated_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user_factory(db):
    counter = iter(range(1, 1_000_000))

    def make(email: str | None = None, password: str = "correct horse battery", **fields) -> User:
        email = email or f"user{next(counter)}@example.com"
        return User.objects.create_user(email=email, password=password, **fields)

    return make


@pytest.fixture
def user(user_factory) -> User:
    return user_factory(email="alice@example.com", name="Alice")
