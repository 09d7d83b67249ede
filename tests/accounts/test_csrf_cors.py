"""CSRF for cookie-authenticated writes, Origin checks, and CORS only for allowed origins."""

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.authentication import access_cookie_name, refresh_cookie_name
from accounts.models import Session
from tests.conftest import login

APP_ORIGIN = "https://app.example.com"


def other_session_id(client):
    return next(s["id"] for s in client.get("/api/auth/sessions").json() if not s["current"])


def cookie_client(user):
    client = APIClient(enforce_csrf_checks=True)
    assert login(client, user).status_code == 200
    return client


@pytest.mark.parametrize(
    ("send_token", "status", "code"),
    [(True, 204, None), (False, 403, "csrf_failed")],
    ids=["token", "no-token"],
)
def test_cookie_authenticated_writes_need_the_csrf_token(auth_client, user, send_token, status, code):
    auth_client(user)
    client = cookie_client(user)
    csrf = client.get("/api/auth/csrf").json()["csrfToken"]
    headers = {"HTTP_X_CSRFTOKEN": csrf} if send_token else {}
    response = client.delete(f"/api/auth/sessions/{other_session_id(client)}", **headers)
    assert response.status_code == status
    if code:
        assert response.json()["code"] == code
        assert not Session.objects.exclude(revoked_at=None).exists()


@pytest.mark.parametrize("send_token", [True, False], ids=["token", "no-token"])
def test_a_cookie_logout_needs_the_csrf_token_too(user, send_token):
    client = cookie_client(user)
    csrf = client.get("/api/auth/csrf").json()["csrfToken"]
    response = client.post("/api/auth/logout", **({"HTTP_X_CSRFTOKEN": csrf} if send_token else {}))
    if send_token:
        assert response.status_code == 204
        assert Session.objects.get().revoked_reason == "logout"
    else:  # another site cannot sign the visitor out
        assert (response.status_code, response.json()["code"]) == (403, "csrf_failed")
        assert Session.objects.get().revoked_at is None
        assert client.get("/api/auth/me").status_code == 200


@pytest.mark.parametrize("cookie_name", [access_cookie_name, refresh_cookie_name])
def test_a_logout_with_only_a_stale_or_garbage_cookie_answers_204_and_clears_it(cookie_name):
    """Nothing to end, so nothing to forge: no CSRF token is asked (the contract: logout never
    fails because of a stale cookie, and answers 204 when already signed out)."""
    cookie = cookie_name()
    client = APIClient(enforce_csrf_checks=True)
    client.cookies[cookie] = "garbage"

    response = client.post("/api/auth/logout")

    assert response.status_code == 204
    assert response.cookies[cookie].value == "" and response.cookies[cookie]["max-age"] == 0


def test_a_garbage_refresh_cookie_does_not_hide_a_live_access_cookie(user):
    """Else a forged logout would clear the cookies without the token while the session lives on."""
    client = cookie_client(user)
    client.cookies[refresh_cookie_name()] = "garbage"
    refused = client.post("/api/auth/logout")
    assert (refused.status_code, refused.json()["code"]) == (403, "csrf_failed")
    csrf = client.get("/api/auth/csrf").json()["csrfToken"]
    assert client.post("/api/auth/logout", HTTP_X_CSRFTOKEN=csrf).status_code == 204
    assert Session.objects.get().revoked_reason == "logout"


def test_a_second_tab_signing_out_of_an_ended_session_answers_204(user):
    client = cookie_client(user)
    held = {name: morsel.value for name, morsel in client.cookies.items()}  # what the other tab holds
    csrf = client.get("/api/auth/csrf").json()["csrfToken"]
    assert client.post("/api/auth/logout", HTTP_X_CSRFTOKEN=csrf).status_code == 204

    other_tab = APIClient(enforce_csrf_checks=True)
    for name, value in held.items():
        other_tab.cookies[name] = value

    assert other_tab.post("/api/auth/logout").status_code == 204
    assert Session.objects.get().revoked_reason == "logout"


def test_a_form_field_cannot_stand_in_for_the_csrf_header(user):
    """The contract names the X-CSRFToken header: a plain HTML form posting the token as
    ``csrfmiddlewaretoken`` (which another page could build) ends no session."""
    client = cookie_client(user)
    csrf = client.get("/api/auth/csrf").json()["csrfToken"]

    response = client.post(
        "/api/auth/logout",
        f"csrfmiddlewaretoken={csrf}",
        content_type="application/x-www-form-urlencoded",
    )

    assert (response.status_code, response.json()["code"]) == (403, "csrf_failed")
    assert Session.objects.get().revoked_at is None


@pytest.mark.parametrize("send_token", [True, False], ids=["token", "no-token"])
def test_a_malformed_multipart_body_does_not_get_past_or_break_the_csrf_check(user, send_token, caplog):
    """A multipart Content-Type without a boundary: the CSRF check answers for itself (403), and
    with the token the write goes through; no parse error, no traceback in the log."""
    client = cookie_client(user)
    csrf = client.get("/api/auth/csrf").json()["csrfToken"]
    headers = {"HTTP_X_CSRFTOKEN": csrf} if send_token else {}

    response = client.post("/api/auth/logout", b"--x\r\n", content_type="multipart/form-data", **headers)

    if send_token:
        assert response.status_code == 204
        assert Session.objects.get().revoked_reason == "logout"
    else:
        assert (response.status_code, response.json()["code"]) == (403, "csrf_failed")
        assert Session.objects.get().revoked_at is None
    assert "MultiPartParserError" not in caplog.text


def test_header_token_writes_need_no_csrf(bearer_client, user):
    bearer_client(user)
    client = bearer_client(user)
    client.handler.enforce_csrf_checks = True
    assert client.delete(f"/api/auth/sessions/{other_session_id(client)}").status_code == 204


@override_settings(CORS_ALLOWED_ORIGINS=[APP_ORIGIN], CSRF_TRUSTED_ORIGINS=[APP_ORIGIN])
@pytest.mark.parametrize(
    ("origin", "status"), [(APP_ORIGIN, 204), ("https://evil.example", 403), ("null", 403)]
)
def test_a_cookie_write_from_a_foreign_origin_is_refused_even_with_the_token(
    auth_client, user, origin, status
):
    auth_client(user)
    client = cookie_client(user)
    csrf = client.get("/api/auth/csrf").json()["csrfToken"]
    response = client.delete(
        f"/api/auth/sessions/{other_session_id(client)}", HTTP_X_CSRFTOKEN=csrf, HTTP_ORIGIN=origin
    )
    assert response.status_code == status
    if status == 403:
        assert response.json()["code"] == "csrf_failed"


def test_the_csrf_endpoint_sets_the_cookie_readable_by_the_app(db):
    response = APIClient().get("/api/auth/csrf")
    cookie = response.cookies["csrftoken"]
    assert response.json()["csrfToken"]
    assert not cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"


@override_settings(CORS_ALLOWED_ORIGINS=[APP_ORIGIN])
@pytest.mark.parametrize(("origin", "allowed"), [(APP_ORIGIN, True), ("https://evil.example", False)])
def test_cors_headers_only_for_allowed_origins(bearer_client, user, origin, allowed):
    client = bearer_client(user)
    response = client.get("/api/auth/me", HTTP_ORIGIN=origin)
    assert (response.get("Access-Control-Allow-Origin") == origin) is allowed
    assert (response.get("Access-Control-Allow-Credentials") == "true") is allowed
    preflight = APIClient().options(
        "/api/auth/login", HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST"
    )
    assert ("Access-Control-Allow-Origin" in preflight) is allowed
