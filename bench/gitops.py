"""GitOps benchmarks: one change by repository size, and group commit under concurrent requests.

Run: python bench/gitops.py [--part 1|2] [--runs 50] [--sizes 100,1000,10000] [--threads 50]

Part 1, one change. For each size N, a repository with N cluster folders
(clients/client-<i>/cluster-<j>/values.yaml, 100 clusters per client) is built in memory in
one commit and packed, as housekeeping leaves it. Then the same change, one cluster's
replicas, is timed two ways:

- portal: read the values file, ``values_render``, ``files_commit`` on a bare repository;
- git CLI: a work tree with all N files checked out; edit the file, ``git add``, ``git commit``.

The two ways are timed in five alternating blocks: each block measures one way alone (after
``os.sync``, so no earlier writes are flushed during it), and alternating spreads a slow spell
of the disk or CPU over both. Prints the median latency of each and their ratio (after a few
untimed warm-up runs), and how long ``repository_compact`` takes afterwards (housekeeping).

Part 2, group commit. ``--threads`` threads each want one change (over 10 clusters) delivered
to a remote served over HTTP by ``git http-backend`` (tests/support/git_http.py), whose
pre-receive hook sleeps 100 ms: a git host that answers each push late. Each thread follows
the portal's request path: append its change to the outbox (a list under a lock); take the
branch lock and, unless its change was committed meanwhile, commit every change not committed
yet (``commits_make``); take the push lock and, unless a push carried its change meanwhile,
push the branch (``branch_deliver``); then answer with its own commit id. So the next group is
committed while this one is pushed. With group commit OFF each thread commits and pushes only
its own change under both locks (one push each). Afterwards the remote's history is read with
pygit2: every change must be there, as its own commit by its own author. One local commit,
one fetch and one push are first timed alone on the repository and remote of the ON run.

No Django needed. Repositories live under the system temporary folder (``TMPDIR``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import pygit2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# After the path fix, to run from a checkout.
from bench.gitops_api import part_three  # noqa: E402
from gitops.delivery import (  # noqa: E402
    GroupDelivery,
    PendingCommit,
    branch_deliver,
    commits_deliver,
    commits_make,
)
from gitops.remote import RemoteConfig, commit_is_ancestor, remote_fetch, remote_push  # noqa: E402
from gitops.repository import (  # noqa: E402
    GitIdentity,
    GitopsRepository,
    branch_tip,
    branch_update,
    file_read,
    files_commit,
    repository_compact,
    repository_open,
)
from gitops.trees import TreeReader  # noqa: E402
from gitops.values import values_path, values_render  # noqa: E402
from tests.support.git_http import GitHttpServer, GitHttpServerProcess  # noqa: E402

CLUSTERS_PER_CLIENT = 100
VERSION = "v1.15.5"
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
FLAT_LIMIT = 1.5  # portal median, largest / smallest repository
CLI_SPEEDUP_TARGET = 3.0  # git CLI median / portal median at 1,000 clusters
GROUP_CLUSTERS = 10
PUSH_DELAY_MS = 100


def _verdict(passed: bool) -> str:
    return "PASS" if passed else "FAIL"


def _slugs(index: int) -> tuple[str, str]:
    return f"client-{index // CLUSTERS_PER_CLIENT}", f"cluster-{index % CLUSTERS_PER_CLIENT}"


def _values_files(size: int) -> dict[str, bytes]:
    files = {}
    for index in range(size):
        client, cluster = _slugs(index)
        files[values_path(client, cluster)] = values_render(
            existing=None, client=client, cluster=cluster, replicas=1, version=VERSION, storage_gi=10
        )
    return files


def _scale_render(client: str, cluster: str, replicas: int, reader: TreeReader) -> dict[str, bytes | None]:
    """The portal's render of one scaling: the values file with the new replica count."""
    file_path = values_path(client, cluster)
    return {
        file_path: values_render(
            existing=reader.read(file_path),
            client=client,
            cluster=cluster,
            replicas=replicas,
            version=VERSION,
            storage_gi=10,
        )
    }


# --- Part 1: one change, by repository size ------------------------------------------------


def _repository_build(base: Path, size: int) -> GitopsRepository:
    """A repository of N values files in one commit, packed: what housekeeping leaves behind.

    The commit is built in memory in a scratch repository and packed into the measured one
    with pygit2: written straight into the measured repository, its 2N loose objects would be
    created and then deleted by compaction in the very folders the timed commits write to,
    and on ext4 that debris alone doubled the portal's latency at 10,000 clusters. A real
    repository grows a few objects per change between compactions.
    """
    scratch = repository_open(
        path=base / "scratch.git", branch="main", bootstrap_files={"README.md": b"bench\n"}
    )
    files_commit(
        repository=scratch,
        changes=_values_files(size),
        author=IDENTITY,
        committer=IDENTITY,
        message=f"{size} clusters\n",
        expected_tip=branch_tip(repository=scratch),
    )
    repository = repository_open(path=base / "portal.git", branch="main", bootstrap_files={})
    pygit2.Repository(str(scratch.path)).pack(path=repository.path / "objects" / "pack")
    branch_update(repository=repository, expected_tip=None, new_tip=branch_tip(repository=scratch))
    return repository


def _portal_scale(repository: GitopsRepository, client: str, cluster: str, replicas: int) -> None:
    file_path = values_path(client, cluster)
    tip = branch_tip(repository=repository)
    content = values_render(
        existing=file_read(repository=repository, file_path=file_path, commit=tip),
        client=client,
        cluster=cluster,
        replicas=replicas,
        version=VERSION,
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
            version=VERSION,
            storage_gi=10,
        )
    )
    _git(worktree, "add", "--", values_path(client, cluster))
    _git(worktree, "commit", "-q", "-m", f"{client}/{cluster}: replicas {replicas - 1} -> {replicas}")


def _timed_ms(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
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
        order = [("portal", portal), ("cli", cli)]
        for name, scale in order if round_number % 2 == 0 else order[::-1]:
            os.sync()
            for _ in range(warmup):
                scale(replicas)
                replicas += 1
            for _ in range(per_block):
                timings[name].append(_timed_ms(partial(scale, replicas)))
                replicas += 1
    return timings["portal"], timings["cli"]


@dataclass(frozen=True)
class SizeRow:
    size: int
    portal_ms: list[float]
    cli_ms: list[float]
    build_s: float
    compact_ms: float
    packed: int


def _size_measure(scratch: str, size: int, runs: int) -> SizeRow:
    base = Path(tempfile.mkdtemp(dir=scratch, prefix=f"{size}-"))
    started = time.perf_counter()
    repository = _repository_build(base, size)
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
        runs,
    )
    started = time.perf_counter()
    packed = repository_compact(repository=repository)
    compact_ms = (time.perf_counter() - started) * 1000
    return SizeRow(size, portal_ms, cli_ms, build_s, compact_ms, packed)


def _part_one_report(rows: list[SizeRow], runs: int) -> None:
    print(f"Part 1: scaling one cluster, {runs} runs of each way in alternating blocks (median)")
    print(
        f"{'clusters':>9} | {'portal':>9} | {'git CLI':>9} | {'CLI / portal':>12} | {'build':>6} "
        f"| {'compact (objects)':>21}"
    )
    print("-+-".join("-" * width for width in (9, 9, 9, 12, 6, 21)))
    for row in rows:
        portal, cli = statistics.median(row.portal_ms), statistics.median(row.cli_ms)
        print(
            f"{row.size:>9,} | {portal:>6.2f} ms | {cli:>6.2f} ms | {cli / portal:>11.1f}x "
            f"| {row.build_s:>5.1f}s | {row.compact_ms:>7.0f} ms ({row.packed:>7,})"
        )
    medians = [statistics.median(row.portal_ms) for row in rows]
    flatness = max(medians) / min(medians)
    print(
        f"portal median, largest / smallest: {flatness:.2f}  "
        f"target <= {FLAT_LIMIT}: {_verdict(flatness <= FLAT_LIMIT)}"
    )
    at_thousand = [row for row in rows if row.size == 1000]
    if at_thousand:
        speedup = statistics.median(at_thousand[0].cli_ms) / statistics.median(at_thousand[0].portal_ms)
        print(
            f"git CLI / portal at 1,000 clusters: {speedup:.1f}x  target >= {CLI_SPEEDUP_TARGET:.0f}x: "
            f"{_verdict(speedup >= CLI_SPEEDUP_TARGET)}"
        )


def part_one(arguments: argparse.Namespace) -> None:
    sizes = [int(size) for size in arguments.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="bench-gitops-") as scratch:
        rows = [_size_measure(scratch, size, arguments.runs) for size in sizes]
    _part_one_report(rows, arguments.runs)


# --- Part 2: group commit under concurrent requests ----------------------------------------


def _change(number: int) -> PendingCommit:
    """Request ``number``'s change: one of the 10 clusters to a replica count nobody else asks for."""
    client, cluster = _slugs(number % GROUP_CLUSTERS)
    replicas = number + 2
    return PendingCommit(
        key=number,
        render=partial(_scale_render, client, cluster, replicas),
        author=GitIdentity(name=f"User {number}", email=f"user{number}@example.com"),
        message=f"{client}/{cluster}: replicas -> {replicas}\n",
    )


@dataclass
class Outbox:
    """The database's outbox, as the portal's requests share it: pending changes, their commits,
    and which of them the remote has."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    pending: list[PendingCommit] = field(default_factory=list)
    commits: dict[int, str | None] = field(default_factory=dict)
    pushed: set[int] = field(default_factory=set)

    def committed(self, delivery: GroupDelivery) -> None:
        """A delivery's commits: pending changes remember theirs until a push carries them."""
        outcomes = {outcome.key: outcome for outcome in delivery.outcomes}
        self.commits.update({key: outcome.commit for key, outcome in outcomes.items()})
        self.pending = [
            replace(item, committed=outcomes[item.key].commit) if item.key in outcomes else item
            for item in self.pending
        ]
        if delivery.pushed:
            self.carried(outcomes)

    def carried(self, keys: object) -> None:
        """These changes are on the remote: they leave the outbox."""
        self.pushed.update(keys)
        self.pending = [item for item in self.pending if item.key not in self.pushed]


@dataclass(frozen=True)
class Locks:
    branch: threading.Lock = field(default_factory=threading.Lock)
    push: threading.Lock = field(default_factory=threading.Lock)


@dataclass(frozen=True)
class Scenario:
    repository: GitopsRepository
    remote: RemoteConfig
    served: Path
    pushes_log: Path


def _scenario(server: GitHttpServer, scratch: Path, name: str) -> Scenario:
    """A local repository of 10 clusters, already pushed to its own slow remote."""
    served = server.repository_create(f"{name}.git")
    pushes_log = scratch / f"{name}.pushes"
    server.pre_receive_hook_install(
        f"{name}.git", f"sleep {PUSH_DELAY_MS / 1000:.3f}\necho push >> {pushes_log}"
    )
    repository = repository_open(
        path=scratch / f"{name}-local.git", branch="main", bootstrap_files=_values_files(GROUP_CLUSTERS)
    )
    remote = RemoteConfig(url=server.url(f"{name}.git"))
    assert commits_deliver(repository=repository, pending=[], committer=IDENTITY, remote=remote).pushed
    return Scenario(repository, remote, served, pushes_log)


def _request(number: int, scenario: Scenario, outbox: Outbox, locks: Locks, group: bool) -> str | None:
    """One request: outbox first, then the portal's two halves; answers with its change's commit.

    With group commit: under the branch lock, commit every change not committed yet (unless
    its own already is); then, under the push lock, push the branch unless a push since carried
    its change. So one group is committed while the one before is pushed. Without: under both
    locks, commit its own change and push it.
    """
    change = _change(number)
    with outbox.lock:
        outbox.pending.append(change)
    if not group:
        with locks.push, locks.branch:
            delivery = commits_deliver(
                repository=scenario.repository, pending=[change], committer=IDENTITY, remote=scenario.remote
            )
            with outbox.lock:
                outbox.committed(delivery)
                return outbox.commits[number] if number in outbox.pushed else None
    with locks.branch:
        with outbox.lock:
            batch = (
                [] if number in outbox.commits else [item for item in outbox.pending if not item.committed]
            )
        if batch:
            delivery = commits_make(
                repository=scenario.repository, pending=batch, committer=IDENTITY, remote=scenario.remote
            )
            with outbox.lock:
                outbox.committed(delivery)
    with locks.push:
        with outbox.lock:
            if number in outbox.pushed:
                return outbox.commits[number]  # carried by the push before: group commit
        pushed, tip, _moved = branch_deliver(repository=scenario.repository, remote=scenario.remote)
        with outbox.lock:
            if pushed and tip is not None:
                outbox.carried(
                    item.key
                    for item in outbox.pending
                    if item.committed
                    and commit_is_ancestor(
                        repository=scenario.repository, ancestor=item.committed, descendant=tip
                    )
                )
            return outbox.commits[number] if number in outbox.pushed else None


def _requests_run(scenario: Scenario, threads: int, group: bool) -> tuple[float, dict[int, str | None]]:
    """Wall time from the moment every thread is ready until every request has its answer."""
    scenario.pushes_log.unlink(missing_ok=True)
    outbox, locks = Outbox(), Locks()
    answers: dict[int, str | None] = {}
    started: list[float] = []
    ready = threading.Barrier(threads, action=lambda: started.append(time.perf_counter()))

    def run(number: int) -> None:
        ready.wait()
        answers[number] = _request(number, scenario, outbox, locks, group)

    workers = [threading.Thread(target=run, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return time.perf_counter() - started[0], answers


def _remote_authors(served: Path) -> dict[str, str]:
    """Every commit on the remote's branch and its author's email, read with pygit2."""
    remote_repository = pygit2.Repository(str(served))
    tip = remote_repository.references["refs/heads/main"].target
    return {str(commit.id): commit.author.email for commit in remote_repository.walk(tip)}


def _all_delivered(scenario: Scenario, answers: dict[int, str | None], threads: int) -> bool:
    """Whether each request's answer is a commit on the remote, authored by whoever asked."""
    authors = _remote_authors(scenario.served)
    return all(
        answers.get(number) in authors and authors[answers[number]] == f"user{number}@example.com"
        for number in range(threads)
    )


def _median_ms(work: Callable[[], object], repeat: int) -> float:
    return statistics.median(_timed_ms(work) for _ in range(repeat))


@dataclass(frozen=True)
class SingleCosts:
    local_commit_ms: float
    fetch_ms: float
    push_ms: float
    delivery_ms: float


def _single_costs(scenario: Scenario) -> SingleCosts:
    """Each cost alone, before any concurrency: a local commit, a fetch, a push, a whole delivery."""
    counter = iter(range(100, 1000))  # a new replica count each time, within the chart's limit

    def local_commit() -> None:
        _portal_scale(scenario.repository, *_slugs(0), next(counter))

    local_commit_ms = _median_ms(local_commit, 20)
    remote_push(repository=scenario.repository, remote=scenario.remote)
    fetch_ms = _median_ms(partial(remote_fetch, repository=scenario.repository, remote=scenario.remote), 5)
    push_times = []
    for _ in range(5):
        local_commit()
        push_times.append(
            _timed_ms(partial(remote_push, repository=scenario.repository, remote=scenario.remote))
        )

    def delivery() -> None:
        number = next(counter)
        commits_deliver(
            repository=scenario.repository,
            pending=[_change(number)],
            committer=IDENTITY,
            remote=scenario.remote,
        )

    delivery_ms = _median_ms(delivery, 5)
    return SingleCosts(local_commit_ms, fetch_ms, statistics.median(push_times), delivery_ms)


def _part_two_report(costs: SingleCosts, runs: dict[str, tuple[float, int, bool]], threads: int) -> None:
    print(
        f"Part 2: {threads} concurrent changes over {GROUP_CLUSTERS} clusters, "
        f"to a remote over HTTP whose pre-receive hook sleeps {PUSH_DELAY_MS} ms"
    )
    print(
        f"alone: one local commit {costs.local_commit_ms:.2f} ms | one fetch {costs.fetch_ms:.1f} ms | "
        f"one push {costs.push_ms:.1f} ms | "
        f"one change delivered (fetch, commit, push) {costs.delivery_ms:.1f} ms"
    )
    print(f"{'group commit':>12} | {'total':>9} | {'pushes':>6} | every change on the remote, own author")
    print("-+-".join("-" * width for width in (12, 9, 6, 38)))
    for mode, (total_s, pushes, complete) in runs.items():
        print(f"{mode:>12} | {total_s * 1000:>6.0f} ms | {pushes:>6} | {'yes' if complete else 'NO'}")
    total_ms, _, complete = runs["ON"]
    total_ms *= 1000
    target_ms = 2 * costs.push_ms + threads * costs.local_commit_ms
    print(
        f"target: ON total <= 2 x one push + {threads} x one local commit = {target_ms:.0f} ms "
        f"(every change delivered): {total_ms:.0f} ms {_verdict(complete and total_ms <= target_ms)}"
    )


def part_two(arguments: argparse.Namespace) -> None:
    threads = arguments.threads
    with (
        tempfile.TemporaryDirectory(prefix="bench-gitops-") as scratch,
        GitHttpServerProcess(Path(scratch) / "served") as server,
    ):
        runs = {}
        for mode, group in (("ON", True), ("OFF", False)):
            scenario = _scenario(server, Path(scratch), f"group-{mode.lower()}")
            if group:
                # Measured on the very repository and remote the run uses: on a real disk the
                # cost of creating a file differs from one folder to the next, several fold.
                costs = _single_costs(scenario)
            total_s, answers = _requests_run(scenario, threads, group)
            pushes = len(scenario.pushes_log.read_text().splitlines()) if scenario.pushes_log.exists() else 0
            runs[mode] = (total_s, pushes, _all_delivered(scenario, answers, threads))
    _part_two_report(costs, runs, threads)


PARTS: dict[int, Callable[[argparse.Namespace], None]] = {1: part_one, 2: part_two, 3: part_three}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", type=int, choices=sorted(PARTS), help="run only this part (default: all)")
    parser.add_argument("--runs", type=int, default=50, help="part 1: timed runs of each way per size")
    parser.add_argument("--sizes", default="100,1000,10000", help="part 1: repository sizes, in clusters")
    parser.add_argument("--threads", type=int, default=50, help="part 2: concurrent requests")
    arguments = parser.parse_args()
    for number in [arguments.part] if arguments.part else sorted(PARTS):
        PARTS[number](arguments)
        print()


if __name__ == "__main__":
    main()
