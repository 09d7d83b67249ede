"""GET /api/auth/validate: the gateway check (claims + one cache lookup, no database)."""

import pytest
from rest_framework.test import APIClient

from accounts.services import sessions_revoke


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
    assert response["X-Auth-Scope"] == ""


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
