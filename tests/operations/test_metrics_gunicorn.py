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
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.support.portal_process import GunicornServer, gunicorn_start, manage, production_env

TOKEN = "gunicorn-metrics-token-" + uuid.uuid4().hex
FAILED_LOGIN = ("portal_logins_total", frozenset({("method", "password"), ("result", "invalid_credentials")}))
BURST = 12


@dataclass
class Server:
    gunicorn: GunicornServer
    metrics_dir: Path

    @property
    def url(self) -> str:
        return self.gunicorn.url

    @property
    def process(self):
        return self.gunicorn.process

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


def _wait(condition, what: str, server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.gunicorn.alive_check()
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s\n{server.gunicorn.log_text()[-4000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    work = tmp_path_factory.mktemp("metrics-gunicorn")
    metrics_dir = work / "prometheus"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"left over by a previous run")  # on_starting clears it
    env = production_env(
        work=work, name="metrics-gunicorn", METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir)
    )
    # The migrations run without the multiprocess directory: their process is not the server's.
    manage(
        {key: value for key, value in env.items() if key != "PROMETHEUS_MULTIPROC_DIR"},
        "migrate",
        "--noinput",
    )
    running = Server(gunicorn_start(env=env, log=work / "gunicorn.log", threads=2), metrics_dir=metrics_dir)
    try:
        _wait(lambda: len(running.worker_pids()) == 2, "two workers with the app loaded", running, timeout=60)
        yield running
    finally:
        running.gunicorn.stop()


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
