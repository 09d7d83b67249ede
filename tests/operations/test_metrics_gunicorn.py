"""/metrics under gunicorn with two workers: prometheus-client's multiprocess mode, for real.

The portal runs as the container runs it (``deploy/gunicorn.conf.py``, DEBUG off) with
PROMETHEUS_MULTIPROC_DIR set. Whichever worker answers a scrape, it reports what every worker
counted; a worker that dies keeps its counts, and gunicorn's ``child_exit`` hook drops its
live gauges.
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

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "gunicorn-metrics-token-" + uuid.uuid4().hex
FAILED_LOGIN = ("portal_logins_total", frozenset({("method", "password"), ("result", "invalid_credentials")}))
BURST = 12


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    metrics_dir: Path
    log: Path

    def worker_pids(self) -> set[int]:
        """The live workers, as their live-gauge files name them."""
        return {int(path.stem.rsplit("_", 1)[1]) for path in self.metrics_dir.glob("gauge_livesum_*.db")}

    def counting_pids(self) -> set[int]:
        return {int(path.stem.rsplit("_", 1)[1]) for path in self.metrics_dir.glob("counter_*.db")}

    def scrape(self) -> dict[tuple[str, frozenset], float]:
        response = requests.get(
            f"{self.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        assert response.status_code == 200, response.text
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
        }


def _signing_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _wait(condition, what: str, server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise AssertionError(f"gunicorn exited:\n{server.log.read_text()[-4000:]}")
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s\n{server.log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("metrics-gunicorn")
    metrics_dir = work / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over by a previous run")  # on_starting clears it
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "JWT_", "GITOPS_", "PORTAL_", "FIELD_", "DATABASE_", "REDIS_"))
    }
    env.update(
        PORTAL_ENV_FILE="",
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="metrics-gunicorn-" + uuid.uuid4().hex,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",
        AUTH_COOKIE_SECURE="0",
        STATIC_MANIFEST="0",
        FIELD_ENCRYPTION_KEY="metrics-gunicorn-field-key",
        DATABASE_URL=f"sqlite:///{work / 'portal.sqlite3'}",
        PORTAL_VAR_DIR=str(work / "var"),
        GITOPS_REPO_PATH=str(work / "gitops.git"),
        JWT_PRIVATE_KEYS=_signing_key(),
        LOGIN_THROTTLE_IP="1000/min",
        LOGIN_THROTTLE_ACCOUNT="1000/min",
        METRICS_TOKEN=TOKEN,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        LOG_LEVEL="WARNING",
    )
    # The migrations run without the multiprocess directory: their process is not the server's.
    setup_env = {key: value for key, value in env.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"], cwd=PROJECT_ROOT, env=setup_env, check=True,
        capture_output=True, timeout=180,
    )  # fmt: skip
    port, log = free_port(), work / "gunicorn.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py",
         "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "2"],
        cwd=PROJECT_ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    running = Server(url=f"http://127.0.0.1:{port}", process=process, metrics_dir=metrics_dir, log=log)
    try:
        _wait(lambda: len(running.worker_pids()) == 2, "two workers with the app loaded", running, timeout=60)
        yield running
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)


def _failed_logins(server: Server, count: int) -> None:
    def one(index: int) -> int:
        body = {"email": f"nobody{index}@example.com", "password": base64.b64encode(b"wrong").decode()}
        return requests.post(f"{server.url}/api/auth/login", json=body, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=count) as pool:
        assert set(pool.map(one, range(count))) == {401}


def test_every_worker_counts_and_any_worker_reports_them_all(server):
    assert not (server.metrics_dir / "counter_999999.db").exists(), "a previous run's file was counted"
    sent = 0
    for _burst in range(8):  # concurrent requests, until both workers have served some
        _failed_logins(server, BURST)
        sent += BURST
        if server.counting_pids() >= server.worker_pids():
            break
    assert server.counting_pids() >= server.worker_pids() and len(server.worker_pids()) == 2

    scrapes = [server.scrape() for _ in range(6)]  # answered by either worker

    assert {scrape[FAILED_LOGIN] for scrape in scrapes} == {sent}
    route = frozenset({("route", "api/auth/login"), ("method", "POST"), ("status", "401")})
    assert {scrape[("portal_http_requests_total", route)] for scrape in scrapes} == {sent}
    assert all(scrape[("portal_http_requests_in_progress", frozenset())] == 1 for scrape in scrapes)
    assert all(("portal_gitops_outbox_pending_changes", frozenset()) in scrape for scrape in scrapes)


def test_a_dead_worker_keeps_its_counts_and_its_live_gauges_go(server):
    before = server.scrape()[FAILED_LOGIN]
    victim = min(server.worker_pids())
    os.kill(victim, signal.SIGKILL)

    _wait(lambda: victim not in server.worker_pids(), "child_exit marked the worker dead", server)
    _wait(lambda: len(server.worker_pids()) == 2, "gunicorn started a new worker", server)
    _failed_logins(server, 4)
    after = server.scrape()

    assert after[FAILED_LOGIN] == before + 4
    assert after[("portal_http_requests_in_progress", frozenset())] == 1
