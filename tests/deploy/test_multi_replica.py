"""Two portal replicas (gunicorn) sharing PostgreSQL, Redis and a bare git remote.

This is how the portal runs in production (deploy/k8s: two pods, each with its own git
clone). It needs PostgreSQL and Redis, so it runs when DATABASE_URL points at PostgreSQL
and REDIS_URL is set (the second run of .ci/run); PORTAL_MULTI_REPLICA=1 makes a missing
server a failure instead of a skip.
"""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml

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

CLUSTERS = [f"c{index}" for index in range(10)]
PASSWORD = "client1"

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def requirements():
    postgres_and_redis_require(what="the multi-replica test", required_by="PORTAL_MULTI_REPLICA")


@dataclass
class Deployment:
    replicas: list[GunicornServer]
    remote: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def deployment(requirements, tmp_path_factory) -> Iterator[Deployment]:
    work = tmp_path_factory.mktemp("multi-replica")
    remote = work / "remote.git"
    subprocess.run(["git", "init", "--bare", "-q", "-b", "main", str(remote)], check=True)
    with postgres_database("portal_multi") as database:
        env = production_env(
            work=work,
            name="multi-replica",
            DATABASE_URL=url_with(DATABASE_URL, path=f"/{database}"),
            REDIS_URL=url_with(REDIS_URL, path="/5"),
            CACHE_KEY_PREFIX=f"multi-{database}",
            JWT_REFRESH_REUSE_GRACE="2s",
            GITOPS_REMOTE_URL=str(remote),
            GITOPS_REPO_PATH=str(work / "setup.git"),
        )
        deployment = Deployment(replicas=[], remote=remote, env=env)
        try:  # also when the set-up fails half-way: no replica outlives the run
            manage(env, "migrate", "--noinput")
            manage(env, "seed_demo", "--force")
            manage(
                env,
                "shell",
                "-c",
                "from clusters.models import Client; from clusters.services import cluster_create\n"
                "client = Client.objects.get(slug='client1')\n"
                + "".join(f"cluster_create(client=client, slug='{slug}', actor=None)\n" for slug in CLUSTERS),
            )
            manage(env, "gitops_sync")
            for name in ("a", "b"):  # each replica has its own clone, as each pod does
                replica_env = {**env, "GITOPS_REPO_PATH": str(work / f"replica-{name}.git")}
                replica = gunicorn_start(env=replica_env, log=work / f"replica-{name}.log")
                deployment.replicas.append(replica)
                replica.ready_wait()
            yield deployment
        finally:
            for replica in deployment.replicas:
                replica.stop()


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


def _answers_by_worker(replica: GunicornServer, path: str, token: str, tag: str) -> dict[str, set[int]]:
    """The statuses each worker (pid) gave to bursts of 40 requests at once, each on its own
    connection, sent until both workers have answered some (a worker off the CPU during one
    burst can leave the other to take all of it)."""
    statuses: dict[str, set[int]] = {}
    for burst in range(8):
        burst_tag = f"{tag}-{burst}"

        def one(index: int, burst_tag: str = burst_tag) -> None:
            headers = {**_bearer(token), "X-Request-ID": f"{burst_tag}-{index}"}
            requests.get(f"{replica.url}{path}", headers=headers, timeout=10)

        with ThreadPoolExecutor(max_workers=20) as pool:
            list(pool.map(one, range(40)))
        for line in _access_lines(replica, burst_tag, count=40):
            message = json.loads(line)["message"]
            pid = message.rpartition("pid=")[2]
            statuses.setdefault(pid, set()).add(int(message.split('" ')[1].split()[0]))
        if len(statuses) >= 2:
            break
    return statuses


def _access_lines(replica: GunicornServer, tag: str, *, count: int, timeout: float = 10.0) -> list[str]:
    """The access log lines of the requests tagged ``tag``, once all ``count`` are written (each
    after its response) or ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [
            line
            for line in replica.log_text().splitlines()
            if f'"request_id": "{tag}-' in line and '"gunicorn.access"' in line
        ]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.05)


def test_after_a_revocation_the_very_next_request_on_every_worker_is_refused(deployment):
    """No worker keeps a copy of a session's state that could outlive its revocation."""
    keeper, doomed = _login(deployment.replicas[0].url), _login(deployment.replicas[1].url)
    paths = ("/api/auth/me", "/api/auth/validate")
    for replica in deployment.replicas:
        for path in paths:
            served = _answers_by_worker(replica, path, doomed["accessToken"], f"warm-{uuid.uuid4().hex}")
            assert len(served) == 2 and all(statuses == {200} for statuses in served.values()), served

    sessions = requests.get(
        f"{deployment.replicas[0].url}/api/auth/sessions", headers=_bearer(doomed["accessToken"]), timeout=10
    )
    doomed_id = next(session["id"] for session in sessions.json() if session["current"])
    revoke = requests.delete(
        f"{deployment.replicas[0].url}/api/auth/sessions/{doomed_id}",
        headers=_bearer(keeper["accessToken"]),
        timeout=10,
    )
    assert revoke.status_code == 204

    for replica in deployment.replicas:
        for path in paths:
            served = _answers_by_worker(replica, path, doomed["accessToken"], f"revoked-{uuid.uuid4().hex}")
            assert len(served) == 2 and all(statuses == {403} for statuses in served.values()), served


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
        assert me.status_code == 403, replica.url
        refresh = requests.post(f"{replica.url}/api/auth/refresh", headers=_bearer(successor), timeout=10)
        assert refresh.status_code == 403, replica.url


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
