"""A lost database answers 503 database_unavailable (with Retry-After) and is logged once per burst."""

from __future__ import annotations

import logging
from contextlib import contextmanager

import pytest
from django.db import OperationalError, connection

from config import outages


@contextmanager
def database_gone():
    """Every query fails as a dropped PostgreSQL connection would (Django's query instrumentation)."""

    def refuse(execute, sql, params, many, context):
        raise OperationalError("server closed the connection unexpectedly")

    with connection.execute_wrapper(refuse):
        yield


@pytest.fixture(autouse=True)
def _fresh_reporter(monkeypatch):
    monkeypatch.setattr(outages.database_outage, "_last_report", -outages.REPORT_INTERVAL_SECONDS)


@pytest.mark.parametrize("path", ["/api/auth/sessions", "/api/clients", "/api/clients/client1/clusters/main"])
def test_api_requests_answer_503_with_retry_after_while_the_database_is_gone(
    bearer_client, user1, cluster1, path
):
    client = bearer_client(user1)
    with database_gone():
        response = client.get(path)
    assert response.status_code == 503
    assert response.json() == {
        "code": "database_unavailable",
        "detail": "The service is temporarily unavailable; try again shortly.",
    }
    assert response["Retry-After"] == "5"
    assert client.get(path).status_code == 200  # back on its own


def test_who_am_i_and_the_gateway_check_need_only_the_cache(bearer_client, user1):
    client = bearer_client(user1)
    with database_gone():
        assert client.get("/api/auth/me").json()["email"] == "client1@example.com"
        assert client.get("/api/auth/validate")["X-Auth-Scope"] == "client1"


def test_a_login_while_the_database_is_gone_is_503_not_invalid_credentials(api_client, user):
    from tests.conftest import login

    with database_gone():
        response = login(api_client, user)
    assert (response.status_code, response.json()["code"]) == (503, "database_unavailable")


def test_the_admin_answers_a_plain_503(admin_client):
    with database_gone():
        response = admin_client.get("/admin/accounts/user/")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"


def test_an_outage_burst_is_one_log_line_not_a_traceback_per_request(bearer_client, user1, caplog):
    client = bearer_client(user1)
    with caplog.at_level(logging.INFO), database_gone():
        for _ in range(5):
            assert client.get("/api/clients").status_code == 503
    reports = [r for r in caplog.records if r.name == "portal.outages"]
    assert len(reports) == 1 and "database unreachable: OperationalError" in reports[0].getMessage()
    assert not [r for r in caplog.records if r.exc_info]


def _deadlock_error() -> OperationalError:
    """A real deadlock: two transactions locking the same two users in opposite orders; the
    database gives one up, and the error it raises (through Django) is returned."""
    import threading

    from accounts.models import User
    from tests.helpers import race

    first, second = User.objects.order_by("pk")[:2]
    both_hold_one = threading.Barrier(2)

    def lock(one, other):
        from django.db import transaction

        with transaction.atomic():
            User.objects.select_for_update().get(pk=one.pk)
            both_hold_one.wait(timeout=10)
            User.objects.select_for_update().get(pk=other.pk)

    outcomes = race(lambda: lock(first, second), lambda: lock(second, first))
    errors = [outcome for outcome in outcomes if isinstance(outcome, OperationalError)]
    assert len(errors) == 1, outcomes
    return errors[0]


@contextmanager
def database_raising(error: Exception):
    def refuse(execute, sql, params, many, context):
        raise error

    with connection.execute_wrapper(refuse):
        yield


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_deadlock_is_a_retryable_busy_answer_not_a_database_outage(bearer_client, user1, user2, caplog):
    from tests.helpers import concurrent_writers_required

    concurrent_writers_required()
    client, deadlock = bearer_client(user1), _deadlock_error()

    with caplog.at_level(logging.INFO), database_raising(deadlock):
        response = client.get("/api/clients")

    assert response.status_code == 503
    assert response.json() == {
        "code": "database_busy",
        "detail": "Another change was being made to the same data at that moment; nothing was changed. "
        "Try again.",
    }
    assert response["Retry-After"] == "1"
    assert not [r for r in caplog.records if r.name == "portal.outages" and r.levelno >= logging.ERROR]
    assert [r for r in caplog.records if "database busy" in r.getMessage()]


def test_sqlite_busy_is_a_busy_answer_in_the_admin(admin_client, tmp_path):
    """SQLite's own "database is locked" (a writer holding the file past the busy timeout)."""
    import sqlite3

    holder = sqlite3.connect(tmp_path / "locked.sqlite3", isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")
    try:
        sqlite3.connect(tmp_path / "locked.sqlite3", timeout=0).execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as locked:
        try:
            raise OperationalError(*locked.args) from locked  # as Django's wrapper raises it
        except OperationalError as wrapped:
            busy = wrapped
    finally:
        holder.close()

    with database_raising(busy):
        response = admin_client.get("/admin/accounts/user/")

    assert (response.status_code, response["Retry-After"]) == (503, "1")
    assert "nothing was changed" in response.content.decode()
