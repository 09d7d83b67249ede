"""Two portal replicas (gunicorn) sharing PostgreSQL, Redis and a bare git remote.

This is how the portal runs in production (deploy/k8s: two pods, each with its own git
clone). It needs PostgreSQL and Redis, so it runs when DATABASE_URL points at PostgreSQL
and REDIS_URL is set (the second run of .ci/run); PORTAL_MULTI_REPLICA=1 makes a missing
server a failure instead of a skip.
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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.helpers import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL = os.environ.get("DATABASE_URL", "")
REDIS_URL = os.environ.get("REDIS_URL", "")
CLUSTERS = [f"c{index}" for index in range(10)]
PASSWORD = "client1"

pytestmark = pytest.mark.postgres


def _requirements_met() -> str | None:
    if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
        return "DATABASE_URL does not point at PostgreSQL"
    if not REDIS_URL:
        return "REDIS_URL is not set"
    return None


@pytest.fixture(scope="module")
def requirements():
    missing = _requirements_met()
    if missing:
        message = f"the multi-replica test needs PostgreSQL and Redis: {missing}"
        if os.environ.get("PORTAL_MULTI_REPLICA") == "1":
            pytest.fail(message)
        pytest.skip(message)


def _database_url_named(name: str) -> str:
    parts = urlsplit(DATABASE_URL)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _redis_url_db(number: int) -> str:
    parts = urlsplit(REDIS_URL)
    return urlunsplit(parts._replace(path=f"/{number}"))


@dataclass
class Replica:
    name: str
    url: str
    process: subprocess.Popen

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Signal the whole process group (master and workers), as when a pod dies."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


@dataclass
class Deployment:
    replicas: list[Replica]
    remote: Path
    env: dict[str, str]

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout


def _wait_ready(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"server exited early:\n{log.read_text()[-4000:]}")
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):  # still booting (a loaded machine)
            pass
        time.sleep(0.3)
    raise AssertionError(f"server at {url} never became ready:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def deployment(requirements, tmp_path_factory, request) -> Iterator[Deployment]:
    import psycopg

    work = tmp_path_factory.mktemp("multi-replica")
    database = f"portal_multi_{uuid.uuid4().hex[:10]}"
    # The server's maintenance database: the one DATABASE_URL names need not exist.
    admin_url = _database_url_named("postgres")
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    remote = work / "remote.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(remote)], check=True)

    base_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "JWT_", "GITOPS_", "PORTAL_", "FIELD_"))
    }
    base_env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="multi-replica-test-secret-" + uuid.uuid4().hex,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",
        AUTH_COOKIE_SECURE="0",
        STATIC_MANIFEST="0",
        FIELD_ENCRYPTION_KEY="multi-replica-field-key",
        DATABASE_URL=_database_url_named(database),
        REDIS_URL=_redis_url_db(5),
        CACHE_KEY_PREFIX=f"multi-{database}",
        JWT_PRIVATE_KEYS=pem,
        JWT_REFRESH_REUSE_GRACE="2s",
        LOGIN_THROTTLE_IP="1000/min",
        LOGIN_THROTTLE_ACCOUNT="1000/min",
        GITOPS_REMOTE_URL=str(remote),
        GITOPS_REPO_PATH=str(work / "setup.git"),
        PORTAL_VAR_DIR=str(work / "var"),
        LOG_LEVEL="WARNING",
    )
    deployment = Deployment(replicas=[], remote=remote, env=base_env)

    def clean_up() -> None:
        """Also when the set-up fails half-way: no replica or database outlives the run."""
        for replica in deployment.replicas:
            replica.stop()
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    request.addfinalizer(clean_up)
    deployment.manage("migrate", "--noinput")
    deployment.manage("seed_demo", "--force")
    deployment.manage(
        "shell",
        "-c",
        "from clusters.models import Client; from clusters.services import cluster_create\n"
        "client = Client.objects.get(slug='client1')\n"
        + "".join(f"cluster_create(client=client, slug='{slug}', actor=None)\n" for slug in CLUSTERS),
    )
    deployment.manage("gitops_sync")

    for name in ("a", "b"):
        port = free_port()
        log = work / f"replica-{name}.log"
        env = {**base_env, "GITOPS_REPO_PATH": str(work / f"replica-{name}.git")}
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "deploy/gunicorn.conf.py",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                "2",
                "--threads",
                "4",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log.open("w"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        replica = Replica(name=name, url=f"http://127.0.0.1:{port}", process=process)
        deployment.replicas.append(replica)
        _wait_ready(replica.url, process, log)

    yield deployment


def _login(url: str, email: str = "client1@example.com", password: str = PASSWORD) -> dict:
    response = requests.post(
        f"{url}/api/auth/login",
        json={
            "email": email,
            "password": base64.b64encode(password.encode()).decode(),
            "tokenDelivery": "body",
        },
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return response.json()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_session_started_on_one_replica_works_on_the_other(deployment):
    a, b = deployment.replicas
    tokens = _login(a.url)
    me = requests.get(f"{b.url}/api/auth/me", headers=_bearer(tokens["accessToken"]), timeout=10)
    assert me.status_code == 200
    assert me.json()["email"] == "client1@example.com"


def test_revoking_on_one_replica_is_refused_on_the_other_at_once(deployment):
    a, b = deployment.replicas
    keeper = _login(a.url)
    doomed = _login(a.url)
    sessions = requests.get(f"{b.url}/api/auth/sessions", headers=_bearer(doomed["accessToken"]), timeout=10)
    doomed_id = next(s["id"] for s in sessions.json() if s["current"])

    revoke = requests.delete(
        f"{a.url}/api/auth/sessions/{doomed_id}", headers=_bearer(keeper["accessToken"]), timeout=10
    )
    assert revoke.status_code == 204

    refused = requests.get(f"{b.url}/api/auth/me", headers=_bearer(doomed["accessToken"]), timeout=10)
    assert refused.status_code == 403
    assert refused.json()["code"] == "token_not_valid"
    still_fine = requests.get(f"{b.url}/api/auth/me", headers=_bearer(keeper["accessToken"]), timeout=10)
    assert still_fine.status_code == 200


def test_refresh_rotation_and_reuse_detection_hold_across_replicas(deployment):
    a, b = deployment.replicas
    tokens = _login(a.url)
    first_refresh = tokens["refreshToken"]

    rotated = requests.post(f"{b.url}/api/auth/refresh", headers=_bearer(first_refresh), timeout=10)
    assert rotated.status_code == 200
    successor = rotated.json()["refreshToken"]
    assert successor != first_refresh

    # Within the grace (2 s here) the other replica answers with the same successor: two tabs.
    again = requests.post(f"{a.url}/api/auth/refresh", headers=_bearer(first_refresh), timeout=10)
    assert again.status_code == 200
    assert again.json()["refreshToken"] == successor

    time.sleep(2.5)
    reused = requests.post(f"{a.url}/api/auth/refresh", headers=_bearer(first_refresh), timeout=10)
    assert reused.status_code == 403
    assert reused.json()["code"] == "refresh_token_reused"
    for replica in (a, b):
        me = requests.get(
            f"{replica.url}/api/auth/me", headers=_bearer(rotated.json()["accessToken"]), timeout=10
        )
        assert me.status_code == 403, replica.name
        refresh = requests.post(f"{replica.url}/api/auth/refresh", headers=_bearer(successor), timeout=10)
        assert refresh.status_code == 403, replica.name


def test_concurrent_scaling_over_both_replicas_loses_nothing(deployment):
    a, b = deployment.replicas
    token = _login(a.url)["accessToken"]
    jobs = [
        (deployment.replicas[index % 2], CLUSTERS[index % len(CLUSTERS)], 1 + (index * 7) % 10)
        for index in range(50)
    ]

    def scale(job):
        replica, cluster, replicas = job
        response = requests.patch(
            f"{replica.url}/api/clients/client1/clusters/{cluster}",
            json={"replicas": replicas},
            headers=_bearer(token),
            timeout=60,
        )
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(scale, jobs))
    assert {status for status, _ in results} <= {200}, results

    # Every recorded change is a commit on the remote branch, and every values file equals the database.
    import pygit2

    remote = pygit2.Repository(str(deployment.remote))
    tip = remote.branches.local["main"].target
    on_remote = {str(commit.id) for commit in remote.walk(tip)}
    for cluster in CLUSTERS:
        detail = requests.get(
            f"{b.url}/api/clients/client1/clusters/{cluster}", headers=_bearer(token), timeout=10
        ).json()
        history = requests.get(
            f"{a.url}/api/clients/client1/clusters/{cluster}/history", headers=_bearer(token), timeout=10
        ).json()
        for change in history:
            assert change["commit"] in on_remote, (cluster, change)
        assert detail["revision"]["pushed"] is True
        blob = remote.revparse_single(f"main:clients/client1/{cluster}/values.yaml")
        values = yaml.safe_load(blob.data)
        assert values["replicaCount"] == detail["replicas"], cluster


def test_the_other_replica_keeps_serving_when_one_is_killed_mid_load(deployment):
    a, b = deployment.replicas
    token = _login(a.url)["accessToken"]  # a session started on the replica that will die

    def hit(index: int) -> int:
        if index == 20:
            a.stop(signal.SIGKILL)
        response = requests.get(f"{b.url}/api/auth/me", headers=_bearer(token), timeout=10)
        return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(hit, range(100)))
    assert a.process.poll() is not None
    assert statuses == [200] * 100
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{a.url}/healthz", timeout=2)
