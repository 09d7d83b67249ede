"""The real portal as its own process, run the way the container runs it (gunicorn, DEBUG off).

For the tests that need what a test client cannot give: several workers or replicas, a
dependency cut under a running server, prometheus-client's multiprocess mode. Shared by the
fault suite, the multi-replica test and the operations tests under gunicorn.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.helpers import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
# The test run's own settings (tests/environment.py and the caller's shell) must not leak into
# the server: it gets exactly what production_env() and the caller give it.
_SETTINGS_PREFIXES = ("DJANGO_", "JWT_", "GITOPS_", "PORTAL_", "FIELD_", "DATABASE_", "REDIS_", "CACHE_")


def postgres_and_redis_missing() -> str | None:
    """Why a test that needs the PostgreSQL + Redis run cannot run here, or None."""
    if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
        return "DATABASE_URL does not point at PostgreSQL"
    if not REDIS_URL:
        return "REDIS_URL is not set"
    return None


def postgres_and_redis_require(*, what: str, required_by: str) -> None:
    """Skip ``what`` where PostgreSQL or Redis is missing; fail instead when ``required_by`` is 1 (CI)."""
    missing = postgres_and_redis_missing()
    if missing:
        message = f"{what} needs PostgreSQL and Redis: {missing}"
        if os.environ.get(required_by) == "1":
            pytest.fail(message)
        pytest.skip(message)


def url_with(url: str, *, address: str | None = None, path: str | None = None, query: str = "") -> str:
    """``url`` with another host:port (a proxy's, keeping the credentials), path and query."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if address is not None:
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@{address}" if credentials else address
    return urlunsplit(parts._replace(netloc=netloc, path=parts.path if path is None else path, query=query))


def signing_key_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def production_env(*, work: Path, name: str, **overrides: str) -> dict[str, str]:
    """A production-like environment (DEBUG off, fresh secrets) with its state under ``work``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_SETTINGS_PREFIXES)}
    env.update(
        PORTAL_ENV_FILE="",  # no developer's .env
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=f"{name}-secret-{uuid.uuid4().hex}",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",  # plain HTTP on loopback
        AUTH_COOKIE_SECURE="0",
        STATIC_MANIFEST="0",
        FIELD_ENCRYPTION_KEY=f"{name}-field-key",
        JWT_PRIVATE_KEYS=signing_key_pem(),
        DATABASE_URL=f"sqlite:///{work / 'portal.sqlite3'}",
        PORTAL_VAR_DIR=str(work / "var"),
        GITOPS_REPO_PATH=str(work / "gitops.git"),
        LOGIN_THROTTLE_IP="1000/min",
        LOGIN_THROTTLE_ACCOUNT="1000/min",
        MFA_REQUIRED_FOR_STAFF="0",  # operators sign in with a password alone in these tests
        LOG_LEVEL="WARNING",
    )
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    """``python manage.py <args>`` with ``env``; its output, or the test fails with it."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A new database on DATABASE_URL's server, dropped afterwards (connections and all)."""
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    # The server's maintenance database: the one DATABASE_URL names need not exist.
    admin_url = url_with(DATABASE_URL, path="/postgres")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class GunicornServer:
    """A running gunicorn (master and workers in their own process group) and its log."""

    url: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive_check(self) -> None:
        if self.process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{self.log_text()[-4000:]}")

    def ready_wait(self, timeout: float = 60) -> None:
        """Until /readyz answers 200: booting, or its dependencies answering again."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.alive_check()
            try:
                if requests.get(f"{self.url}/readyz", timeout=10).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):  # booting, on a loaded machine
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.url} never became ready:\n{self.log_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the whole process group, as when a pod dies; SIGKILL if it does not stop."""
        if self.process.poll() is not None:
            return
        os.killpg(self.process.pid, sig)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=5)


def gunicorn_start(*, env: dict[str, str], log: Path, workers: int = 2, threads: int = 4) -> GunicornServer:
    """The portal under ``deploy/gunicorn.conf.py`` on a free loopback port (not waited for)."""
    port = free_port()
    with log.open("w") as output:  # the server writes to its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py",
             "--bind", f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads)],
            cwd=PROJECT_ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return GunicornServer(url=f"http://127.0.0.1:{port}", process=process, log=log)
