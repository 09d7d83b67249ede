"""The account endpoints' bodies: a key they do not know, or a number for text, is a 400, not ignored."""

from __future__ import annotations

import pytest

from accounts.models import PersonalAccessToken
from tests.conftest import DEFAULT_PASSWORD, b64

PASSWORD = b64(DEFAULT_PASSWORD)
ASSERTION = {"id": "credential", "type": "public-key"}
# Each account endpoint that reads a body, with a body it takes and one key it does not: the
# snake_case spelling of one of its own, or a name it has never had.
BODIES = [
    (
        "post",
        "/api/auth/login",
        {"email": "alice@example.com", "password": PASSWORD, "token_delivery": "body"},
    ),
    ("post", "/api/auth/google", {"credential": "google-id-token", "nonce": "n"}),
    ("post", "/api/auth/mfa/verify", {"mfaToken": "step", "code": "123456", "rememberDevice": True}),
    ("post", "/api/auth/mfa/options", {"mfa_token": "step"}),
    ("post", "/api/auth/passkey", {"token": "t", "webauthn": ASSERTION, "tokenDeliver": "body"}),
    ("post", "/api/auth/mfa/totp/confirm", {"code": "123456", "secret": "JBSWY3DP"}),
    ("delete", "/api/auth/mfa/totp", {"code": "123456", "recoveryCode": "abcd"}),
    (
        "post",
        "/api/auth/mfa/passkeys",
        {"token": "t", "credential": ASSERTION, "name": "Key", "label": "Key"},
    ),
    ("patch", "/api/auth/mfa/passkeys/1", {"name": "Key", "id": 2}),
    ("post", "/api/auth/reauthenticate", {"password": PASSWORD, "remember": True}),
    ("post", "/api/auth/password", {"currentPassword": PASSWORD, "new_password": PASSWORD}),
    ("post", "/api/auth/password/reset", {"email": "alice@example.com", "redirect": "https://evil.example"}),
    ("post", "/api/auth/password/reset/check", {"uid": "u", "token": "t", "email": "alice@example.com"}),
    ("post", "/api/auth/password/reset/confirm", {"uid": "u", "token": "t", "newPassword": PASSWORD, "x": 1}),
    ("post", "/api/auth/tokens", {"name": "ci", "expires_in": "1h", "clients": {"client1": ["view"]}}),
]
KNOWN = {
    "/api/auth/login": {"email", "password", "tokenDelivery", "deviceToken"},
    "/api/auth/google": {"credential", "tokenDelivery"},
    "/api/auth/mfa/verify": {"mfaToken", "deviceToken", "code", "webauthn", "tokenDelivery"},
    "/api/auth/mfa/options": {"mfaToken"},
    "/api/auth/passkey": {"token", "webauthn", "tokenDelivery"},
    "/api/auth/mfa/totp/confirm": {"code"},
    "/api/auth/mfa/totp": {"code"},
    "/api/auth/mfa/passkeys": {"token", "credential", "name"},
    "/api/auth/mfa/passkeys/1": {"name"},
    "/api/auth/reauthenticate": {"password", "code", "token", "webauthn"},
    "/api/auth/password": {"currentPassword", "newPassword"},
    "/api/auth/password/reset": {"email"},
    "/api/auth/password/reset/check": {"uid", "token"},
    "/api/auth/password/reset/confirm": {"uid", "token", "newPassword"},
    "/api/auth/tokens": {"name", "expiresIn", "clients"},
}


@pytest.fixture
def caller(bearer_client, user1, settings):
    """Signed in a moment ago (so re-authenticated too), with Google sign-in on."""
    settings.GOOGLE_CLIENT_IDS = ["client-id.apps.googleusercontent.com"]
    return bearer_client(user1)


@pytest.mark.parametrize(("method", "path", "body"), BODIES, ids=[f"{m} {p}" for m, p, _ in BODIES])
def test_an_unknown_key_is_refused_by_name(caller, method, path, body):
    (unknown,) = set(body) - KNOWN[path]

    response = getattr(caller, method)(path, body, format="json")

    assert response.status_code == 400, response.content
    assert (response.json()["code"], response.json()["fields"]) == (
        "invalid_request",
        {unknown: ["Unknown field."]},
    )


def test_a_misspelt_lifetime_mints_no_token(caller):
    """Ignored, it gave the default 30 days to a token asked to live an hour."""
    body = {"name": "ci", "expires_in": "1h", "clients": {"client1": ["view"]}}

    response = caller.post("/api/auth/tokens", body, format="json")

    assert response.status_code == 400
    assert not PersonalAccessToken.objects.exists()


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/auth/tokens", {"name": 123, "clients": {"client1": ["view"]}}, "name"),
        ("/api/auth/tokens", {"name": 1.5, "clients": {"client1": ["view"]}}, "name"),
        ("/api/auth/mfa/verify", {"mfaToken": 5, "code": "123456"}, "mfaToken"),
        ("/api/auth/password/reset/check", {"uid": 1, "token": "t"}, "uid"),
        (
            "/api/auth/login",
            {"email": "alice@example.com", "password": PASSWORD, "deviceToken": 7},
            "deviceToken",
        ),
    ],
    ids=["integer-name", "float-name", "integer-mfa-token", "integer-uid", "integer-device-token"],
)
def test_a_number_where_text_is_expected_is_refused(caller, path, body, field):
    response = caller.post(path, body, format="json")

    assert response.status_code == 400, response.content
    assert response.json()["fields"] == {field: ["Not a valid string."]}
    assert not PersonalAccessToken.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"email": "client1@example.com", "password": PASSWORD},  # the browser app's
        {"email": "client1@example.com", "password": PASSWORD, "tokenDelivery": "body"},  # the README's curl
    ],
    ids=["browser", "script"],
)
def test_the_bodies_clients_send_still_sign_in(api_client, user1, body):
    assert api_client.post("/api/auth/login", body, format="json").status_code == 200
