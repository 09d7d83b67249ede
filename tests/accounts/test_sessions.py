"""Sessions: listing, revoking, idle timeout, absolute cap, revocation by password change or deactivation."""

from datetime import timedelta

import pytest
import time_machine
from django.core.cache import caches
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent, AuditEventType, Session
from accounts.passwords import operator_password_set
from accounts.services import user_deactivate, user_delete, users_claims_bump
from tests.helpers import DEAD_REDIS


def test_sessions_list_marks_the_current_one(auth_client, user):
    other = auth_client(user)
    client = auth_client(user)
    sessions = client.get("/api/auth/sessions").json()

    assert len(sessions) == 2
    current = [s for s in sessions if s["current"]]
    assert len(current) == 1
    assert set(current[0]) == {"id", "createdAt", "lastSeenAt", "userAgent", "ip", "amr", "current"}
    assert current[0]["amr"] == ["password"]
    assert current[0]["id"] != [s for s in other.get("/api/auth/sessions").json() if s["current"]][0]["id"]


def test_deleting_one_of_my_sessions_revokes_it_at_once(auth_client, user):
    other = auth_client(user)
    client = auth_client(user)
    other_id = next(s["id"] for s in client.get("/api/auth/sessions").json() if not s["current"])

    assert client.delete(f"/api/auth/sessions/{other_id}").status_code == 204
    assert other.get("/api/auth/me").json()["code"] == "token_not_valid"
    assert [s["id"] for s in client.get("/api/auth/sessions").json()] != [other_id]
    assert Session.objects.get(pk=other_id).revoked_reason == "user"


@pytest.mark.parametrize("whose", ["someone else's", "unknown"])
def test_deleting_a_session_that_is_not_mine_is_a_404(auth_client, user, user_factory, whose):
    client = auth_client(user)
    if whose == "unknown":
        target = "00000000-0000-0000-0000-000000000000"
    else:
        auth_client(user_factory(email="mallory@example.com"))
        target = Session.objects.get(user__email="mallory@example.com").pk
    response = client.delete(f"/api/auth/sessions/{target}")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    assert not Session.objects.exclude(revoked_at=None).exists()


def test_logout_revokes_the_session_clears_cookies_and_is_idempotent(auth_client, user):
    client = auth_client(user)
    access = client.cookies["__Host-accessToken"].value
    response = client.post("/api/auth/logout")

    assert response.status_code == 204
    assert response.cookies["__Host-accessToken"].value == ""
    assert Session.objects.get().revoked_reason == "logout"
    assert AuditEvent.objects.filter(type=AuditEventType.LOGOUT).count() == 1
    assert APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 403
    assert client.post("/api/auth/logout").status_code == 204
    assert APIClient().post("/api/auth/logout").status_code == 204


def test_logout_by_bearer_access_token(bearer_client, user):
    client = bearer_client(user)
    assert client.post("/api/auth/logout").status_code == 204
    assert client.get("/api/auth/me").json()["code"] == "token_not_valid"


def test_logout_with_an_expired_access_token_still_ends_its_session_and_a_forged_one_nothing(
    bearer_client, user, settings
):
    """A script logs out with the access token it holds, often an expired one: the session ends
    all the same (its refresh token stops working); a token with a bad signature ends nothing."""
    client = bearer_client(user)
    access, refresh = client.tokens["accessToken"], client.tokens["refreshToken"]
    forged = access[:-4] + ("AAAA" if not access.endswith("AAAA") else "BBBB")
    assert APIClient().post("/api/auth/logout", HTTP_AUTHORIZATION=f"Bearer {forged}").status_code == 204
    assert Session.objects.get().revoked_at is None

    with time_machine.travel(timezone.now() + settings.JWT_ACCESS_TTL + timedelta(minutes=1)):
        assert client.get("/api/auth/me").json()["code"] == "token_not_valid"  # expired
        assert APIClient().post("/api/auth/logout", HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 204
        refreshed = APIClient().post("/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {refresh}")

    assert Session.objects.get().revoked_reason == "logout"
    assert (refreshed.status_code, refreshed.json()["code"]) == (403, "token_not_valid")


# Redis expires keys on its own clock, which time-machine cannot move: these run on the
# in-process cache, through the same service code.
IN_PROCESS_CACHE = override_settings(
    CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "idle-tests"}}
)


@IN_PROCESS_CACHE
@pytest.mark.parametrize(("idle", "status"), [(timedelta(minutes=19), 200), (timedelta(minutes=21), 403)])
def test_a_session_idle_longer_than_jwt_ttl_expires(bearer_client, user, idle, status):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = bearer_client(user)
        traveller.shift(idle)
        fresh = APIClient().post(
            "/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {client.tokens['refreshToken']}"
        )
        assert fresh.status_code == status
        if status == 403:
            assert fresh.json()["code"] == "token_not_valid"
            assert Session.objects.get().revoked_reason == "idle"


@IN_PROCESS_CACHE
def test_every_authenticated_request_resets_the_idle_timer(bearer_client, user, settings):
    settings.JWT_ACCESS_TTL = timedelta(hours=2)  # only the idle timeout is under test
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = bearer_client(user)
        for _ in range(3):  # 45 minutes in all, never 20 idle
            traveller.shift(timedelta(minutes=14))
            assert client.get("/api/auth/me").status_code == 200
        traveller.shift(timedelta(minutes=21))
        assert client.get("/api/auth/validate").json()["code"] == "token_not_valid"


def test_last_seen_is_written_at_most_about_once_a_minute(bearer_client, user):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = bearer_client(user)
        seen = Session.objects.get().last_seen_at
        traveller.shift(timedelta(seconds=30))
        with CaptureQueriesContext(connection) as queries:
            client.get("/api/auth/me")
        assert not [q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]
        assert Session.objects.get().last_seen_at == seen
        traveller.shift(timedelta(seconds=31))
        client.get("/api/auth/me")
        assert Session.objects.get().last_seen_at == seen + timedelta(seconds=61)


def test_a_session_ends_at_its_absolute_cap_however_active(bearer_client, user, settings):
    settings.JWT_SESSION_MAX = timedelta(hours=1)
    with time_machine.travel(timezone.now().replace(microsecond=0), tick=False) as traveller:
        client = bearer_client(user)
        refresh = client.tokens["refreshToken"]
        for _ in range(4):
            traveller.shift(timedelta(minutes=14))
            body = APIClient().post("/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {refresh}").json()
            refresh = body["refreshToken"]
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['accessToken']}")
        assert body["expiresIn"] == 4 * 60_000  # not 15 minutes: the session ends first
        traveller.shift(timedelta(minutes=3, seconds=59))
        assert client.get("/api/auth/me").status_code == 200
        traveller.shift(timedelta(seconds=1))
        assert client.get("/api/auth/me").json()["code"] == "token_not_valid"
        assert (
            APIClient().post("/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {refresh}").status_code == 403
        )


def test_a_password_change_revokes_all_other_sessions(auth_client, user):
    keep, lose = auth_client(user), auth_client(user)
    current = next(s["id"] for s in keep.get("/api/auth/sessions").json() if s["current"])

    operator_password_set(user=user, password="a new password 42", current_session_id=current)

    assert keep.get("/api/auth/me").status_code == 200
    assert lose.get("/api/auth/me").json()["code"] == "token_not_valid"
    assert Session.objects.filter(revoked_reason="password_change").count() == 1


def test_deactivation_revokes_every_session_and_access_token(auth_client, bearer_client, user):
    browser, cli = auth_client(user), bearer_client(user)
    user_deactivate(user=user)
    for client in (browser, cli):
        assert client.get("/api/auth/me").json()["code"] == "account_disabled"
        assert client.get("/api/auth/validate").json()["code"] == "account_disabled"
    assert browser.post("/api/auth/refresh").json()["code"] == "account_disabled"  # the refresh cookie
    assert Session.objects.filter(revoked_reason="deactivated").count() == 2


@pytest.mark.parametrize("ended", ["deactivated", "deleted"])
def test_a_gone_users_validate_answer_reads_no_database(
    bearer_client, user, django_assert_num_queries, ended
):
    """Gateways call /validate on every request: telling why costs the marker only, no query,
    even for an account whose row is gone (its tokens live on until they expire)."""
    cli = bearer_client(user)
    user_deactivate(user=user) if ended == "deactivated" else user_delete(user=user)
    cli.get("/api/auth/validate")  # the first answer may warm what a process keeps
    with django_assert_num_queries(0):
        assert cli.get("/api/auth/validate").json()["code"] == "account_disabled"


def test_an_inactive_user_is_refused_on_every_request(in_process_cache, bearer_client, user, settings):
    """Even deactivated behind the services' back (a shell): within CLAIMS_CACHE_TTL, everywhere."""
    settings.CLAIMS_CACHE_TTL = timedelta(seconds=30)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = bearer_client(user)
        type(user).objects.filter(pk=user.pk).update(is_active=False)  # bypassing the service
        traveller.shift(timedelta(seconds=31))
        for path in ("/api/auth/me", "/api/auth/validate", "/api/clients"):
            response = client.get(path)
            assert (response.status_code, response.json()["code"]) == (403, "account_disabled"), path


@pytest.mark.parametrize("via", ["cookie", "header"])
def test_changed_claims_come_back_as_a_fresh_access_token(auth_client, bearer_client, user, via):
    client = auth_client(user) if via == "cookie" else bearer_client(user)
    assert client.get("/api/auth/me").get("X-Extended-Token") is None

    user.name = "Alice Liddell"
    user.save()
    users_claims_bump(user_ids=[user.pk])
    response = client.get("/api/auth/me")

    if via == "cookie":
        assert "__Host-accessToken" in response.cookies
        assert response.get("X-Extended-Token") is None
    else:
        fresh = response["X-Extended-Token"]
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {fresh}")
        assert client.get("/api/auth/me").get("X-Extended-Token") is None


def test_unauthenticated_requests_are_403_not_authenticated(api_client, db):
    response = api_client.get("/api/auth/me")
    assert (response.status_code, response.json()["code"]) == (403, "not_authenticated")
    assert "WWW-Authenticate" not in response


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/auth/me"),
        ("get", "/api/auth/validate"),
        ("post", "/api/auth/refresh"),
        ("get", "/api/auth/sessions"),
    ],
)
def test_a_cache_outage_fails_closed_with_503(bearer_client, user, method, path):
    client = bearer_client(user)
    if path == "/api/auth/refresh":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {client.tokens['refreshToken']}")
    with override_settings(CACHES=DEAD_REDIS):
        response = getattr(client, method)(path)
        caches["default"].close()
    assert (response.status_code, response.json()["code"]) == (503, "auth_unavailable")


def test_login_fails_closed_when_the_cache_is_down(api_client, user):
    from tests.conftest import login

    with override_settings(CACHES=DEAD_REDIS):
        response = login(api_client, user)
    assert (response.status_code, response.json()["code"]) == (503, "auth_unavailable")
