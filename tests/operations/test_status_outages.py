"""The status endpoint when PostgreSQL really goes away: gunicorn, PostgreSQL behind a switchable proxy.

While the staff user's claims are cached, authentication reads no database row: the endpoint
answers 200 and says the database is down. Once they expire (``CLAIMS_CACHE_TTL``), the session
needs the database and the answer is 503 ``database_unavailable``, as for every endpoint. It
needs PostgreSQL and Redis (the second run of .ci/run, which sets PORTAL_MULTI_REPLICA=1 and
makes a missing server a failure).
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests

from tests.helpers import free_port
from tests.operations.test_metrics_gunicorn import PROJECT_ROOT, _signing_key
from tests.support.tcp_proxy import TcpProxy

DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
CLAIMS_TTL_SECONDS = 3

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def requirements():
    missing = None
    if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
        missing = "DATABASE_URL does not point at PostgreSQL"
    elif not REDIS_URL:
        missing = "REDIS_URL is not set"
    if missing:
        if os.environ.get("PORTAL_MULTI_REPLICA") == "1":
            pytest.fail(f"the status outage test needs PostgreSQL and Redis: {missing}")
        pytest.skip(f"the status outage test needs PostgreSQL and Redis: {missing}")


def _url(url: str, *, netloc: str | None = None, path: str) -> str:
    parts = urlsplit(url)
    if netloc is not None:
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{netloc}" if credentials else netloc
    return urlunsplit(parts._replace(netloc=netloc or parts.netloc, path=path, query=""))


@pytest.fixture(scope="module")
def portal(requirements, tmp_path_factory) -> Iterator[tuple[str, TcpProxy]]:
    import psycopg

    work = tmp_path_factory.mktemp("status-outages")
    database = f"portal_status_{uuid.uuid4().hex[:10]}"
    admin_url = _url(DATABASE_URL, path="/postgres")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    target = urlsplit(DATABASE_URL)
    try:
        with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
            env = {
                key: value
                for key, value in os.environ.items()
                if not key.startswith(("DJANGO_", "JWT_", "GITOPS_", "PORTAL_", "FIELD_", "DATABASE_"))
            }
            env.update(
                PORTAL_ENV_FILE="",
                DJANGO_SETTINGS_MODULE="config.settings",
                DJANGO_DEBUG="0",
                DJANGO_SECRET_KEY="status-outages-" + uuid.uuid4().hex,
                DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
                DJANGO_SECURE_SSL_REDIRECT="0",
                AUTH_COOKIE_SECURE="0",
                STATIC_MANIFEST="0",
                FIELD_ENCRYPTION_KEY="status-outages-field-key",
                DATABASE_URL=_url(DATABASE_URL, netloc=proxy.address, path=f"/{database}")
                + "?connect_timeout=2",
                REDIS_URL=_url(REDIS_URL, path="/7"),
                CACHE_KEY_PREFIX=f"status-{database}",
                CLAIMS_CACHE_TTL=f"{CLAIMS_TTL_SECONDS}s",
                JWT_PRIVATE_KEYS=_signing_key(),
                PORTAL_VAR_DIR=str(work / "var"),
                GITOPS_REPO_PATH=str(work / "gitops.git"),
                LOG_LEVEL="WARNING",
            )
            setup = (
                "from django.core.management import call_command\n"
                "from accounts.models import User\n"
                "call_command('migrate', interactive=False, verbosity=0)\n"
                "User.objects.create_user(email='staff@example.com', password='staff-password', is_staff=True)\n"
            )
            subprocess.run(
                [sys.executable, "manage.py", "shell", "-c", setup], cwd=PROJECT_ROOT, env=env, check=True,
                capture_output=True, timeout=180,
            )  # fmt: skip
            port, log = free_port(), work / "gunicorn.log"
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py",
                 "--bind", f"127.0.0.1:{port}", "--workers", "1", "--threads", "4"],
                cwd=PROJECT_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
            url = f"http://127.0.0.1:{port}"
            try:
                deadline = time.monotonic() + 60
                while True:
                    assert process.poll() is None, log.read_text()[-4000:]
                    try:
                        if requests.get(f"{url}/readyz", timeout=5).status_code == 200:
                            break
                    except requests.ConnectionError:
                        pass
                    assert time.monotonic() < deadline, log.read_text()[-4000:]
                    time.sleep(0.2)
                yield url, proxy
            finally:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _token(url: str) -> str:
    body = {
        "email": "staff@example.com",
        "password": base64.b64encode(b"staff-password").decode(),
        "tokenDelivery": "body",
    }
    response = requests.post(f"{url}/api/auth/login", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["accessToken"]


def test_the_status_reports_a_lost_database_then_needs_it_once_the_claims_expire(portal):
    url, database = portal
    headers = {"Authorization": f"Bearer {_token(url)}"}
    assert requests.get(f"{url}/api/system/status", headers=headers, timeout=30).json()["database"]["ok"]

    database.refuse()
    try:
        started = time.monotonic()
        down = requests.get(f"{url}/api/system/status", headers=headers, timeout=30)
        elapsed = time.monotonic() - started
        time.sleep(CLAIMS_TTL_SECONDS + 1)
        needed = requests.get(f"{url}/api/system/status", headers=headers, timeout=30)
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
