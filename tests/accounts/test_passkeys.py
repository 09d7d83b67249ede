"""Passkeys through the API, answered by a software authenticator: registration, the second step
of a sign-in, a passkey as the only factor, renaming and removal."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.models import Passkey, Session
from tests.accounts.soft_authenticator import SoftAuthenticator
from tests.conftest import login

ORIGIN = "http://testserver"


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator(origin=ORIGIN, rp_id="testserver")


def _register(client, authenticator, name="Laptop") -> dict:
    ceremony = client.post("/api/auth/mfa/passkeys/options").json()
    assert ceremony["publicKey"]["rp"]["id"] == "testserver"
    credential = authenticator.create(ceremony["publicKey"])
    response = client.post(
        "/api/auth/mfa/passkeys",
        {"token": ceremony["token"], "credential": credential, "name": name},
        format="json",
    )
    assert response.status_code == 201, response.content
    return response.json()


@pytest.fixture
def browser(auth_client, user):
    return auth_client(user)


def test_a_registered_passkey_is_listed_and_becomes_the_second_factor(browser, user, authenticator):
    passkey = _register(browser, authenticator)
    assert [p["name"] for p in browser.get("/api/auth/mfa").json()["passkeys"]] == ["Laptop"]
    assert passkey["lastUsedAt"] is None
    assert login(APIClient(), user).json()["methods"] == ["webauthn"]


def test_the_second_step_with_a_passkey(browser, user, authenticator):
    _register(browser, authenticator)
    token = login(APIClient(), user).json()["mfaToken"]
    options = (
        APIClient().post("/api/auth/mfa/options", {"mfaToken": token}, format="json").json()["publicKey"]
    )
    assert [c["id"] for c in options["allowCredentials"]] == [Passkey.objects.get().credential_id]
    response = APIClient().post(
        "/api/auth/mfa/verify", {"mfaToken": token, "webauthn": authenticator.get(options)}, format="json"
    )
    assert response.status_code == 200, response.content
    assert Session.objects.latest("created_at").amr == ["password", "webauthn"]


def test_a_passkey_alone_signs_in_when_the_user_is_verified(browser, user, authenticator):
    _register(browser, authenticator)
    client = APIClient()
    ceremony = client.post("/api/auth/passkey/options").json()
    assert ceremony["publicKey"]["allowCredentials"] == []  # discoverable: the browser picks the passkey
    response = client.post(
        "/api/auth/passkey",
        {"token": ceremony["token"], "webauthn": authenticator.get(ceremony["publicKey"])},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["user"]["email"] == user.email
    assert Session.objects.latest("created_at").amr == ["passkey"]


@pytest.mark.parametrize(
    "misuse", ["no user verification", "replayed challenge", "another origin", "unknown passkey"]
)
def test_a_passkey_sign_in_that_does_not_check_out_is_refused(browser, user, authenticator, misuse):
    _register(browser, authenticator)
    client = APIClient()
    ceremony = client.post("/api/auth/passkey/options").json()
    signer = authenticator
    if misuse == "another origin":
        signer.origin = "https://evil.example"
    elif misuse == "unknown passkey":
        signer = SoftAuthenticator(origin=ORIGIN, rp_id="testserver")
    assertion = signer.get(ceremony["publicKey"], user_verified=misuse != "no user verification")
    body = {"token": ceremony["token"], "webauthn": assertion}
    if misuse == "replayed challenge":
        assert client.post("/api/auth/passkey", body, format="json").status_code == 200
        body["webauthn"] = authenticator.get(ceremony["publicKey"])
    response = client.post("/api/auth/passkey", body, format="json")
    assert response.status_code in (401, 403)
    expected = "mfa_token_invalid" if misuse == "replayed challenge" else "invalid_second_factor"
    assert response.json()["code"] == expected


def test_a_passkey_is_renamed_and_removed(browser, user, authenticator):
    passkey = _register(browser, authenticator)
    renamed = browser.patch(f"/api/auth/mfa/passkeys/{passkey['id']}", {"name": "YubiKey"}, format="json")
    assert renamed.json()["name"] == "YubiKey"
    assert browser.delete(f"/api/auth/mfa/passkeys/{passkey['id']}").status_code == 204
    assert not Passkey.objects.exists()
    assert "accessToken" in str(login(APIClient(), user).cookies)  # back to a password alone


def test_someone_elses_passkey_cannot_be_touched(browser, user, user_factory, auth_client, authenticator):
    passkey = _register(browser, authenticator)
    mallory = auth_client(user_factory(email="mallory@example.com"))
    assert mallory.delete(f"/api/auth/mfa/passkeys/{passkey['id']}").json()["code"] == "not_found"
    assert Passkey.objects.filter(pk=passkey["id"]).exists()
