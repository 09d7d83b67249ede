"""The status endpoint when PostgreSQL really goes away: gunicorn, PostgreSQL behind a switchable proxy.

While the staff user's claims are cached, authentication reads no database row: the endpoint
answers 200 and says the database is down. Once they expire (``CLAIMS_CACHE_TTL``), the session
needs the database and the answer is 503 ``database_unavailable``, as for every endpoint. It
needs PostgreSQL and Redis (the second run of .ci/run, which sets PORTAL_MULTI_REPLICA=1 and
makes a missing server a failure).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.portal_process import (
    DATABASE_URL,
    REDIS_URL,
    gunicorn_start,
    manage,
    postgres_and_redis_require,
    postgres_database,
    production_env,
    url_with,
)
from tests.support.tcp_proxy import TcpProxy

CLAIMS_TTL_SECONDS = 10  # login, two status requests and the refusal fit well within it

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def requirements():
    postgres_and_redis_require(what="the status outage test", required_by="PORTAL_MULTI_REPLICA")


@pytest.fixture(scope="module")
def portal(requirements, tmp_path_factory) -> Iterator[tuple[str, TcpProxy]]:
    work = tmp_path_factory.mktemp("status-outages")
    target = urlsplit(DATABASE_URL)
    with (
        postgres_database("portal_status") as database,
        TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy,
    ):
        env = production_env(
            work=work,
            name="status-outages",
            DATABASE_URL=url_with(
                DATABASE_URL, address=proxy.address, path=f"/{database}", query="connect_timeout=2"
            ),
            REDIS_URL=url_with(REDIS_URL, path="/7"),
            CACHE_KEY_PREFIX=f"status-{database}",
            CLAIMS_CACHE_TTL=f"{CLAIMS_TTL_SECONDS}s",
        )
        manage(
            env,
            "shell",
            "-c",
            "from django.core.management import call_command\n"
            "from accounts.models import User\n"
            "call_command('migrate', interactive=False, verbosity=0)\n"
            "User.objects.create_user(email='staff@example.com', password='staff-password', is_staff=True)\n",
        )
        server = gunicorn_start(env=env, log=work / "gunicorn.log", workers=1)
        try:
            server.ready_wait()
            yield server.url, proxy
        finally:
            server.stop()


def _token(url: str) -> str:
    body = {
        "email": "staff@example.com",
        "password": base64.b64encode(b"staff-password").decode(),
        "tokenDelivery": "body",
    }
    response = requests.post(f"{url}/api/auth/login", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["accessToken"]


def _first_answer_without_the_cached_claims(url: str, headers: dict[str, str]) -> requests.Response:
    """Asks for the status until the answer is no longer the 200 the cached claims allow (they
    expire after CLAIMS_TTL_SECONDS whatever is asked meanwhile), within a generous deadline."""
    deadline = time.monotonic() + CLAIMS_TTL_SECONDS + 10
    while True:
        answer = requests.get(f"{url}/api/system/status", headers=headers, timeout=30)
        if answer.status_code != 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_the_status_reports_a_lost_database_then_needs_it_once_the_claims_expire(portal):
    url, database = portal
    headers = {"Authorization": f"Bearer {_token(url)}"}
    assert requests.get(f"{url}/api/system/status", headers=headers, timeout=30).json()["database"]["ok"]

    database.refuse()
    try:
        started = time.monotonic()
        down = requests.get(f"{url}/api/system/status", headers=headers, timeout=30)
        elapsed = time.monotonic() - started
        needed = _first_answer_without_the_cached_claims(url, headers)
    finally:
        database.forward()

    assert down.status_code == 200, down.text
    body = down.json()
    assert body["ok"] is False
    assert body["database"]["ok"] is False and body["database"]["error"].startswith("OperationalError")
    assert body["gitops"] == {**body["gitops"], "ok": False, "error": "not read: the database did not answer"}
    assert body["cache"]["ok"] is True and body["cache"]["backend"] == "redis"
    assert elapsed < 10
    assert needed.status_code == 503 and needed.json()["code"] == "database_unavailable"
    deadline = time.monotonic() + 30
    while requests.get(f"{url}/api/system/status", headers=headers, timeout=30).status_code != 200:
        assert time.monotonic() < deadline, "the status never came back with the database"
        time.sleep(0.5)
