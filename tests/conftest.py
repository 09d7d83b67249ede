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


# --- authentication (see accounts/): real logins, real cookies, real tokens --------------------

DEFAULT_PASSWORD = "correct horse battery"


def b64(password: str) -> str:
    """The login API's password encoding: base64 of the UTF-8 bytes."""
    import base64

    return base64.b64encode(password.encode()).decode()


def login(client, user_or_email, password: str = DEFAULT_PASSWORD, **extra):
    """POST /api/auth/login like the browser app (or with tokenDelivery="body"); returns the response."""
    email = user_or_email if isinstance(user_or_email, str) else user_or_email.email
    return client.post("/api/auth/login", {"email": email, "password": b64(password), **extra}, format="json")


@pytest.fixture
def auth_client(db):
    """``auth_client(user)``: an APIClient holding the cookies of a real login (and the CSRF token).

    Unsafe requests need the CSRF header, as in the browser: the client sends it by default.
    """

    def make(user: User, password: str = DEFAULT_PASSWORD) -> APIClient:
        client = APIClient()
        response = login(client, user, password)
        assert response.status_code == 200, response.content
        csrf = client.get("/api/auth/csrf").json()["csrfToken"]
        client.credentials(HTTP_X_CSRFTOKEN=csrf)
        client.login_response = response
        return client

    return make


@pytest.fixture
def bearer_client(db):
    """``bearer_client(user)``: an APIClient sending ``Authorization: Bearer`` from a body-delivery login."""

    def make(user: User, password: str = DEFAULT_PASSWORD) -> APIClient:
        client = APIClient()
        response = login(client, user, password, tokenDelivery="body")
        assert response.status_code == 200, response.content
        client.cookies.clear()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['accessToken']}")
        client.login_response = response
        client.tokens = response.json()
        return client

    return make
