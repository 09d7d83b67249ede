"""GET /api/auth/validate: the gateway check (claims + one cache lookup, no database)."""

import pytest
from rest_framework.test import APIClient

from accounts.services import sessions_revoke
from config.logging import OutageFilter


@pytest.mark.parametrize("via", ["cookie", "bearer", "x-auth-token"])
def test_a_valid_access_token_is_answered_with_identity_headers(auth_client, bearer_client, user, via):
    if via == "cookie":
        client = auth_client(user)
    else:
        token = bearer_client(user).tokens["accessToken"]
        client = APIClient()
        header = {
            "bearer": ("HTTP_AUTHORIZATION", f"Bearer {token}"),
            "x-auth-token": ("HTTP_X_AUTH_TOKEN", token),
        }
        client.credentials(**dict([header[via]]))
    response = client.get("/api/auth/validate")

    assert response.status_code == 200
    assert response["X-Auth-User-Id"] == str(user.pk)
    assert response["X-Auth-Email"] == "alice@example.com"
    assert response["X-Auth-Scope"] == response["X-Auth-Permissions"] == ""
    assert response.content == b"" and "Content-Type" not in response  # headers only, not an empty page


def test_validate_queries_no_database(bearer_client, user, django_assert_num_queries):
    client = bearer_client(user)
    with django_assert_num_queries(0):
        assert client.get("/api/auth/validate").status_code == 200


@pytest.mark.parametrize(
    ("token", "code"),
    [(None, "not_authenticated"), ("garbage", "token_not_valid"), ("refresh", "token_not_valid")],
)
def test_validate_refuses_missing_invalid_and_refresh_tokens(bearer_client, user, token, code):
    tokens = bearer_client(user).tokens
    headers = {}
    if token:
        headers["HTTP_AUTHORIZATION"] = "Bearer " + (tokens["refreshToken"] if token == "refresh" else token)
    response = APIClient().get("/api/auth/validate", **headers)
    assert (response.status_code, response.json()["code"]) == (403, code)


def test_validate_refuses_a_revoked_session_at_once(bearer_client, user, django_assert_num_queries):
    client = bearer_client(user)
    sessions_revoke(user=user, reason="operator")
    with django_assert_num_queries(0):
        assert client.get("/api/auth/validate").json()["code"] == "token_not_valid"


def test_a_stale_access_cookie_does_not_break_public_endpoints(db):
    client = APIClient()
    client.cookies["__Host-accessToken"] = "stale"
    assert client.post("/api/auth/refresh").json()["code"] == "token_not_valid"
    assert client.post("/api/auth/logout").status_code == 204
    assert client.get("/api/auth/csrf").status_code == 200
    assert client.get("/.well-known/jwks.json").status_code == 200


# --- writes a gateway guards: the cookie needs the same CSRF defences as at the portal ----------

VALIDATE = "/api/auth/validate"


def test_a_write_a_gateway_guards_with_the_cookie_needs_the_csrf_token(auth_client, user):
    client = auth_client(user)  # sends X-CSRFToken with the csrftoken cookie, as the app does
    assert client.get(VALIDATE, HTTP_X_ORIGINAL_METHOD="POST").status_code == 200

    client.credentials()  # no X-CSRFToken: what a page on another site could send
    refused = client.get(VALIDATE, HTTP_X_ORIGINAL_METHOD="POST")

    assert (refused.status_code, refused.json()["code"]) == (403, "csrf_failed")
    assert refused["X-Auth-Error-Code"] == "csrf_failed"  # what nginx's auth_request can read
    assert client.get(VALIDATE, HTTP_X_ORIGINAL_METHOD="GET").status_code == 200  # a read needs none
    assert client.get(VALIDATE).status_code == 200  # nor a gateway that does not say


def test_a_write_a_gateway_guards_from_a_foreign_origin_is_refused(auth_client, user):
    refused = auth_client(user).get(
        VALIDATE, HTTP_X_FORWARDED_METHOD="DELETE", HTTP_ORIGIN="https://evil.example.com"
    )
    assert (refused.status_code, refused.json()["code"]) == (403, "csrf_failed")


def test_a_client_cannot_hide_the_method_its_gateway_reports(auth_client, user):
    client = auth_client(user)
    client.credentials()
    # Traefik reports PATCH; the client added an X-Original-Method of its own.
    refused = client.get(VALIDATE, HTTP_X_ORIGINAL_METHOD="GET", HTTP_X_FORWARDED_METHOD="PATCH")
    assert (refused.status_code, refused.json()["code"]) == (403, "csrf_failed")


def test_a_bearer_token_needs_no_csrf_token_for_a_guarded_write(bearer_client, user):
    token = bearer_client(user).tokens["accessToken"]
    response = APIClient().get(
        VALIDATE,
        HTTP_AUTHORIZATION=f"Bearer {token}",
        HTTP_X_ORIGINAL_METHOD="POST",
        HTTP_ORIGIN="https://evil.example.com",
    )
    assert response.status_code == 200  # a page on another site cannot send a header credential


def test_the_document_declares_the_headers_a_gateway_reads(openapi_document, bearer_client, user):
    declared = {
        status: set(response.get("headers", {}))
        for status, response in openapi_document["paths"]["/api/auth/validate"]["get"]["responses"].items()
    }
    valid = bearer_client(user).get("/api/auth/validate")
    refused = APIClient().get("/api/auth/validate", HTTP_AUTHORIZATION="Bearer garbage")
    assert declared["200"] == {name for name in valid.headers if name.startswith("X-Auth-")}
    assert declared["403"] == {name for name in refused.headers if name.startswith("X-Auth-")}
    assert declared["503"] == {"X-Auth-Error-Code"}


@pytest.mark.parametrize("accept", ["text/csv", "text/event-stream", "image/png", "application/xml"])
def test_a_refusal_is_json_whatever_the_gateways_client_accepts(db, accept):
    """The gateway passes its client's Accept on: 406 here would be nginx's "sign-in unavailable"."""
    response = APIClient().get("/api/auth/validate", HTTP_ACCEPT=accept, HTTP_AUTHORIZATION="Bearer garbage")

    assert (response.status_code, response["Content-Type"]) == (403, "application/json")
    assert response.json()["code"] == response["X-Auth-Error-Code"] == "token_not_valid"


def test_a_refusal_is_not_a_warning_in_the_log_as_an_api_refusal_is(db, caplog):
    """Every anonymous caller of every service behind the gateway would be a WARNING line."""

    def logged() -> list[str]:  # what the log handler lets through (config.logging.OutageFilter)
        return [
            r.getMessage() for r in caplog.records if r.name == "django.request" and OutageFilter().filter(r)
        ]

    APIClient().get("/api/auth/validate")
    APIClient().get("/api/auth/validate", HTTP_AUTHORIZATION="Bearer expired.or.garbage")
    assert logged() == []

    APIClient().get("/api/auth/me")  # the API's own refusals are still logged
    assert logged() == ["Forbidden: /api/auth/me"]


def test_a_refused_cross_site_write_through_the_gateway_is_still_logged(auth_client, user, caplog):
    """csrf_failed at the gateway's check is an attack's trace, not an anonymous caller."""
    browser = auth_client(user)
    refused = browser.get(
        "/api/auth/validate", HTTP_X_ORIGINAL_METHOD="POST", HTTP_ORIGIN="https://evil.example"
    )

    assert refused.json()["code"] == "csrf_failed"
    assert [
        r.getMessage() for r in caplog.records if r.name == "django.request" and OutageFilter().filter(r)
    ] == ["Forbidden: /api/auth/validate"]


def test_the_permissions_say_what_each_client_allows_a_role_a_token_and_an_operator(
    bearer_client, user1, operator_staff, client_for
):
    """A service behind the gateway tells a viewer or a view-only token from who may change things."""
    as_operator_role = bearer_client(user1).get("/api/auth/validate")
    assert as_operator_role["X-Auth-Permissions"] == "client1=configure,credentials,view"

    created = client_for(user1).post(
        "/api/auth/tokens", {"name": "CI", "clients": {"client1": ["view"]}}, format="json"
    )
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Bearer {created.json()['token']}")
    assert token.get("/api/auth/validate")["X-Auth-Permissions"] == "client1=view"

    assert bearer_client(operator_staff).get("/api/auth/validate")["X-Auth-Permissions"] == "*"
