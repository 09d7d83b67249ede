"""POST /api/auth/login: credentials, base64 passwords, cookies vs body delivery, audit."""

import base64
from datetime import timedelta

import pytest
import time_machine
from django.contrib.auth.hashers import MD5PasswordHasher
from django.http import HttpResponse
from django.test import override_settings
from django.utils import timezone

from accounts.authentication import access_cookie_name, access_cookie_set
from accounts.models import AuditEvent, AuditEventType, Session
from tests.conftest import b64, login


def test_login_sets_cookies_and_returns_the_user_without_tokens_in_the_body(api_client, user):
    response = login(api_client, user)

    assert response.status_code == 200
    body = response.json()
    assert body["user"] == {
        "id": user.pk,
        "email": "alice@example.com",
        "name": "Alice",
        "isStaff": False,
        "scopes": [],
    }
    # Lifetimes are counted from issue time; allow for a slow machine between issue and answer.
    assert 890_000 <= body["expiresIn"] <= 900_000
    assert 7 * 86400_000 - 10_000 <= body["refreshTokenExpiresIn"] <= 7 * 86400_000
    assert "accessToken" not in body and "refreshToken" not in body
    assert set(response.cookies) == {"__Host-accessToken", "__Secure-refreshToken", "__Secure-loginDevice"}
    assert response["Cache-Control"] == "no-store"


def test_me_answers_the_user_exactly_as_login_did(api_client, user):
    signed_in = login(api_client, user).json()["user"]

    response = api_client.get("/api/auth/me")

    assert response.status_code == 200
    assert response.json() == signed_in
    assert response["Content-Type"] == "application/json"


def test_body_delivery_returns_tokens_and_sets_no_cookies(api_client, user):
    response = login(api_client, user, tokenDelivery="body")

    assert response.status_code == 200
    body = response.json()
    assert body["accessToken"].count(".") == 2 and body["refreshToken"].count(".") == 2
    assert not response.cookies


@pytest.mark.parametrize(
    ("secure", "access_name", "refresh_name"),
    [(True, "__Host-accessToken", "__Secure-refreshToken"), (False, "accessToken", "refreshToken")],
)
def test_cookie_attributes_follow_the_contract(api_client, user, settings, secure, access_name, refresh_name):
    settings.AUTH_COOKIE_SECURE = secure
    response = login(api_client, user)

    access, refresh = response.cookies[access_name], response.cookies[refresh_name]
    assert access["httponly"] is True and refresh["httponly"] is True
    assert bool(access["secure"]) is secure and bool(refresh["secure"]) is secure
    assert access["samesite"] == "Lax" and refresh["samesite"] == "Strict"
    assert access["path"] == "/" and refresh["path"] == "/api/auth/"
    assert 890 <= int(access["max-age"]) <= 900
    assert 7 * 86400 - 10 <= int(refresh["max-age"]) <= 7 * 86400
    assert access["domain"] == "" and refresh["domain"] == ""


def test_cookie_samesite_is_configurable(api_client, user, settings):
    settings.ACCESS_COOKIE_SAMESITE, settings.REFRESH_COOKIE_SAMESITE = "Strict", "Lax"
    response = login(api_client, user)
    assert response.cookies["__Host-accessToken"]["samesite"] == "Strict"
    assert response.cookies["__Secure-refreshToken"]["samesite"] == "Lax"


def test_email_is_matched_ignoring_case(api_client, user):
    assert login(api_client, "ALICE@Example.com").status_code == 200


def test_a_unicode_password_is_decoded_as_utf8(api_client, user_factory):
    user = user_factory(password="pässwörd-日本")
    assert login(api_client, user, "pässwörd-日本").status_code == 200


@pytest.mark.parametrize(
    ("email", "password"),
    [("alice@example.com", "wrong password"), ("nobody@example.com", "correct horse battery")],
    ids=["wrong-password", "unknown-email"],
)
def test_wrong_credentials_get_the_same_401(api_client, user, email, password):
    response = login(api_client, email, password)

    assert response.status_code == 401
    assert response.json() == {
        "code": "invalid_credentials",
        "detail": "The email or password is not correct.",
    }
    assert not response.cookies
    event = AuditEvent.objects.get()
    assert (event.type, event.email) == (AuditEventType.LOGIN_FAILED, email)


class CountingHasher(MD5PasswordHasher):
    """Counts password hashings: the work that makes a wrong password slow (Django's own test idea)."""

    algorithm = "counting_md5"
    hashed = 0

    def encode(self, password, salt):
        type(self).hashed += 1
        return super().encode(password, salt)


@pytest.mark.parametrize("email", ["alice@example.com", "nobody@example.com"], ids=["known", "unknown"])
def test_a_failed_login_hashes_the_password_once_whether_or_not_the_email_exists(
    api_client, user, settings, email
):
    settings.PASSWORD_HASHERS = [f"{__name__}.CountingHasher"]
    user.set_password("correct horse battery")
    user.save()
    CountingHasher.hashed = 0

    assert login(api_client, email, "wrong").status_code == 401
    assert CountingHasher.hashed == 1


def test_passwords_are_hashed_with_argon2id_in_production(api_client, user_factory, settings):
    import config.settings as project_settings

    settings.PASSWORD_HASHERS = project_settings.PASSWORD_HASHERS
    user = user_factory(password="argon-password")
    assert user.password.startswith("argon2$argon2id$")
    assert login(api_client, user, "argon-password").status_code == 200


@pytest.mark.parametrize(
    ("password", "correct"),
    [("correct horse battery", True), ("wrong", False)],
)
def test_a_disabled_account_is_told_only_after_a_correct_password(
    api_client, user_factory, password, correct
):
    user = user_factory(is_active=False)
    response = login(api_client, user, password)
    assert response.status_code == (403 if correct else 401)
    assert response.json()["code"] == ("account_disabled" if correct else "invalid_credentials")
    assert not Session.objects.exists()


@pytest.mark.parametrize(
    "password",
    ["not base64!!", base64.b64encode(b"\xff\xfe\xfd").decode(), "YWJj=extra", 12345],
    ids=["not-base64", "not-utf8", "trailing-garbage", "not-a-string"],
)
def test_a_password_that_is_not_base64_of_utf8_is_a_400_on_the_field(api_client, user, password):
    response = api_client.post("/api/auth/login", {"email": user.email, "password": password}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    assert list(body["fields"]) == ["password"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"password": b64("x")}, "email"),
        ({"email": "alice@example.com"}, "password"),
        (
            {"email": "alice@example.com", "password": b64("x"), "tokenDelivery": "carrier-pigeon"},
            "tokenDelivery",
        ),
    ],
)
def test_missing_or_invalid_fields_are_a_400(api_client, db, payload, field):
    response = api_client.post("/api/auth/login", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_malformed_json_is_a_400_not_a_500(api_client, db):
    response = api_client.post("/api/auth/login", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_login_starts_a_session_and_records_it(api_client, user):
    response = api_client.post(
        "/api/auth/login",
        {"email": user.email, "password": b64("correct horse battery")},
        format="json",
        HTTP_USER_AGENT="Firefox/130",
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 200
    session = Session.objects.get()
    assert (session.user, session.method, session.user_agent, session.ip) == (
        user,
        "password",
        "Firefox/130",
        "203.0.113.9",
    )
    assert session.expires_at - session.created_at == timedelta(days=30)
    event = AuditEvent.objects.get()
    assert (event.type, event.user, event.session_id) == (AuditEventType.LOGIN_SUCCEEDED, user, session.pk)


@pytest.mark.parametrize(
    ("forwarded", "recorded"),
    [("198.51.100.7", "198.51.100.7"), ("unknown", "203.0.113.9"), ("198.51.100.7:4711", "203.0.113.9")],
)
def test_behind_a_proxy_login_records_the_forwarded_address_only_when_it_is_one(
    api_client, user, settings, forwarded, recorded
):
    settings.TRUSTED_PROXY_HOPS = 1
    response = api_client.post(
        "/api/auth/login",
        {"email": user.email, "password": b64("correct horse battery")},
        format="json",
        HTTP_X_FORWARDED_FOR=forwarded,
        REMOTE_ADDR="203.0.113.9",
    )
    assert response.status_code == 200, response.json()
    assert Session.objects.get().ip == recorded


def test_a_stale_or_garbage_access_cookie_never_breaks_login(api_client, user):
    api_client.cookies["__Host-accessToken"] = "garbage.garbage.garbage"
    assert login(api_client, user).status_code == 200


@override_settings(CORS_ALLOWED_ORIGINS=["https://app.example.com"])
@pytest.mark.parametrize(
    ("origin", "status"),
    [
        (None, 200),
        ("http://testserver", 200),
        ("https://app.example.com", 200),
        ("https://evil.example", 403),
    ],
)
def test_login_refuses_a_foreign_browser_origin(api_client, user, origin, status):
    extra = {"HTTP_ORIGIN": origin} if origin else {}
    response = api_client.post(
        "/api/auth/login",
        {"email": user.email, "password": b64("correct horse battery")},
        format="json",
        **extra,
    )
    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "csrf_failed"


def test_an_access_token_with_under_a_second_left_still_travels_in_its_cookie():
    # Max-Age=0 would make the browser drop the cookie at once, so a token refreshed near a
    # second boundary (exp is whole seconds) would be refused on its very first use.
    response = HttpResponse()
    with time_machine.travel(timezone.now(), tick=False):
        access_cookie_set(response, token="a.b.c", expires_at=timezone.now() + timedelta(milliseconds=400))
    assert int(response.cookies[access_cookie_name()]["max-age"]) == 1
