"""The cache half of a session: revocation wins in every order, gateways see the current claims."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.core.cache import caches
from django.test import override_settings
from django.utils import timezone

from accounts import selectors, session_cache
from accounts.models import Session, User
from accounts.selectors import session_facts
from accounts.services import users_claims_bump
from clusters.services import grant_remove, grant_set
from tests.accounts.test_sessions import DEAD_REDIS


def _validate(client):
    return client.get("/api/auth/validate")


def test_a_logout_the_cache_cannot_record_revokes_nothing_and_says_so(bearer_client, user):
    client = bearer_client(user)
    with override_settings(CACHES=DEAD_REDIS):
        response = client.post("/api/auth/logout")
        caches["default"].close()
    assert (response.status_code, response.json()["code"]) == (503, "auth_unavailable")
    assert Session.objects.get().revoked_at is None  # the database was not told either
    # The cache is back: both the API and the gateway check agree the session is still alive.
    assert client.get("/api/auth/me").status_code == 200
    assert _validate(client).status_code == 200
    assert client.post("/api/auth/logout").status_code == 204
    assert _validate(client).json()["code"] == "token_not_valid"


def test_a_request_that_raced_a_revocation_cannot_bring_the_session_back(bearer_client, user):
    client = bearer_client(user)
    session = Session.objects.get()
    client.post("/api/auth/logout")
    # What a request that read the session just before the revocation would write afterwards.
    session_cache.session_timer_start(
        session_id=session.pk, user_id=user.pk, ends_at=session.expires_at, facts=session_facts(session)
    )
    assert _validate(client).json()["code"] == "token_not_valid"
    assert client.get("/api/auth/me").json()["code"] == "token_not_valid"


def test_validate_tells_the_gateway_the_current_scope_after_a_grant_change(
    bearer_client, user, client1, django_assert_num_queries
):
    client = bearer_client(user)
    assert _validate(client)["X-Auth-Scope"] == ""
    grant_set(user=user, client=client1, role="viewer")
    assert _validate(client)["X-Auth-Scope"] == "client1"
    with django_assert_num_queries(0):  # read once from the database, then from the cache again
        assert _validate(client)["X-Auth-Scope"] == "client1"
    grant_remove(user=user, client=client1)
    assert _validate(client)["X-Auth-Scope"] == ""


def test_a_deactivation_made_outside_the_services_reaches_validate_within_the_claims_ttl(
    in_process_cache, bearer_client, user, settings
):
    settings.CLAIMS_CACHE_TTL = timedelta(seconds=30)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = bearer_client(user)
        User.objects.filter(pk=user.pk).update(is_active=False)  # a shell, a data migration
        traveller.shift(timedelta(seconds=29))
        assert _validate(client).status_code == 200  # the cached claims are trusted this long
        traveller.shift(timedelta(seconds=2))
        response = _validate(client)
    assert (response.status_code, response.json()["code"]) == (403, "account_disabled")


@pytest.mark.parametrize("idle", [timedelta(seconds=30), timedelta(seconds=59)])
def test_a_busy_session_writes_its_idle_timer_at_most_once_a_minute(
    in_process_cache, bearer_client, user, idle
):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = bearer_client(user)
        session = Session.objects.get()
        seen = session_cache.session_cache_read(session_id=session.pk, user_id=user.pk).seen
        traveller.shift(idle)
        assert _validate(client).status_code == 200
        assert session_cache.session_cache_read(session_id=session.pk, user_id=user.pk).seen == seen
        traveller.shift(timedelta(minutes=1))
        assert _validate(client).status_code == 200
        assert session_cache.session_cache_read(session_id=session.pk, user_id=user.pk).seen > seen


def test_an_idle_timer_past_its_lifetime_ends_the_session_whatever_the_cache_still_holds(bearer_client, user):
    """Redis keeps this entry for JWT_TTL of its own clock, as a process's copy of it could:
    the timer's own time decides."""
    client = bearer_client(user)
    session = Session.objects.get()
    idle_timeout = settings.JWT_TTL
    with time_machine.travel(timezone.now() - idle_timeout - timedelta(seconds=1), tick=False):
        with override_settings(JWT_TTL=timedelta(days=1)):  # the cache keeps the entry a day
            session_cache.session_timer_start(
                session_id=session.pk,
                user_id=user.pk,
                ends_at=session.expires_at,
                facts=session_facts(session),
            )
    assert _validate(client).json()["code"] == "token_not_valid"
    assert client.get("/api/auth/me").json()["code"] == "token_not_valid"


def test_claims_read_just_before_a_change_never_outlive_it(
    monkeypatch, bearer_client, user_factory, cluster2
):
    """A request that read an operator's row just before a demotion, and caches what it read after
    the demotion forgot the claims, must not keep the operator's reach alive for CLAIMS_CACHE_TTL."""
    operator = user_factory(email="ops@example.com", is_staff=True, is_operator=True)
    api = bearer_client(operator)
    assert api.get("/api/clients/client2/clusters").status_code == 200
    session_cache.claims_cache_forget(user_ids=[operator.pk])
    read_the_factors = selectors.user_second_factors

    def demoted_meanwhile(*, user):  # runs after the request read the user row
        User.objects.filter(pk=user.pk).update(is_operator=False)
        users_claims_bump(user_ids=[user.pk])  # as the admin does: the claims are forgotten
        return read_the_factors(user=user)

    monkeypatch.setattr(selectors, "user_second_factors", demoted_meanwhile)
    assert api.get("/api/clients/client2/clusters").status_code == 200  # it read the row before
    monkeypatch.undo()

    refused = api.get("/api/clients/client2/clusters")
    assert refused.status_code == 403 and refused.json()["code"] == "permission_denied"
    assert _validate(api)["X-Auth-Scope"] == ""
