"""POST /api/auth/google through the HTTP API, with the real google-auth verification.

Only Google's certificate download is faked: the process-wide caching transport wraps a
FakeGoogle, so the certificate cache runs for real too.
"""

from __future__ import annotations

import base64
import hashlib
import time

import pyotp
import pytest
import time_machine
from google.auth import exceptions as google_exceptions
from rest_framework.test import APIClient

import accounts.google
from accounts import google_sign_in
from accounts.google import CachingRequest
from accounts.models import AuditEvent, GoogleAccount, Session, User
from clusters.models import Grant
from tests.accounts.google_tokens import CLIENT_ID, OTHER_CLIENT_ID, SUB, FakeGoogle, id_token

GOOGLE_URL = "/api/auth/google"
ACCESS_COOKIE, REFRESH_COOKIE = "__Host-accessToken", "__Secure-refreshToken"


@pytest.fixture(autouse=True)
def _google_configured(settings, google: FakeGoogle, monkeypatch):
    settings.GOOGLE_CLIENT_IDS = [CLIENT_ID]
    settings.GOOGLE_ALLOWED_DOMAINS = []
    monkeypatch.setattr(accounts.google, "_google_request", CachingRequest(google))


def sign_in(client, credential, *, headers: dict[str, str] | None = None, **body):
    return client.post(GOOGLE_URL, {"credential": credential, **body}, format="json", headers=headers)


def assert_error(response, status: int, code: str) -> None:
    assert (response.status_code, response.json()["code"]) == (status, code), response.content


# --- signing in --------------------------------------------------------------------------------


def test_a_linked_google_account_signs_in_with_cookies(api_client, user, google_key):
    GoogleAccount.objects.create(user=user, sub=SUB, email=user.email)

    response = sign_in(api_client, id_token(google_key), headers={"User-Agent": "Firefox"})

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["user"]["email"] == "alice@example.com"
    assert body["expiresIn"] > 0 and body["refreshTokenExpiresIn"] > 0
    assert "accessToken" not in body and "refreshToken" not in body
    assert response.cookies[ACCESS_COOKIE]["httponly"] and response.cookies[REFRESH_COOKIE]["httponly"]
    assert response["Cache-Control"] == "no-store"
    session = Session.objects.get(user=user)
    assert (session.method, session.user_agent) == ("google", "Firefox")
    event = AuditEvent.objects.get(type="login_succeeded")
    assert (event.user, event.method, event.session_id) == (user, "google", session.pk)
    assert api_client.get("/api/auth/me").json()["email"] == "alice@example.com"


def test_body_delivery_returns_tokens_and_sets_no_cookies(api_client, user, google_key):
    GoogleAccount.objects.create(user=user, sub=SUB, email=user.email)

    response = sign_in(api_client, id_token(google_key), tokenDelivery="body")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["accessToken"].count(".") == 2 and body["refreshToken"].count(".") == 2
    assert not response.cookies
    me = api_client.get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {body['accessToken']}")
    assert me.json()["email"] == "alice@example.com"


# --- the nonce: a token the browser app asked for works only in that browser --------------------

NONCE_URL = "/api/auth/google/nonce"
NONCE_COOKIE = "__Host-googleNonce"


def nonce_of(secret: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(secret.encode()).digest()).rstrip(b"=").decode()


def test_the_browser_gets_a_nonce_whose_secret_stays_in_an_httponly_cookie_shared_by_its_tabs(api_client):
    first = api_client.get(NONCE_URL)

    assert first.status_code == 200 and first["Cache-Control"] == "no-store"
    nonce = first.json()["nonce"]
    cookie = first.cookies[NONCE_COOKIE]
    # The nonce goes into Google's token; the cookie holds what it was made from, never the nonce.
    assert nonce_of(cookie.value) == nonce and cookie.value != nonce
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/" and not cookie["domain"]  # __Host-: no sibling subdomain sets it
    # A second tab gets the same nonce: a new one would break the first tab's sign-in.
    assert api_client.get(NONCE_URL).json()["nonce"] == nonce
    # Another browser gets its own.
    assert APIClient().get(NONCE_URL).json()["nonce"] != nonce


def test_a_token_with_the_browsers_nonce_signs_in_once_and_cannot_be_replayed(api_client, user, google_key):
    GoogleAccount.objects.create(user=user, sub=SUB, email=user.email)
    nonce = api_client.get(NONCE_URL).json()["nonce"]
    credential = id_token(google_key, nonce=nonce)

    signed_in = sign_in(api_client, credential)
    assert signed_in.status_code == 200, signed_in.content
    assert signed_in.cookies[NONCE_COOKIE].value == ""  # used: the next sign-in gets a new one

    # The same token, copied elsewhere within its hour, is refused: no browser there holds the
    # secret of its nonce, and the nonce the token shows is not that secret.
    assert_error(sign_in(APIClient(), credential, tokenDelivery="body"), 401, "invalid_google_token")
    other_browser = APIClient()
    other_browser.get(NONCE_URL)
    assert_error(sign_in(other_browser, credential), 401, "invalid_google_token")
    thief = APIClient()
    thief.cookies[NONCE_COOKIE] = nonce
    assert_error(sign_in(thief, credential, tokenDelivery="body"), 401, "invalid_google_token")
    assert Session.objects.filter(user=user).count() == 1


def test_a_token_made_for_another_nonce_or_with_a_malformed_one_is_refused(api_client, user, google_key):
    GoogleAccount.objects.create(user=user, sub=SUB, email=user.email)
    api_client.get(NONCE_URL)

    assert_error(sign_in(api_client, id_token(google_key, nonce="x" * 43)), 401, "invalid_google_token")
    assert_error(sign_in(api_client, id_token(google_key, nonce=12345)), 401, "invalid_google_token")
    api_client.cookies[NONCE_COOKIE] = "not a secret we make"
    forged = id_token(google_key, nonce=nonce_of("not a secret we make"))
    assert_error(sign_in(api_client, forged), 401, "invalid_google_token")


def test_without_google_sign_in_there_is_no_nonce(api_client, settings):
    settings.GOOGLE_CLIENT_IDS = []
    assert_error(api_client.get(NONCE_URL), 404, "not_found")


def test_a_user_is_linked_by_verified_email_then_found_by_sub_after_an_email_change(
    api_client, user, google_key
):
    first = sign_in(api_client, id_token(google_key))

    assert first.status_code == 200, first.content
    account = GoogleAccount.objects.get()
    assert (account.user, account.sub, account.email) == (user, SUB, "alice@example.com")
    assert AuditEvent.objects.filter(type="google_linked", user=user).exists()

    renamed = sign_in(api_client, id_token(google_key, email="alice.smith@example.com"))

    assert renamed.status_code == 200, renamed.content
    assert renamed.json()["user"]["id"] == user.pk
    assert GoogleAccount.objects.count() == 1
    assert User.objects.count() == 1


def test_a_gmail_address_links_by_email(api_client, user_factory, google_key):
    user = user_factory(email="bob@gmail.com")

    response = sign_in(api_client, id_token(google_key, email="Bob@gmail.com", hd=None))

    assert response.status_code == 200, response.content
    assert GoogleAccount.objects.get().user == user


def test_no_linking_by_an_email_google_is_not_authoritative_for(api_client, user, google_key, settings):
    """A consumer Google account (no hd) holding a company address must not take over its user."""
    settings.GOOGLE_ALLOWED_DOMAINS = ["example.com"]

    response = sign_in(api_client, id_token(google_key, hd=None))

    assert_error(response, 403, "no_account")
    assert not GoogleAccount.objects.exists()
    assert not Session.objects.exists()
    event = AuditEvent.objects.get(type="login_failed")
    assert (event.method, event.email, event.detail) == ("google", "alice@example.com", "no_account")


def test_an_unknown_person_of_an_allowed_domain_gets_an_account_without_scopes(
    api_client, google_key, settings, client1
):
    settings.GOOGLE_ALLOWED_DOMAINS = ["example.com"]

    response = sign_in(api_client, id_token(google_key, email="Carol@Example.com", name="Carol C"))

    assert response.status_code == 200, response.content
    assert response.json()["user"]["scopes"] == []
    user = User.objects.get()
    assert (user.email, user.name, user.is_staff) == ("carol@example.com", "Carol C", False)
    assert not user.has_usable_password()
    assert not Grant.objects.filter(user=user).exists()
    assert GoogleAccount.objects.get().user == user
    assert api_client.get("/api/clients").json() == []


def test_a_google_profile_name_with_control_characters_signs_in_with_them_removed(
    api_client, google_key, settings, client1
):
    """The name is Google's choice, not the person's input here: kept without what would make it
    read differently, rather than refusing the sign-in."""
    settings.GOOGLE_ALLOWED_DOMAINS = ["example.com"]

    response = sign_in(
        api_client, id_token(google_key, email="carol@example.com", name="Carol\u202e\nC\u0007")
    )

    assert response.status_code == 200, response.content
    assert User.objects.get().name == "Carol C"


def test_a_google_profile_name_that_shows_nothing_signs_in_without_a_name(
    api_client, google_key, settings, client1
):
    settings.GOOGLE_ALLOWED_DOMAINS = ["example.com"]

    response = sign_in(api_client, id_token(google_key, email="dave@example.com", name="\u3164\u200b"))

    assert response.status_code == 200, response.content
    assert User.objects.get().name == ""


@pytest.mark.parametrize(
    ("allowed", "claims"),
    [
        pytest.param([], {}, id="no domains allowed"),
        pytest.param(["other.example"], {}, id="another domain"),
        pytest.param(["example.com"], {"hd": None}, id="consumer account with an allowed address"),
        pytest.param(["gmail.com"], {"email": "eve@gmail.com", "hd": None}, id="gmail"),
    ],
)
def test_an_unknown_person_outside_the_allowed_domains_has_no_account(
    api_client, db, google_key, settings, allowed, claims
):
    settings.GOOGLE_ALLOWED_DOMAINS = allowed

    response = sign_in(api_client, id_token(google_key, **claims))

    assert_error(response, 403, "no_account")
    assert not User.objects.exists() and not GoogleAccount.objects.exists()
    assert not response.cookies


@pytest.mark.parametrize("linked", [True, False], ids=["linked", "by email"])
def test_an_inactive_user_is_refused(api_client, user, google_key, linked):
    if linked:
        GoogleAccount.objects.create(user=user, sub=SUB, email=user.email)
    User.objects.filter(pk=user.pk).update(is_active=False)

    response = sign_in(api_client, id_token(google_key))

    assert_error(response, 403, "account_disabled")
    assert not Session.objects.exists()
    assert GoogleAccount.objects.count() == int(linked)  # a disabled account is not linked
    assert AuditEvent.objects.get(type="login_failed").detail == "account_disabled"


def test_a_concurrent_sign_in_that_linked_first_is_reused(api_client, user, google_key, monkeypatch):
    """The unique sub decides a race: the loser finds the winner's link instead of failing."""

    def linked_too_late(*, sub):
        if not GoogleAccount.objects.exists():
            GoogleAccount.objects.create(user=user, sub=sub, email=user.email)  # the other request
            return None
        return original(sub=sub)

    original = google_sign_in._google_linked_user
    monkeypatch.setattr(google_sign_in, "_google_linked_user", linked_too_late)

    response = sign_in(api_client, id_token(google_key))

    assert response.status_code == 200, response.content
    assert GoogleAccount.objects.get().user == user


# --- tokens that do not check out ----------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "kid", "claims"),
    [
        pytest.param("google", "test-key-1", {"aud": OTHER_CLIENT_ID, "azp": OTHER_CLIENT_ID}, id="audience"),
        pytest.param("google", "test-key-1", {"iss": "https://evil.example.com"}, id="issuer"),
        pytest.param(
            "google",
            "test-key-1",
            {"iat": int(time.time()) - 7200, "exp": int(time.time()) - 3600},
            id="expired",
        ),
        pytest.param("other", "test-key-1", {}, id="bad signature"),
        pytest.param("google", "rotated-away", {}, id="unknown kid"),
    ],
)
def test_a_token_that_does_not_check_out_is_refused(
    api_client, user, google_key, other_key, key, kid, claims
):
    GoogleAccount.objects.create(user=user, sub=SUB, email=user.email)
    token = id_token(google_key if key == "google" else other_key, kid=kid, **claims)

    response = sign_in(api_client, token)

    assert_error(response, 401, "invalid_google_token")
    assert not Session.objects.exists()
    assert not response.cookies
    event = AuditEvent.objects.get(type="login_failed")
    assert (event.method, event.detail) == ("google", "invalid_google_token")


def test_a_token_used_after_it_expired_is_refused(api_client, user, google_key):
    GoogleAccount.objects.create(user=user, sub=SUB, email=user.email)
    token = id_token(google_key)

    with time_machine.travel(time.time() + 3600 + 60, tick=False):
        response = sign_in(api_client, token)

    assert_error(response, 401, "invalid_google_token")


def test_an_unverified_email_is_refused(api_client, user, google_key):
    response = sign_in(api_client, id_token(google_key, email_verified=False))

    assert_error(response, 403, "email_not_verified")
    assert not GoogleAccount.objects.exists() and not Session.objects.exists()
    assert AuditEvent.objects.get(type="login_failed").detail == "email_not_verified"


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({"credential": ""}, id="empty"),
        pytest.param({}, id="missing"),
        pytest.param({"credential": "not-a-jwt"}, id="garbage"),
        pytest.param({"credential": "a.b.c"}, id="three garbage segments"),
        pytest.param({"credential": "a" * 10_000}, id="huge"),
        pytest.param({"credential": ["x"]}, id="not a string"),
    ],
)
def test_a_credential_that_is_not_a_token_is_a_bad_request(api_client, db, google, payload):
    response = api_client.post(GOOGLE_URL, payload, format="json")

    assert_error(response, 400, "invalid_request")
    assert "credential" in response.json()["fields"]
    assert google.calls == []


def test_an_invalid_token_delivery_is_a_bad_request(api_client, db, google_key):
    response = sign_in(api_client, id_token(google_key), tokenDelivery="carrier-pigeon")

    assert_error(response, 400, "invalid_request")
    assert "tokenDelivery" in response.json()["fields"]


def test_malformed_json_is_a_bad_request(api_client, db):
    response = api_client.post(GOOGLE_URL, "{not json", content_type="application/json")

    assert_error(response, 400, "invalid_request")


# --- Google's certificates -----------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param({"error": google_exceptions.TransportError("connection refused")}, id="network"),
        pytest.param({"status": 503}, id="http 503"),
        pytest.param({"body": b"<html>captive portal</html>"}, id="not certificates"),
    ],
)
def test_certificates_that_cannot_be_fetched_make_google_unavailable(
    api_client, user, google_key, google, failure
):
    for attribute, value in failure.items():
        setattr(google, attribute, value)

    response = sign_in(api_client, id_token(google_key))

    assert_error(response, 503, "google_unavailable")
    assert not Session.objects.exists()


def test_certificates_are_downloaded_once_for_two_sign_ins(api_client, user, google_key, google):
    GoogleAccount.objects.create(user=user, sub=SUB, email=user.email)

    assert sign_in(api_client, id_token(google_key)).status_code == 200
    assert sign_in(api_client, id_token(google_key)).status_code == 200

    assert google.calls == ["https://www.googleapis.com/oauth2/v1/certs"]
    assert Session.objects.filter(user=user, method="google").count() == 2


# --- the endpoint itself -------------------------------------------------------------------


def test_sign_in_is_not_found_when_no_client_id_is_configured(api_client, user, google_key, google, settings):
    settings.GOOGLE_CLIENT_IDS = []

    assert_error(sign_in(api_client, id_token(google_key)), 404, "not_found")
    assert_error(api_client.post(GOOGLE_URL, {}, format="json"), 404, "not_found")
    assert google.calls == []


def test_a_foreign_browser_origin_is_refused(api_client, user, google_key, google):
    """Login CSRF: another site must not sign the visitor in to an account of its choosing."""
    GoogleAccount.objects.create(user=user, sub=SUB, email=user.email)

    response = sign_in(api_client, id_token(google_key), headers={"Origin": "https://evil.example"})

    assert_error(response, 403, "csrf_failed")
    assert not Session.objects.exists()
    assert google.calls == []


def test_this_sites_origin_is_accepted(api_client, user, google_key):
    GoogleAccount.objects.create(user=user, sub=SUB, email=user.email)

    response = sign_in(api_client, id_token(google_key), headers={"Origin": "http://testserver"})

    assert response.status_code == 200, response.content


def test_a_garbage_access_cookie_does_not_break_sign_in(api_client, user, google_key):
    GoogleAccount.objects.create(user=user, sub=SUB, email=user.email)
    api_client.cookies[ACCESS_COOKIE] = "garbage"

    assert sign_in(api_client, id_token(google_key)).status_code == 200


def test_sign_ins_are_throttled_per_address(api_client, user, google_key, settings):
    settings.LOGIN_THROTTLE_IP = "2/min"

    statuses = [sign_in(api_client, id_token(google_key, aud=OTHER_CLIENT_ID)).status_code for _ in range(3)]

    assert statuses == [401, 401, 429]


def test_the_openapi_document_describes_the_endpoint(api_client, db):
    schema = api_client.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/auth/google"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "404", "406", "429", "503"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/GoogleSignInInputRequest")


# --- a second factor after Google -------------------------------------------------------------


def test_google_then_the_second_factor_for_a_user_who_has_one(api_client, auth_client, user, google_key):
    GoogleAccount.objects.create(user=user, sub=SUB, email=user.email)
    browser = auth_client(user)
    totp = pyotp.TOTP(browser.post("/api/auth/mfa/totp").json()["secret"])
    with time_machine.travel(time.time(), tick=False) as traveller:
        assert (
            browser.post("/api/auth/mfa/totp/confirm", {"code": totp.now()}, format="json").status_code == 200
        )
        first = sign_in(api_client, id_token(google_key))
        assert first.status_code == 200, first.content
        body = first.json()
        assert body["mfaRequired"] is True and body["methods"] == ["totp", "recovery"]
        assert "user" not in body and not {ACCESS_COOKIE, REFRESH_COOKIE} & set(first.cookies)
        traveller.shift(30)  # the app's next code (each works once)
        second = api_client.post(
            "/api/auth/mfa/verify", {"mfaToken": body["mfaToken"], "code": totp.now()}, format="json"
        )
    assert second.status_code == 200, second.content
    assert {ACCESS_COOKIE, REFRESH_COOKIE} <= set(second.cookies)
    session = Session.objects.filter(revoked_at=None).latest("created_at")
    assert (session.method, session.amr) == ("google", ["google", "totp"])
