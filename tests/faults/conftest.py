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
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from tests.support.git_http import GitHttpServer
from tests.support.portal_process import (
    DATABASE_URL,
    REDIS_URL,
    GunicornServer,
    gunicorn_start,
    manage,
    postgres_and_redis_require,
    postgres_database,
    production_env,
    url_with,
)
from tests.support.tcp_proxy import TcpProxy

REDIS_DB = 6  # not the test run's own (tests clear it) nor the multi-replica test's
WORKERS = 2
CONNECT_TIMEOUT_SECONDS = 2  # PostgreSQL's, through DATABASE_URL; Redis's are in config/settings.py
REMOTE_NAME = "gitops.git"
CLUSTERS = ("redis", "database", "unreachable", "synced", "stalled", "moved", "moved-offline")
USERS = {"client1": ("client1@example.com", "client1"), "admin": ("admin@example.com", "admin")}


@pytest.fixture(scope="session")
def fault_requirements() -> None:
    postgres_and_redis_require(what="the fault suite", required_by="PORTAL_FAULT_SUITE")


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
    server: GunicornServer | None = None

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
        assert self.server is not None
        self.server.ready_wait(timeout=timeout)

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
        return manage(self.env, *args, timeout=120)


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
    work = tmp_path_factory.mktemp("faults")
    target = urlsplit(DATABASE_URL)
    redis_target = urlsplit(REDIS_URL)
    with (
        postgres_database("portal_faults") as database,
        TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as database_proxy,
        TcpProxy(redis_target.hostname or "127.0.0.1", redis_target.port or 6379) as redis_proxy,
        GitHttpServer(work / "served") as git,
    ):
        remote = git.repository_create(REMOTE_NAME)
        static_root = work / "static"  # as collectstatic leaves it in the image
        static_root.mkdir()
        env = production_env(
            work=work,
            name="faults",
            DATABASE_URL=url_with(
                DATABASE_URL,
                address=database_proxy.address,
                path=f"/{database}",
                query=f"connect_timeout={CONNECT_TIMEOUT_SECONDS}",
            ),
            DATABASE_CONN_MAX_AGE="60",  # as in production: pooled connections must be cut
            REDIS_URL=url_with(REDIS_URL, address=redis_proxy.address, path=f"/{REDIS_DB}"),
            CACHE_KEY_PREFIX=f"faults-{database}",
            GITOPS_REMOTE_URL=git.url(REMOTE_NAME),
            GITOPS_REPO_PATH=str(work / "portal.git"),
            # Every write tries the remote here, so "the next change delivers them all" is
            # seen at once; the pause after a failed push is tested in clusters/test_delivery.
            GITOPS_REMOTE_RETRY_AFTER="0s",
            DJANGO_STATIC_ROOT=str(static_root),
        )
        portal = Portal(
            url="",
            env=env,
            database=database_proxy,
            redis=redis_proxy,
            git=git,
            remote=remote,
            log=work / "portal.log",
            direct_database_url=url_with(DATABASE_URL, path=f"/{database}"),
        )
        portal.manage("shell", "-c", _SETUP.format(clusters=CLUSTERS))
        portal.server = gunicorn_start(env=env, log=portal.log, workers=WORKERS)
        portal.url = portal.server.url
        try:
            portal.ready_wait(timeout=60)
            yield portal
        finally:
            portal.server.stop()


@pytest.fixture
def healthy(portal: Portal) -> Iterator[Portal]:
    """The portal with every dependency answering, before and after the test (whatever it broke)."""
    portal.ready_wait()
    yield portal
    portal.database.forward()
    portal.redis.forward()
    portal.git.answering = True
    portal.git.stall_seconds = 0
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
