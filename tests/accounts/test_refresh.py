"""POST /api/auth/refresh: rotation, reuse detection with a grace, absolute cap, delivery, flows."""

import threading
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent, AuditEventType, Session
from tests.conftest import login
from tests.helpers import race

REFRESH_COOKIE = "__Secure-refreshToken"
ACCESS_COOKIE = "__Host-accessToken"


def bearer_refresh(client, refresh_token):
    return client.post("/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {refresh_token}")


def test_full_flow_login_me_refresh_logout_then_refresh_refused(auth_client, user):
    client = auth_client(user)
    assert client.get("/api/auth/me").json()["email"] == "alice@example.com"

    refreshed = client.post("/api/auth/refresh")
    assert refreshed.status_code == 200
    assert set(refreshed.cookies) == {ACCESS_COOKIE, REFRESH_COOKIE}
    assert "accessToken" not in refreshed.json()
    assert client.get("/api/auth/me").status_code == 200

    refresh_before_logout = client.cookies[REFRESH_COOKIE].value
    assert client.post("/api/auth/logout").status_code == 204
    client.cookies[REFRESH_COOKIE] = refresh_before_logout
    refused = client.post("/api/auth/refresh")
    assert refused.status_code == 403
    assert refused.json()["code"] == "token_not_valid"


def test_a_bearer_refresh_is_answered_in_the_body(bearer_client, user):
    client = bearer_client(user)
    response = bearer_refresh(APIClient(), client.tokens["refreshToken"])

    assert response.status_code == 200
    body = response.json()
    assert body["refreshToken"] != client.tokens["refreshToken"]
    assert body["user"]["email"] == user.email and body["expiresIn"] > 0
    assert not response.cookies
    me = APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {body['accessToken']}")
    assert me.status_code == 200


def test_rotation_retires_the_presented_token(bearer_client, user):
    first = bearer_client(user).tokens["refreshToken"]
    second = bearer_refresh(APIClient(), first).json()["refreshToken"]
    session = Session.objects.get()
    assert session.previous_refresh_jti != "" and session.current_refresh_jti != session.previous_refresh_jti
    assert bearer_refresh(APIClient(), second).status_code == 200


@pytest.mark.parametrize(
    ("delay", "outcome"), [(timedelta(seconds=5), "grace"), (timedelta(seconds=11), "reuse")]
)
def test_a_retired_refresh_token_within_the_grace_gets_the_same_successor_after_it_revokes(
    bearer_client, user, delay, outcome
):
    client = bearer_client(user)
    original = client.tokens["refreshToken"]
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        successor = bearer_refresh(APIClient(), original).json()
        traveller.shift(delay)
        again = bearer_refresh(APIClient(), original)

    session = Session.objects.get()
    if outcome == "grace":
        assert again.status_code == 200
        assert again.json()["refreshToken"] == successor["refreshToken"]
        assert again.json()["accessToken"] != successor["accessToken"]
        assert session.revoked_at is None
    else:
        assert again.status_code == 403
        assert again.json()["code"] == "refresh_token_reused"
        assert session.revoked_reason == "refresh_reuse"
        # The whole family is dead: the successor and the access tokens too.
        assert bearer_refresh(APIClient(), successor["refreshToken"]).json()["code"] == "token_not_valid"
        me = APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {successor['accessToken']}")
        assert me.json()["code"] == "token_not_valid"
        assert AuditEvent.objects.filter(type=AuditEventType.REFRESH_REUSED, session_id=session.pk).exists()


def test_a_token_two_rotations_old_is_reuse_even_within_the_grace(bearer_client, user):
    first = bearer_client(user).tokens["refreshToken"]
    second = bearer_refresh(APIClient(), first).json()["refreshToken"]
    bearer_refresh(APIClient(), second)
    response = bearer_refresh(APIClient(), first)
    assert response.json()["code"] == "refresh_token_reused"


def test_refresh_errors_clear_the_cookies(auth_client, user):
    client = auth_client(user)
    client.cookies[REFRESH_COOKIE] = "garbage"
    response = client.post("/api/auth/refresh")
    assert response.status_code == 403
    assert response.json()["code"] == "token_not_valid"
    assert response.cookies[ACCESS_COOKIE].value == "" and response.cookies[REFRESH_COOKIE].value == ""
    assert response.cookies[REFRESH_COOKIE]["path"] == "/api/auth/"
    assert int(response.cookies[ACCESS_COOKIE]["max-age"]) == 0


def test_refresh_without_any_token_is_token_not_valid_and_says_where_it_goes(api_client, db):
    response = api_client.post("/api/auth/refresh", {"refreshToken": "not read from the body"}, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "token_not_valid")
    assert "Authorization: Bearer" in response.json()["detail"]


def test_an_access_token_is_not_a_refresh_token(bearer_client, user):
    access = bearer_client(user).tokens["accessToken"]
    response = bearer_refresh(APIClient(), access)
    assert response.json()["code"] == "token_not_valid"


def test_refresh_of_a_deactivated_user_is_refused(bearer_client, user):
    refresh = bearer_client(user).tokens["refreshToken"]
    type(user).objects.filter(pk=user.pk).update(is_active=False)  # not via the service: the check itself
    response = bearer_refresh(APIClient(), refresh)
    assert (response.status_code, response.json()["code"]) == (403, "account_disabled")


def test_rotation_never_extends_the_session_past_its_absolute_end(bearer_client, user, settings):
    settings.JWT_SESSION_MAX = timedelta(days=10)
    settings.JWT_TTL = timedelta(days=30)  # idle timeout out of the way
    start = timezone.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False) as traveller:
        refresh = bearer_client(user).tokens["refreshToken"]
        session = Session.objects.get()
        traveller.shift(timedelta(days=6))
        body = bearer_refresh(APIClient(), refresh).json()
        # Refresh token and access token both end with the session, not 7 days / 15 minutes later.
        assert body["refreshTokenExpiresIn"] == 4 * 86400_000
        traveller.shift(timedelta(days=4) - timedelta(minutes=5))
        body = bearer_refresh(APIClient(), body["refreshToken"]).json()
        assert body["expiresIn"] == 5 * 60_000
        traveller.shift(timedelta(minutes=5))
        assert bearer_refresh(APIClient(), body["refreshToken"]).json()["code"] == "token_not_valid"
    session.refresh_from_db()
    assert session.expires_at == start + timedelta(days=10)


def test_a_refresh_cookie_from_a_foreign_origin_is_refused(auth_client, user):
    client = auth_client(user)
    response = client.post("/api/auth/refresh", HTTP_ORIGIN="https://evil.example")
    assert (response.status_code, response.json()["code"]) == (403, "csrf_failed")
    assert REFRESH_COOKIE not in response.cookies  # a foreign page cannot log the user out either
    assert client.post("/api/auth/refresh").status_code == 200


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refreshes_with_one_token_mint_one_successor(user_factory):
    if connection.vendor == "sqlite":
        # The SQLite test database is in memory with a shared cache, whose table locks fail at
        # once ("database table is locked") instead of waiting: concurrency is PostgreSQL's and
        # MariaDB's test.
        pytest.skip(
            "concurrent writers need PostgreSQL or MariaDB (the SQLite test database is shared-cache in memory)"
        )
    user = user_factory()
    refresh = login(APIClient(), user, tokenDelivery="body").json()["refreshToken"]
    barrier = threading.Barrier(4)
    results = []

    def worker():
        from django.db import connections

        try:
            barrier.wait()
            response = bearer_refresh(APIClient(), refresh)
            results.append((response.status_code, response.json().get("refreshToken")))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [status for status, _ in results] == [200] * 4
    assert len({token for _, token in results}) == 1  # all got the same successor
    session = Session.objects.get()
    assert session.revoked_at is None
    assert session.previous_refresh_jti != "" and session.rotated_at is not None


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_replays_of_one_retired_token_sent_together_are_one_reuse_on_the_record(user_factory, settings):
    """One incident, one audit event and one count in the metric, however many replays it took."""
    if connection.vendor == "sqlite":
        pytest.skip(
            "concurrent writers need PostgreSQL or MariaDB (the SQLite test database is shared-cache in memory)"
        )
    settings.JWT_REFRESH_REUSE_GRACE = timedelta(0)
    user = user_factory()
    retired = login(APIClient(), user, tokenDelivery="body").json()["refreshToken"]
    assert bearer_refresh(APIClient(), retired).status_code == 200
    answers = race(*[lambda: bearer_refresh(APIClient(), retired) for _ in range(6)])

    codes = [answer.json()["code"] for answer in answers]
    assert set(codes) <= {"refresh_token_reused", "token_not_valid"} and "refresh_token_reused" in codes
    assert AuditEvent.objects.filter(type=AuditEventType.REFRESH_REUSED).count() == 1
    assert Session.objects.get().revoked_at is not None
