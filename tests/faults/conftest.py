"""The real portal under gunicorn, with PostgreSQL, Redis and its git remote behind switches.

PostgreSQL and Redis are reached through :class:`tests.support.tcp_proxy.TcpProxy` (stopped:
``refuse``; hung: ``hang``), the GitOps remote is served over HTTP by
:class:`tests.support.git_http.GitHttpServer` (``answering = False``: unreachable). The portal
runs as in production: DEBUG off, gunicorn's gthread workers, pooled database connections
(``DATABASE_CONN_MAX_AGE=60``), its own database created on the server and dropped afterwards.

It needs PostgreSQL and Redis, so it runs when DATABASE_URL points at PostgreSQL and REDIS_URL
is set (the second run of .ci/run); PORTAL_FAULT_SUITE=1 makes a missing server a failure
instead of a skip.
"""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.helpers import free_port
from tests.support.git_http import GitHttpServer
from tests.support.tcp_proxy import TcpProxy

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
REDIS_DB = 6  # not the test run's own (tests clear it) nor the multi-replica test's
WORKERS = 2
CONNECT_TIMEOUT_SECONDS = 2  # PostgreSQL's, through DATABASE_URL; Redis's are in config/settings.py
REMOTE_NAME = "gitops.git"
CLUSTERS = ("redis", "database", "unreachable", "synced", "moved", "moved-offline")
USERS = {"client1": ("client1@example.com", "client1"), "admin": ("admin@example.com", "admin")}


def _requirements_missing() -> str | None:
    if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
        return "DATABASE_URL does not point at PostgreSQL"
    if not REDIS_URL:
        return "REDIS_URL is not set"
    return None


@pytest.fixture(scope="session")
def fault_requirements() -> None:
    missing = _requirements_missing()
    if missing:
        message = f"the fault suite needs PostgreSQL and Redis: {missing}"
        if os.environ.get("PORTAL_FAULT_SUITE") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _url_through(url: str, *, address: str, path: str, query: str = "") -> str:
    """``url`` with its host:port replaced by ``address`` (the proxy), keeping the credentials."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{address}" if credentials else address
    return urlunsplit(parts._replace(netloc=netloc, path=path, query=query))


def _signing_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@dataclass
class Portal:
    """The running portal, its dependencies' switches, and what it wrote to stdout/stderr."""

    url: str
    env: dict[str, str]
    database: TcpProxy
    redis: TcpProxy
    git: GitHttpServer
    remote: Path
    log: Path
    direct_database_url: str  # the portal's database, not through the proxy: what it recorded
    process: subprocess.Popen | None = None

    # --- HTTP: any answer but a 5xx other than 503 fails the test at once --------------------

    def request(self, method: str, path: str, *, token: str | None = None, **kwargs) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", 30)
        kwargs.setdefault("allow_redirects", False)
        session = kwargs.pop("session", None) or requests
        response = session.request(method, f"{self.url}{path}", headers=headers, **kwargs)
        assert response.status_code < 500 or response.status_code == 503, (
            f"{method} {path} answered {response.status_code}: {response.text[:500]}"
        )
        return response

    def login(self, who: str = "client1") -> dict:
        email, password = USERS[who]
        response = self.request(
            "POST",
            "/api/auth/login",
            json={
                "email": email,
                "password": base64.b64encode(password.encode()).decode(),
                "tokenDelivery": "body",
            },
        )
        assert response.status_code == 200, response.text
        return response.json()

    def cluster(self, name: str, token: str) -> dict:
        response = self.request("GET", f"/api/clients/client1/clusters/{name}", token=token)
        assert response.status_code == 200, response.text
        return response.json()

    def history(self, name: str, token: str) -> list[dict]:
        response = self.request("GET", f"/api/clients/client1/clusters/{name}/history", token=token)
        assert response.status_code == 200, response.text
        return response.json()

    def ready_wait(self, timeout: float = 30) -> None:
        """Until /readyz says both PostgreSQL and Redis answer again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"the portal exited:\n{self.log_text()[-4000:]}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=10).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # booting, or a probe still waiting
                pass
            time.sleep(0.2)
        raise AssertionError(f"the portal at {self.url} never became ready:\n{self.log_text()[-4000:]}")

    # --- its log --------------------------------------------------------------------------

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def log_records(self) -> list[dict]:
        """Every line the portal wrote, parsed (``{"raw": ...}`` when not JSON)."""
        records = []
        for line in self.log_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                record = {"raw": line}
            records.append(record if isinstance(record, dict) else {"raw": line})
        return records

    def sql(self, query: str, *params: object) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.direct_database_url, autocommit=True) as connection:
            return connection.execute(query, params).fetchall()

    # --- the portal's own tools -----------------------------------------------------------

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)


_SETUP = """
from django.core.management import call_command
from django.db import transaction
from clusters.models import Client
from clusters.services import cluster_create
call_command("migrate", interactive=False, verbosity=0)
with transaction.atomic():  # one delivery (one push) for everything, once it commits
    call_command("seed_demo", force=True)
    client = Client.objects.get(slug="client1")
    for slug in {clusters!r}:
        cluster_create(client=client, slug=slug, actor=None)
"""


@pytest.fixture(scope="module")
def portal(fault_requirements, tmp_path_factory) -> Iterator[Portal]:
    import psycopg

    work = tmp_path_factory.mktemp("faults")
    database = f"portal_faults_{uuid.uuid4().hex[:10]}"
    target = urlsplit(DATABASE_URL)
    # The server's maintenance database: the one DATABASE_URL names need not exist.
    admin_url = _url_through(DATABASE_URL, address=target.netloc.rpartition("@")[2], path="/postgres")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')

    redis_target = urlsplit(REDIS_URL)
    try:
        with (
            TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as database_proxy,
            TcpProxy(redis_target.hostname or "127.0.0.1", redis_target.port or 6379) as redis_proxy,
            GitHttpServer(work / "served") as git,
        ):
            remote = git.repository_create(REMOTE_NAME)
            static_root = work / "static"  # as collectstatic leaves it in the image
            static_root.mkdir()
            env = {
                key: value
                for key, value in os.environ.items()
                if not key.startswith(("DJANGO_", "JWT_", "GITOPS_", "PORTAL_", "FIELD_", "DATABASE_"))
            }
            env.update(
                PORTAL_ENV_FILE="",  # no developer's .env
                DJANGO_SETTINGS_MODULE="config.settings",
                DJANGO_DEBUG="0",
                DJANGO_SECRET_KEY="fault-suite-secret-" + uuid.uuid4().hex,
                DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
                DJANGO_SECURE_SSL_REDIRECT="0",
                AUTH_COOKIE_SECURE="0",
                STATIC_MANIFEST="0",
                FIELD_ENCRYPTION_KEY="fault-suite-field-key",
                DATABASE_URL=_url_through(
                    DATABASE_URL,
                    address=database_proxy.address,
                    path=f"/{database}",
                    query=f"connect_timeout={CONNECT_TIMEOUT_SECONDS}",
                ),
                DATABASE_CONN_MAX_AGE="60",  # as in production: pooled connections must be cut
                REDIS_URL=_url_through(REDIS_URL, address=redis_proxy.address, path=f"/{REDIS_DB}"),
                CACHE_KEY_PREFIX=f"faults-{database}",
                JWT_PRIVATE_KEYS=_signing_key_pem(),
                LOGIN_THROTTLE_IP="1000/min",
                LOGIN_THROTTLE_ACCOUNT="1000/min",
                MFA_REQUIRED_FOR_STAFF="0",  # the operator signs in with a password alone here
                GITOPS_REMOTE_URL=git.url(REMOTE_NAME),
                GITOPS_REPO_PATH=str(work / "portal.git"),
                PORTAL_VAR_DIR=str(work / "var"),
                DJANGO_STATIC_ROOT=str(static_root),
                LOG_LEVEL="WARNING",
            )
            port = free_port()
            portal = Portal(
                url=f"http://127.0.0.1:{port}",
                env=env,
                database=database_proxy,
                redis=redis_proxy,
                git=git,
                remote=remote,
                log=work / "portal.log",
                direct_database_url=_url_through(
                    DATABASE_URL, address=target.netloc.rpartition("@")[2], path=f"/{database}"
                ),
            )
            portal.manage("shell", "-c", _SETUP.format(clusters=CLUSTERS))
            with portal.log.open("w") as log:  # the server writes to its own copy
                portal.process = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "gunicorn",
                        "--config",
                        "deploy/gunicorn.conf.py",
                        "--bind",
                        f"127.0.0.1:{port}",
                        "--workers",
                        str(WORKERS),
                        "--threads",
                        "4",
                    ],
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            try:
                portal.ready_wait(timeout=60)
                yield portal
            finally:
                portal.stop()
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@pytest.fixture
def healthy(portal: Portal) -> Iterator[Portal]:
    """The portal with every dependency answering, before and after the test (whatever it broke)."""
    portal.ready_wait()
    yield portal
    portal.database.forward()
    portal.redis.forward()
    portal.git.answering = True
    portal.ready_wait()


ACCESS_STATUS = re.compile(r'" (\d{3}) ')


def access_statuses(records: list[dict]) -> list[tuple[str, int]]:
    """(request line, status) of every line of gunicorn's access log among ``records``."""
    found = []
    for record in records:
        if record.get("logger") == "gunicorn.access":
            match = ACCESS_STATUS.search(record.get("message", ""))
            if match:
                found.append((record["message"], int(match.group(1))))
    return found
