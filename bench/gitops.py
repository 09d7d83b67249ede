"""Scaling one cluster: the portal's in-memory commit vs the git command line, by repository size.

Run: python bench/gitops.py [--runs 20] [--sizes 100,1000,10000]

For each size N, a repository with N cluster folders (clients/client-<i>/cluster-<j>/values.yaml,
100 clusters per client) is built in memory in one commit. Then the same change, one
cluster's replicas, is timed two ways:

- portal: read the values file, ``values_render``, ``files_commit`` on a bare repository;
- git CLI: a work tree with all N files checked out; edit the file, ``git add``, ``git commit``.

The two ways are timed in five alternating blocks: each block measures one way alone (after
``os.sync``, so no earlier writes are flushed during it), and alternating spreads a slow spell
of the disk or CPU over both. Prints the median latency of each and their ratio (after a few
untimed warm-up runs), the portal's 90th percentile and mean (the mean includes the
occasional merge of small packs), and how many packs the portal's repository holds at the end.
No Django needed. Both repositories live under the system temporary folder (``TMPDIR``):
creating a file costs a good share of a millisecond on a slow disk, on both sides.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gitops.repository import (  # noqa: E402 - after the path fix, to run from a checkout
    GitIdentity,
    GitopsRepository,
    branch_tip,
    file_read,
    files_commit,
    packs_list,
    repository_open,
)
from gitops.values import values_path, values_render  # noqa: E402

CLUSTERS_PER_CLIENT = 100
IDENTITY = GitIdentity(name="Bench", email="bench@example.com")
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Bench",
    "GIT_AUTHOR_EMAIL": "bench@example.com",
    "GIT_COMMITTER_NAME": "Bench",
    "GIT_COMMITTER_EMAIL": "bench@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}


def _slugs(index: int) -> tuple[str, str]:
    return f"client-{index // CLUSTERS_PER_CLIENT}", f"cluster-{index % CLUSTERS_PER_CLIENT}"


def _repository_build(path: Path, size: int) -> GitopsRepository:
    """N values files in one commit: trees are built in memory, no work tree."""
    repository = repository_open(path=path, branch="main", bootstrap_files={"README.md": b"bench\n"})
    files = {}
    for index in range(size):
        client, cluster = _slugs(index)
        files[values_path(client, cluster)] = values_render(
            existing=None, client=client, cluster=cluster, replicas=1, version="v1.15.5", storage_gi=10
        )
    files_commit(
        repository=repository,
        changes=files,
        author=IDENTITY,
        committer=IDENTITY,
        message=f"{size} clusters\n",
        expected_tip=branch_tip(repository=repository),
    )
    return repository


def _portal_scale(repository: GitopsRepository, client: str, cluster: str, replicas: int) -> None:
    file_path = values_path(client, cluster)
    tip = branch_tip(repository=repository)
    content = values_render(
        existing=file_read(repository=repository, file_path=file_path, commit=tip),
        client=client,
        cluster=cluster,
        replicas=replicas,
        version="v1.15.5",
        storage_gi=10,
    )
    commit = files_commit(
        repository=repository,
        changes={file_path: content},
        author=IDENTITY,
        committer=IDENTITY,
        message=f"{client}/{cluster}: replicas {replicas - 1} -> {replicas}\n",
        expected_tip=tip,
    )
    assert commit is not None


def _git(worktree: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(worktree), *args], check=True, capture_output=True, env=GIT_ENV)


def _cli_scale(worktree: Path, client: str, cluster: str, replicas: int) -> None:
    file_path = worktree / values_path(client, cluster)
    content = file_path.read_bytes()
    file_path.write_bytes(
        values_render(
            existing=content,
            client=client,
            cluster=cluster,
            replicas=replicas,
            version="v1.15.5",
            storage_gi=10,
        )
    )
    _git(worktree, "add", "--", values_path(client, cluster))
    _git(worktree, "commit", "-q", "-m", f"{client}/{cluster}: replicas {replicas - 1} -> {replicas}")


def _timed_ms(scale, replicas: int) -> float:
    started = time.perf_counter()
    scale(replicas)
    return (time.perf_counter() - started) * 1000


def _blocks_ms(portal, cli, runs: int, rounds: int = 5, warmup: int = 2) -> tuple[list[float], list[float]]:
    """``runs`` timings of each way, taken in ``rounds`` alternating blocks.

    Within a block one way runs alone, as it would in production (no other writer's disk
    traffic in flight: ``os.sync`` first); alternating the blocks spreads a slow spell of the
    machine over both ways. Each call gets a new replica count.
    """
    timings: dict[str, list[float]] = {"portal": [], "cli": []}
    per_block = max(1, runs // rounds)
    replicas = 2
    for round_number in range(rounds):
        order = (
            (("portal", portal), ("cli", cli))
            if round_number % 2 == 0
            else (("cli", cli), ("portal", portal))
        )
        for name, scale in order:
            os.sync()
            for _ in range(warmup):
                scale(replicas)
                replicas += 1
            for _ in range(per_block):
                timings[name].append(_timed_ms(scale, replicas))
                replicas += 1
    return timings["portal"], timings["cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--sizes", default="100,1000,10000")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",")]

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-gitops-") as scratch:
        for size in sizes:
            base = Path(tempfile.mkdtemp(dir=scratch, prefix=f"{size}-"))
            started = time.perf_counter()
            repository = _repository_build(base / "portal.git", size)
            build_s = time.perf_counter() - started
            worktree = base / "worktree"
            subprocess.run(
                ["git", "clone", "-q", str(repository.path), str(worktree)],
                check=True,
                capture_output=True,
                env=GIT_ENV,
            )
            client, cluster = _slugs(size // 2)
            portal_ms, cli_ms = _blocks_ms(
                partial(_portal_scale, repository, client, cluster),
                partial(_cli_scale, worktree, client, cluster),
                arguments.runs,
            )
            packs = len(packs_list(repository=repository))
            rows.append((size, portal_ms, cli_ms, build_s, packs))

    print(f"Scaling one cluster, {arguments.runs} runs of each way in alternating blocks")
    print(
        f"{'clusters':>9} | {'portal median':>13} | {'git CLI median':>14} | {'CLI / portal':>12} "
        f"| {'portal p90':>10} | {'portal mean':>11} | {'packs':>5} | {'build':>6}"
    )
    print("-+-".join("-" * width for width in (9, 13, 14, 12, 10, 11, 5, 6)))
    for size, portal_ms, cli_ms, build_s, packs in rows:
        portal_median, cli_median = statistics.median(portal_ms), statistics.median(cli_ms)
        p90 = statistics.quantiles(portal_ms, n=10)[-1]
        print(
            f"{size:>9,} | {portal_median:>10.2f} ms | {cli_median:>11.2f} ms | {cli_median / portal_median:>11.1f}x "
            f"| {p90:>7.2f} ms | {statistics.mean(portal_ms):>8.2f} ms | {packs:>5} | {build_s:>5.1f}s"
        )
    smallest, largest = statistics.median(rows[0][1]), statistics.median(rows[-1][1])
    print(f"portal median, largest / smallest repository: {largest / smallest:.2f}")


if __name__ == "__main__":
    main()
