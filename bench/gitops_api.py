"""Part 3 of bench/gitops.py: 50 concurrent PATCHes through the real API, to a slow git remote.

The portal runs under gunicorn (2 workers x 25 threads, so all 50 requests are in flight at
once) with its GitOps remote served over HTTP by ``git http-backend`` whose pre-receive hook
sleeps 100 ms. Ten users each scale their own cluster five times at once. Every request must be
answered 200 with its own commit, every commit must be on the remote authored by the user who
asked, and the total must stay within two pushes and fifty local commits, where "one local
commit" is one PATCH alone minus one push alone (everything a request does but the push).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import pygit2

from bench.portal_server import bearer_sign_in, django_run, gunicorn, manage, server_env
from gitops.delivery import commits_deliver
from gitops.remote import RemoteConfig, remote_push
from gitops.repository import GitIdentity, branch_tip, files_commit, repository_open
from tests.support.git_http import GitHttpServer, GitHttpServerProcess

USERS = 10
REQUESTS = 50
PUSH_DELAY_MS = 100
PASSWORD = "bench password 123"  # noqa: S105 - a throwaway account of the benchmark
SETUP = f"""
from accounts.models import User
from clusters.services import client_create, cluster_create, grant_set
client = client_create(slug="bench", name="Bench")
for i in range({USERS}):
    cluster_create(client=client, slug=f"c{{i}}", actor=None)
    user = User.objects.create_user(email=f"user{{i}}@example.com", password={PASSWORD!r}, name=f"User {{i}}")
    grant_set(user=user, client=client, role="operator")
"""


def _patch(port: int, token: str, cluster: str, replicas: int) -> tuple[int, str | None, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    started = time.perf_counter()
    connection.request(
        "PATCH",
        f"/api/clients/bench/clusters/{cluster}",
        # Concurrent requests to one cluster land in any order: some are scale-downs, confirmed.
        json.dumps({"replicas": replicas, "confirm": True}),
        {"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    body = json.loads(response.read() or b"{}")
    elapsed = time.perf_counter() - started
    return response.status, (body.get("revision") or {}).get("commit"), elapsed


def _push_alone_ms(server: GitHttpServer, scratch: Path) -> float:
    """One push of one small commit to a remote with the same delay, measured alone."""
    server.repository_create("probe.git", push_delay_ms=PUSH_DELAY_MS)
    repository = repository_open(path=scratch / "probe-local.git", branch="main", bootstrap_files={"a": b"0"})
    remote = RemoteConfig(url=server.url("probe.git"))
    commits_deliver(
        repository=repository, pending=[], committer=GitIdentity("b", "b@example.com"), remote=remote
    )
    times = []
    for number in range(5):
        identity = GitIdentity("b", "b@example.com")
        files_commit(
            repository=repository,
            changes={"a": str(number + 1).encode()},
            author=identity,
            committer=identity,
            message="probe\n",
            expected_tip=branch_tip(repository=repository),
        )
        started = time.perf_counter()
        remote_push(repository=repository, remote=remote)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _concurrent_patches(port: int, tokens: list[str]) -> tuple[float, list[tuple[int, str | None, float]]]:
    answers: list[tuple[int, str | None, float]] = [(0, None, 0.0)] * REQUESTS
    started: list[float] = []
    ready = threading.Barrier(REQUESTS, action=lambda: started.append(time.perf_counter()))

    def run(number: int) -> None:
        ready.wait()
        answers[number] = _patch(port, tokens[number % USERS], f"c{number % USERS}", 10 + number)

    workers = [threading.Thread(target=run, args=(number,)) for number in range(REQUESTS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started[0], answers


def _remote_history(served: Path) -> dict[str, tuple[str, str]]:
    repository = pygit2.Repository(str(served))
    tip = repository.references["refs/heads/main"].target
    return {str(commit.id): (commit.author.email, commit.message) for commit in repository.walk(tip)}


def _all_on_remote(served: Path, answers: list[tuple[int, str | None, float]]) -> bool:
    history = _remote_history(served)
    for number, (status, commit, _) in enumerate(answers):
        author, message = history.get(commit or "", ("", ""))
        expected = f"bench/c{number % USERS}: replicas "
        if status != 200 or author != f"user{number % USERS}@example.com" or expected not in message:
            return False
        if (
            not message.splitlines()[0]
            .removesuffix(" (scale up)")
            .removesuffix(" (scale down)")
            .endswith(f"-> {10 + number}")
        ):
            return False
    return True


def part_three(arguments: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-gitops-api-") as scratch_name:
        scratch = Path(scratch_name)
        with GitHttpServerProcess(scratch / "served") as server:
            served = server.repository_create("portal.git")
            server.pre_receive_hook_install(
                "portal.git", f"sleep {PUSH_DELAY_MS / 1000:.3f}\necho push >> {scratch / 'pushes'}"
            )
            push_ms = _push_alone_ms(server, scratch)
            env = server_env(scratch, GITOPS_REMOTE_URL=server.url("portal.git"), REPLICAS_MAX="100")
            manage(env, "migrate", "--noinput")
            django_run(env, SETUP)
            with gunicorn(env, workers=2, threads=REQUESTS // 2) as port:
                tokens = [bearer_sign_in(port, f"user{i}@example.com", PASSWORD) for i in range(USERS)]
                singles = [_patch(port, tokens[0], "c0", 90 + i)[2] * 1000 for i in range(5)]
                (scratch / "pushes").unlink(missing_ok=True)
                total_s, answers = _concurrent_patches(port, tokens)
            pushes = len((scratch / "pushes").read_text().splitlines())
            delivered = _all_on_remote(served, answers)
    _report(push_ms, statistics.median(singles), total_s, pushes, delivered, answers)


def _report(push_ms, patch_ms, total_s, pushes, delivered, answers) -> None:
    local_ms = max(patch_ms - push_ms, 0.0)
    target_ms = 2 * push_ms + REQUESTS * local_ms
    total_ms = total_s * 1000
    slowest = max(elapsed for _, _, elapsed in answers) * 1000
    statuses = sorted({status for status, _, _ in answers})
    print(f"Part 3: {REQUESTS} concurrent PATCHes through the API (gunicorn 2 x {REQUESTS // 2} threads), "
          f"{USERS} users on {USERS} clusters, remote over HTTP with a {PUSH_DELAY_MS} ms pre-receive hook")  # fmt: skip
    print(
        f"alone: one push {push_ms:.0f} ms | one PATCH {patch_ms:.0f} ms | one local commit (PATCH - push) {local_ms:.1f} ms"
    )
    print(f"together: total {total_ms:.0f} ms | slowest answer {slowest:.0f} ms | pushes {pushes} | "
          f"statuses {statuses} | each commit on the remote by its own author: {'yes' if delivered else 'NO'}")  # fmt: skip
    passed = delivered and total_ms <= target_ms
    print(f"target: total <= 2 x one push + {REQUESTS} x one local commit = {target_ms:.0f} ms: "
          f"{total_ms:.0f} ms {'PASS' if passed else 'FAIL'}")  # fmt: skip
