"""Passkeys through the API, answered by a software authenticator: registration, the second step
of a sign-in, a passkey as the only factor, renaming and removal."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent, Passkey, Session, SignInChallenge
from tests.accounts.soft_authenticator import SoftAuthenticator
from tests.conftest import login

ORIGIN = "http://testserver"


@pytest.fixture
def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator(origin=ORIGIN, rp_id="testserver")


def _registration_answer(client, authenticator, name="Laptop"):
    """The portal's answer to a registration ceremony the authenticator completes."""
    ceremony = client.post("/api/auth/mfa/passkeys/options").json()
    assert ceremony["publicKey"]["rp"]["id"] == "testserver"
    credential = authenticator.create(ceremony["publicKey"])
    return client.post(
        "/api/auth/mfa/passkeys",
        {"token": ceremony["token"], "credential": credential, "name": name},
        format="json",
    )


def _register(client, authenticator, name="Laptop") -> dict:
    response = _registration_answer(client, authenticator, name)
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


def test_a_first_passkey_signs_the_other_sessions_out_and_a_second_one_does_not(
    auth_client, user, authenticator
):
    other = auth_client(user)
    browser = auth_client(user)
    _register(browser, authenticator)
    assert other.get("/api/auth/me").json()["code"] == "token_not_valid"
    assert Session.objects.get(revoked_at=None).amr == ["password", "webauthn"]  # it proved the passkey

    signed_in_with_it = APIClient()
    ceremony = signed_in_with_it.post("/api/auth/passkey/options").json()
    answer = {"token": ceremony["token"], "webauthn": authenticator.get(ceremony["publicKey"])}
    assert signed_in_with_it.post("/api/auth/passkey", answer, format="json").status_code == 200
    _register(browser, SoftAuthenticator(origin=ORIGIN, rp_id="testserver"), name="Phone")

    assert signed_in_with_it.get("/api/auth/me").status_code == 200
    assert browser.get("/api/auth/me").status_code == 200


@pytest.mark.parametrize(
    "cose_key",
    [
        [],  # CBOR, but not a key
        "a key",
        {1: 2, 3: -7, -1: 1, -2: b"\x01" * 32, -3: b"\x02" * 32},  # a point not on P-256
        {1: 2, 3: -7, -1: 99, -2: b"\x01" * 32, -3: b"\x02" * 32},  # a curve nobody knows
    ],
    ids=["cbor-array", "cbor-text", "off-the-curve", "unknown-curve"],
)
def test_a_passkey_whose_public_key_could_never_verify_is_refused(browser, authenticator, cose_key):
    """Stored, it would lock its owner out at the next sign-in."""
    authenticator.cose_key = cose_key
    response = _registration_answer(browser, authenticator)
    assert response.status_code == 400, response.content
    assert response.json()["fields"]["credential"] == [
        "The passkey could not be registered; please try again."
    ]
    assert not Passkey.objects.exists()


def test_a_credential_id_longer_than_webauthn_allows_is_refused(browser, authenticator):
    authenticator.credential_id = b"\x07" * 1024  # WebAuthn: at most 1023 bytes
    response = _registration_answer(browser, authenticator)
    assert response.status_code == 400, response.content
    assert not Passkey.objects.exists()


def test_only_the_transports_webauthn_knows_are_kept(browser, authenticator):
    authenticator.transports = ["internal", "teleport", 7, "hybrid", "usb\u2028"]
    _register(browser, authenticator)
    assert Passkey.objects.get().transports == ["internal", "hybrid"]


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
    ("misuse", "status", "code"),
    [
        ("no user verification", 401, "invalid_second_factor"),
        ("replayed challenge", 403, "mfa_token_invalid"),
        ("another origin", 401, "invalid_second_factor"),
        ("unknown passkey", 401, "invalid_second_factor"),
    ],
)
def test_a_passkey_sign_in_that_does_not_check_out_is_refused(
    browser, user, authenticator, misuse, status, code
):
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
    assert (response.status_code, response.json()["code"]) == (status, code)


def test_a_passkey_is_renamed_and_removed(browser, user, authenticator):
    passkey = _register(browser, authenticator)
    renamed = browser.patch(f"/api/auth/mfa/passkeys/{passkey['id']}", {"name": "YubiKey"}, format="json")
    assert renamed.json()["name"] == "YubiKey"
    assert browser.delete(f"/api/auth/mfa/passkeys/{passkey['id']}").status_code == 204
    assert not Passkey.objects.exists()
    assert "accessToken" in str(login(APIClient(), user).cookies)  # back to a password alone


def test_a_passkey_name_with_a_text_direction_override_is_refused_and_nothing_changes(browser, authenticator):
    refused = _registration_answer(browser, authenticator, name="Key\u202eyeKbuY")
    assert (refused.status_code, list(refused.json()["fields"])) == (400, ["name"])
    assert not Passkey.objects.exists()

    passkey = _register(browser, authenticator)
    renamed = browser.patch(f"/api/auth/mfa/passkeys/{passkey['id']}", {"name": "Yubi\nKey"}, format="json")
    assert (renamed.status_code, list(renamed.json()["fields"])) == (400, ["name"])
    assert Passkey.objects.get().name == "Laptop"


def test_someone_elses_passkey_cannot_be_touched(browser, user, user_factory, auth_client, authenticator):
    passkey = _register(browser, authenticator)
    mallory = auth_client(user_factory(email="mallory@example.com"))
    assert mallory.delete(f"/api/auth/mfa/passkeys/{passkey['id']}").json()["code"] == "not_found"
    assert Passkey.objects.filter(pk=passkey["id"]).exists()


# --- Malformed credentials are refused, never a 500 --------------------------------------------


def _broken(credential: dict, how: str) -> dict:
    """``credential`` with its ``response`` missing, or its binary parts not what they claim."""
    if how == "no response":
        return {key: value for key, value in credential.items() if key != "response"}
    response = dict(credential["response"])
    for name in ("attestationObject", "authenticatorData"):
        if name in response:
            response[name] = "bm90LWNib3I"  # base64url of "not-cbor"
    return {**credential, "response": response}


@pytest.mark.parametrize("how", ["no response", "garbage data"])
def test_a_malformed_credential_is_refused_at_registration(browser, authenticator, how):
    ceremony = browser.post("/api/auth/mfa/passkeys/options").json()
    credential = _broken(authenticator.create(ceremony["publicKey"]), how)
    response = browser.post(
        "/api/auth/mfa/passkeys",
        {"token": ceremony["token"], "credential": credential, "name": "Laptop"},
        format="json",
    )
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
    assert "credential" in response.json()["fields"]
    assert not Passkey.objects.exists()


@pytest.mark.parametrize(
    ("transports", "kept"), [(7, []), ("usb", []), ({"usb": True}, []), (["usb", 7, None], ["usb"])]
)
def test_malformed_transport_hints_are_dropped_not_a_500(browser, authenticator, transports, kept):
    ceremony = browser.post("/api/auth/mfa/passkeys/options").json()
    credential = authenticator.create(ceremony["publicKey"])
    credential = {**credential, "response": {**credential["response"], "transports": transports}}
    response = browser.post(
        "/api/auth/mfa/passkeys",
        {"token": ceremony["token"], "credential": credential, "name": "Laptop"},
        format="json",
    )
    assert response.status_code == 201, response.content
    assert Passkey.objects.get().transports == kept


@pytest.mark.parametrize("how", ["no response", "garbage data"])
def test_a_malformed_assertion_at_the_second_step_is_refused_and_counted(browser, user, authenticator, how):
    _register(browser, authenticator)
    token = login(APIClient(), user).json()["mfaToken"]
    options = APIClient().post("/api/auth/mfa/options", {"mfaToken": token}, format="json").json()
    assertion = _broken(authenticator.get(options["publicKey"]), how)
    verify = {"mfaToken": token, "webauthn": assertion}
    for _ in range(5):
        response = APIClient().post("/api/auth/mfa/verify", verify, format="json")
        assert (response.status_code, response.json()["code"]) == (401, "invalid_second_factor")
    # Each try counted against the mfaToken: after five it is spent, even for a good assertion.
    verify["webauthn"] = authenticator.get(options["publicKey"])
    assert (
        APIClient().post("/api/auth/mfa/verify", verify, format="json").json()["code"] == "mfa_token_invalid"
    )
    assert AuditEvent.objects.filter(type="factor_failed").count() == 5


# --- Unauthenticated passkey options: throttled, and their rows do not pile up -----------------


@pytest.mark.parametrize("path", ["/api/auth/passkey/options", "/api/auth/mfa/options"])
def test_passkey_options_are_throttled_per_address(db, settings, path):
    settings.LOGIN_THROTTLE_IP = "3/min"
    client = APIClient()
    body = {"mfaToken": "unknown"} if path.endswith("mfa/options") else None
    for _ in range(3):
        assert client.post(path, body, format="json").status_code != 429
    refused = client.post(path, body, format="json")
    assert (refused.status_code, refused.json()["code"]) == (429, "throttled")
    assert refused["Retry-After"]


def test_challenges_whose_time_is_up_are_deleted_as_new_ones_come(db, settings):
    settings.LOGIN_THROTTLE_IP = "100/min"
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for _ in range(3):
            assert APIClient().post("/api/auth/passkey/options").status_code == 200
        traveller.shift(settings.MFA_TOKEN_TTL + timedelta(seconds=1))
        fresh = APIClient().post("/api/auth/passkey/options")
    assert fresh.status_code == 200
    assert SignInChallenge.objects.count() == 1


# --- Re-authentication with a passkey --------------------------------------------------------


def test_a_passkey_re_authenticates_an_account_without_password_or_app(
    browser, user, authenticator, settings
):
    _register(browser, authenticator)
    user.set_unusable_password()  # as a Google-only account
    user.save()
    with time_machine.travel(timezone.now() + timedelta(minutes=6), tick=False):
        stale = browser.post("/api/auth/mfa/recovery-codes")
        assert stale.json()["code"] == "reauthentication_required"
        ceremony = browser.post("/api/auth/reauthenticate/options").json()
        assert [c["id"] for c in ceremony["publicKey"]["allowCredentials"]] == [
            Passkey.objects.get().credential_id
        ]
        answer = {"token": ceremony["token"], "webauthn": authenticator.get(ceremony["publicKey"])}
        assert browser.post("/api/auth/reauthenticate", answer, format="json").status_code == 204
        replayed = browser.post("/api/auth/reauthenticate", answer, format="json")
        assert replayed.json()["code"] == "mfa_token_invalid"
        assert browser.post("/api/auth/mfa/recovery-codes").status_code == 200
    assert AuditEvent.objects.filter(type="reauthenticated").count() == 1


@pytest.mark.parametrize("misuse", ["another session's options", "unknown passkey"])
def test_a_passkey_re_authentication_that_does_not_check_out_is_refused(
    browser, user, authenticator, auth_client, misuse
):
    _register(browser, authenticator)
    ceremony = browser.post("/api/auth/reauthenticate/options").json()
    signer = (
        authenticator if misuse != "unknown passkey" else SoftAuthenticator(origin=ORIGIN, rp_id="testserver")
    )
    answer = {"token": ceremony["token"], "webauthn": signer.get(ceremony["publicKey"])}
    client = browser
    if misuse == "another session's options":
        client = APIClient()
        token = login(client, user).json()["mfaToken"]
        code_client = APIClient()
        options = code_client.post("/api/auth/mfa/options", {"mfaToken": token}, format="json").json()
        signed_in = code_client.post(
            "/api/auth/mfa/verify",
            {"mfaToken": token, "webauthn": authenticator.get(options["publicKey"])},
            format="json",
        )
        client.cookies = signed_in.cookies
        client.credentials(HTTP_X_CSRFTOKEN=client.get("/api/auth/csrf").json()["csrfToken"])
    response = client.post("/api/auth/reauthenticate", answer, format="json")
    expected = "mfa_token_invalid" if misuse == "another session's options" else "invalid_second_factor"
    assert response.json()["code"] == expected, response.content
