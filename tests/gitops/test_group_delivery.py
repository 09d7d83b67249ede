"""Group commit: each pending change its own commit, one push for all, rebuilt when the remote moved."""

from __future__ import annotations

import shutil
import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from django.db import connection

from gitops.delivery import (
    CommitOutcome,
    GroupDelivery,
    PendingCommit,
    branch_deliver,
    commits_deliver,
    commits_make,
)
from gitops.errors import RepositoryUnavailable
from gitops.locks import branch_lock
from gitops.remote import RemoteConfig
from gitops.repository import (
    GitIdentity,
    branch_tip,
    commit_read,
    commits_list,
    file_read,
    repository_open,
)
from gitops.trees import TreeReader
from gitops.values import ValuesError
from tests.support.git_http import GitHttpServer

from .conftest import ALICE, PORTAL

BOB = GitIdentity(name="Bob Example", email="bob@example.com")


@pytest.fixture
def http_server(tmp_path: Path):
    with GitHttpServer(tmp_path / "served") as server:
        yield server


def _git(repo_path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo_path), *args], check=True, capture_output=True, text=True
    ).stdout


def _remote_tip(remote: RemoteConfig, branch: str = "main") -> str:
    return _git(Path(remote.url), "rev-parse", f"refs/heads/{branch}").strip()


def _remote_file(remote: RemoteConfig, file_path: str) -> str:
    return _git(Path(remote.url), "show", f"main:{file_path}")


def _set(file_path: str, content: bytes):
    return lambda reader: {file_path: content}


def _pending(key, render, author: GitIdentity = ALICE, message: str = "change\n", committed=None):
    return PendingCommit(key=key, render=render, author=author, message=message, committed=committed)


def _deliver(repository, pending, remote=None, push_retries=5) -> GroupDelivery:
    return commits_deliver(
        repository=repository, pending=pending, committer=PORTAL, remote=remote, push_retries=push_retries
    )


def _one(repository, render, remote=None, push_retries=5, message="change\n") -> GroupDelivery:
    return _deliver(
        repository, [_pending(1, render, message=message)], remote=remote, push_retries=push_retries
    )


def _push_counter(server: GitHttpServer, name: str, tmp_path: Path) -> Path:
    log = tmp_path / f"{name}.pushes"
    server.pre_receive_hook_install(name, f"echo push >> {log}")
    return log


# --- Group commit ------------------------------------------------------------------------------


def test_each_pending_change_becomes_its_own_commit_in_order(repository):
    start = branch_tip(repository=repository)
    pending = [
        _pending("a", _set("clients/acme/prod/values.yaml", b"a\n"), ALICE, "acme/prod: a\n"),
        _pending("b", _set("clients/beta/prod/values.yaml", b"b\n"), BOB, "beta/prod: b\n"),
        _pending("c", _set("clients/acme/prod/values.yaml", b"c\n"), ALICE, "acme/prod: c\n"),
    ]

    delivery = _deliver(repository, pending)

    assert [outcome.key for outcome in delivery.outcomes] == ["a", "b", "c"]
    commits = [outcome.commit for outcome in delivery.outcomes]
    infos = [commit_read(repository=repository, commit=commit) for commit in commits]
    assert [info.parents for info in infos] == [(start,), (commits[0],), (commits[1],)]
    assert [info.author for info in infos] == [ALICE, BOB, ALICE]
    assert {info.committer for info in infos} == {PORTAL}
    assert [info.message for info in infos] == ["acme/prod: a\n", "beta/prod: b\n", "acme/prod: c\n"]
    assert delivery.tip == commits[-1] == branch_tip(repository=repository)
    assert delivery.pushed is True
    assert delivery.committed_at == infos[-1].committed_at


def test_each_render_sees_the_tree_of_the_commit_before_it(repository):
    def append(line: bytes):
        return lambda reader: {"log.txt": (reader.read("log.txt") or b"") + line}

    _deliver(repository, [_pending(n, append(f"{n}\n".encode())) for n in range(3)])

    assert file_read(repository=repository, file_path="log.txt") == b"0\n1\n2\n"


def test_one_push_carries_every_commit(repository, http_server, tmp_path):
    served = http_server.repository_create("gitops.git")
    pushes = _push_counter(http_server, "gitops.git", tmp_path)
    remote = RemoteConfig(url=http_server.url("gitops.git"))
    pending = [
        _pending(n, _set(f"clients/c{n}/main/values.yaml", b"v\n"), ALICE if n % 2 else BOB, f"c{n}\n")
        for n in range(5)
    ]

    delivery = _deliver(repository, pending, remote=remote)

    assert delivery.pushed is True
    assert pushes.read_text().splitlines() == ["push"]
    assert _git(served, "rev-parse", "main").strip() == delivery.tip
    history = _git(served, "log", "--format=%H %ae %s", "main").splitlines()
    for n, outcome in enumerate(delivery.outcomes):
        assert f"{outcome.commit} {(ALICE if n % 2 else BOB).email} c{n}" in history


def test_a_change_that_changes_nothing_gets_no_commit(repository):
    delivery = _deliver(
        repository,
        [
            _pending("same", _set("README.md", b"hello\n")),
            _pending("new", _set("new.txt", b"new\n")),
            _pending("nothing", lambda reader: {}),
        ],
    )

    assert delivery.outcomes[0] == CommitOutcome(key="same", commit=None)
    assert delivery.outcomes[1].commit == branch_tip(repository=repository)
    assert delivery.outcomes[2] == CommitOutcome(key="nothing", commit=None)
    assert len(commits_list(repository=repository)) == 2


def test_a_render_raising_a_content_error_skips_only_that_change(repository):
    def broken(reader: TreeReader):
        raise ValuesError("clients/acme/prod/values.yaml: 'image' must be a mapping")

    delivery = _deliver(
        repository,
        [_pending(1, _set("one.txt", b"1")), _pending(2, broken), _pending(3, _set("three.txt", b"3"))],
    )

    assert delivery.outcomes[1].commit is None
    assert isinstance(delivery.outcomes[1].error, ValuesError)
    assert delivery.outcomes[0].commit is not None and delivery.outcomes[0].error is None
    assert delivery.outcomes[2].commit == branch_tip(repository=repository)
    assert file_read(repository=repository, file_path="three.txt") == b"3"


def test_any_other_render_failure_propagates_and_commits_nothing(repository):
    start = branch_tip(repository=repository)

    def crashing(reader: TreeReader):
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        _deliver(repository, [_pending(1, _set("one.txt", b"1")), _pending(2, crashing)])

    assert branch_tip(repository=repository) == start


def test_nothing_pending_pushes_what_is_local(repository, remote):
    delivery = _deliver(repository, [], remote=remote)

    assert delivery.outcomes == ()
    assert delivery.pushed is True
    assert delivery.committed_at is None
    assert _remote_tip(remote) == branch_tip(repository=repository) == delivery.tip


def test_a_repository_that_cannot_be_written_raises_repository_unavailable(repository):
    shutil.rmtree(repository.path)

    with pytest.raises(RepositoryUnavailable):
        _one(repository, _set("a.txt", b"a"))


# --- Delivery to a remote ----------------------------------------------------------------------


def test_delivery_without_remote_commits_locally(repository):
    delivery = _one(repository, _set("clients/acme/prod/values.yaml", b"x: 1\n"))

    assert delivery.outcomes[0].commit == branch_tip(repository=repository)
    assert delivery.committed_at is not None
    assert delivery.pushed is True


def test_delivery_pushes_the_commit_to_the_remote(repository, remote):
    delivery = _one(repository, _set("clients/acme/prod/values.yaml", b"x: 1\n"), remote=remote)

    assert delivery.pushed is True
    assert _remote_tip(remote) == delivery.outcomes[0].commit
    assert _remote_file(remote, "clients/acme/prod/values.yaml") == "x: 1\n"


def test_delivery_of_an_unchanged_tree_makes_no_commit_and_still_counts_as_pushed(repository, remote):
    first = _one(repository, _set("a.txt", b"a"), remote=remote)

    again = _one(repository, _set("a.txt", b"a"), remote=remote)

    assert again.outcomes[0].commit is None
    assert again.pushed is True
    assert _remote_tip(remote) == first.outcomes[0].commit


def test_remote_down_keeps_the_commit_local_and_a_later_delivery_pushes_it(repository, remote, tmp_path):
    down = RemoteConfig(url=str(tmp_path / "nowhere" / "server.git"))

    offline = _one(repository, _set("clients/acme/prod/values.yaml", b"x: 1\n"), remote=down)
    assert offline.pushed is False
    assert offline.outcomes[0].commit == branch_tip(repository=repository)

    later = _one(repository, _set("clients/acme/dev/values.yaml", b"y: 2\n"), remote=remote)

    assert later.pushed is True
    history = _git(Path(remote.url), "log", "--format=%H", "main").split()
    assert offline.outcomes[0].commit in history
    assert later.outcomes[0].commit == history[0]


def test_a_remote_down_delivery_with_nothing_new_pushes_pending_commits_later(repository, remote, tmp_path):
    down = RemoteConfig(url="file://" + str(tmp_path / "nowhere.git"))
    offline = _one(repository, _set("a.txt", b"a"), remote=down)

    sync = _one(repository, _set("a.txt", b"a"), remote=remote)

    assert sync.outcomes[0].commit is None
    assert sync.pushed is True
    assert _remote_tip(remote) == offline.outcomes[0].commit


def test_an_unanswering_server_leaves_the_commits_local(repository, http_server):
    served = http_server.repository_create("gitops.git")
    http_server.answering = False

    delivery = _one(repository, _set("a.txt", b"a"), remote=RemoteConfig(url=http_server.url("gitops.git")))

    assert delivery.pushed is False
    assert delivery.outcomes[0].commit == branch_tip(repository=repository)
    assert _git(served, "for-each-ref").strip() == ""


def test_committed_changes_are_kept_when_the_local_branch_is_ahead(repository, remote, tmp_path):
    down = RemoteConfig(url=str(tmp_path / "nowhere.git"))
    offline = _deliver(repository, [_pending(1, _set("a.txt", b"a"))], remote=down)
    renders: list[int] = []

    def must_not_render(reader: TreeReader):
        renders.append(1)
        return {"a.txt": b"rendered again"}

    later = _deliver(
        repository,
        [
            _pending(1, must_not_render, committed=offline.outcomes[0].commit),
            _pending(2, _set("b.txt", b"b")),
        ],
        remote=remote,
    )

    assert renders == []
    assert later.outcomes[0].commit == offline.outcomes[0].commit
    assert commit_read(repository=repository, commit=later.outcomes[1].commit).parents == (
        offline.outcomes[0].commit,
    )
    assert later.pushed is True
    assert _remote_tip(remote) == later.outcomes[1].commit


def test_non_fast_forward_push_re_renders_on_the_new_tip_and_keeps_both_changes(repository, remote, tmp_path):
    _one(repository, _set("README.md", b"hello\n"), remote=remote)
    other = repository_open(path=tmp_path / "other.git", branch="main", bootstrap_files={})
    seen_tips: list[str | None] = []

    def render(reader: TreeReader):
        seen_tips.append(reader.commit)
        if len(seen_tips) == 1:  # another portal instance pushes while we work
            _one(other, _set("clients/beta/prod/values.yaml", b"theirs\n"), remote=remote)
        return {"clients/acme/prod/values.yaml": b"ours\n"}

    delivery = _one(repository, render, remote=remote)

    commit = delivery.outcomes[0].commit
    assert delivery.pushed is True
    assert len(seen_tips) == 2
    assert seen_tips[1] != seen_tips[0]
    assert commit_read(repository=repository, commit=commit).parents == (seen_tips[1],)
    assert _remote_tip(remote) == commit
    assert _remote_file(remote, "clients/acme/prod/values.yaml") == "ours\n"
    assert _remote_file(remote, "clients/beta/prod/values.yaml") == "theirs\n"


def test_a_remote_that_keeps_moving_ends_in_a_local_commit_not_an_error(repository, remote, tmp_path):
    _one(repository, _set("README.md", b"hello\n"), remote=remote)
    other = repository_open(path=tmp_path / "other.git", branch="main", bootstrap_files={})
    calls = []

    def render(reader: TreeReader):
        calls.append(reader.commit)
        _one(other, _set("counter.txt", str(len(calls)).encode()), remote=remote)
        return {"mine.txt": b"mine\n"}

    delivery = _one(repository, render, remote=remote, push_retries=2)

    assert delivery.pushed is False
    assert len(calls) == 3
    assert file_read(repository=repository, file_path="mine.txt") == b"mine\n"


def test_unpushed_commits_are_replaced_on_the_remote_tip_with_their_author_and_message(
    repository, remote, tmp_path
):
    down = RemoteConfig(url=str(tmp_path / "nowhere.git"))
    _one(repository, _set("README.md", b"hello\n"), remote=remote)
    offline = _deliver(
        repository,
        [_pending(1, _set("clients/acme/prod/values.yaml", b"ours\n"), BOB, "acme/prod: ours\n")],
        remote=down,
    )
    other = repository_open(path=tmp_path / "other.git", branch="main", bootstrap_files={})
    _one(other, _set("clients/beta/prod/values.yaml", b"theirs\n"), remote=remote)
    theirs = _remote_tip(remote)

    sync = _deliver(
        repository,
        [
            _pending(
                1,
                _set("clients/acme/prod/values.yaml", b"ours\n"),
                BOB,
                "acme/prod: ours\n",
                committed=offline.outcomes[0].commit,
            ),
            _pending(2, _set("clients/acme/dev/values.yaml", b"new\n")),
        ],
        remote=remote,
    )

    replaced = sync.outcomes[0].commit
    assert sync.pushed is True
    assert replaced not in (None, offline.outcomes[0].commit)
    info = commit_read(repository=repository, commit=replaced)
    assert (info.author, info.message, info.parents) == (BOB, "acme/prod: ours\n", (theirs,))
    assert offline.outcomes[0].commit not in _git(Path(remote.url), "log", "--format=%H", "main").split()
    assert _remote_file(remote, "clients/acme/prod/values.yaml") == "ours\n"
    assert _remote_file(remote, "clients/beta/prod/values.yaml") == "theirs\n"
    assert _remote_file(remote, "clients/acme/dev/values.yaml") == "new\n"


def test_a_push_refused_by_a_hook_stays_local_and_is_not_retried(repository, http_server):
    served = http_server.repository_create("gitops.git")
    http_server.refusing_hook_install("gitops.git")
    renders: list[int] = []

    def render(reader: TreeReader):
        renders.append(1)
        return {"a.txt": b"a"}

    delivery = _one(repository, render, remote=RemoteConfig(url=http_server.url("gitops.git")))

    assert delivery.pushed is False
    assert renders == [1]
    assert delivery.outcomes[0].commit == branch_tip(repository=repository)
    assert _git(served, "for-each-ref").strip() == ""


# --- Pipelined: commits under the branch lock, the push under the push lock ----------------------


def _make(repository, n: int, author: GitIdentity, remote: RemoteConfig) -> str:
    made = commits_make(
        repository=repository,
        pending=[_pending(n, _set(f"clients/c{n}/main/values.yaml", b"v\n"), author, f"c{n}\n")],
        committer=PORTAL,
        remote=remote,
    )
    assert made.pushed is False
    return made.outcomes[0].commit


def test_the_next_change_is_committed_while_the_push_before_it_is_in_flight(
    repository, http_server, tmp_path
):
    served = http_server.repository_create("gitops.git")
    started, gate, pushes = tmp_path / "push-started", tmp_path / "gate", tmp_path / "pushes"
    http_server.pre_receive_hook_install(
        "gitops.git", f"echo push >> {pushes}\ntouch {started}\nwhile [ ! -e {gate} ]; do sleep 0.01; done"
    )
    remote = RemoteConfig(url=http_server.url("gitops.git"))
    first = _make(repository, 1, ALICE, remote)
    outcome: dict[str, tuple] = {}
    pusher = threading.Thread(
        target=lambda: outcome.update(first=branch_deliver(repository=repository, remote=remote))
    )
    pusher.start()
    try:
        for _ in range(1000):
            if started.exists():
                break
            threading.Event().wait(0.01)
        second = _make(repository, 2, BOB, remote)  # the first push still waits on the server
        assert pusher.is_alive()
        assert branch_tip(repository=repository) == second
    finally:
        gate.touch()
        pusher.join(timeout=10)

    assert outcome["first"] == (True, first, False)
    assert _git(served, "rev-parse", "main").strip() == first
    assert branch_deliver(repository=repository, remote=remote) == (True, second, False)
    history = _git(served, "log", "--format=%H %ae", "main").splitlines()
    assert f"{first} {ALICE.email}" in history and f"{second} {BOB.email}" in history
    assert branch_deliver(repository=repository, remote=remote) == (True, second, False)
    assert len(pushes.read_text().splitlines()) == 2  # nothing new: no third push


def test_a_push_to_a_remote_that_moved_says_so_and_one_that_is_down_does_not(repository, remote, tmp_path):
    _deliver(repository, [], remote=remote)
    other = repository_open(path=tmp_path / "other.git", branch="main", bootstrap_files={})
    _deliver(other, [_pending("x", _set("other.txt", b"o\n"), BOB)], remote=remote)
    ours = _make(repository, 1, ALICE, remote)
    failures: list[Exception] = []
    watched = replace(remote, on_failure=failures.append)

    assert branch_deliver(repository=repository, remote=watched) == (False, ours, True)
    assert failures == []  # the remote answered: not an outage to report
    down = RemoteConfig(url=str(tmp_path / "gone.git"), on_failure=failures.append)
    assert branch_deliver(repository=repository, remote=down) == (False, ours, False)
    assert len(failures) >= 1
    # What the portal does next when it moved: everything unpushed again, on the remote's tip.
    rebuilt = _deliver(
        repository,
        [_pending(1, _set("clients/c1/main/values.yaml", b"v\n"), ALICE, "c1\n", ours)],
        remote=remote,
    )
    assert rebuilt.pushed and rebuilt.outcomes[0].commit != ours
    assert _remote_file(remote, "other.txt") == "o\n"


# --- Concurrency -------------------------------------------------------------------------------


def test_concurrent_requests_share_pushes_and_keep_their_own_commits(repository, http_server, tmp_path):
    """The portal's request path: append to the outbox, take the lock, deliver all that is pending."""
    served = http_server.repository_create("gitops.git", push_delay_ms=50)
    pushes = _push_counter(http_server, "gitops.git", tmp_path)
    remote = RemoteConfig(url=http_server.url("gitops.git"))
    outbox: list[PendingCommit] = []
    answers: dict[int, str | None] = {}
    outbox_lock, branch = threading.Lock(), threading.Lock()
    people = [GitIdentity(name=f"User {n}", email=f"user{n}@example.com") for n in range(12)]

    def request(n: int) -> None:
        with outbox_lock:
            outbox.append(_pending(n, _set(f"clients/c{n}/main/values.yaml", b"v\n"), people[n], f"c{n}\n"))
        with branch:
            with outbox_lock:
                batch = list(outbox)
            if n not in answers:
                delivery = _deliver(repository, batch, remote=remote)
                with outbox_lock:
                    answers.update({outcome.key: outcome.commit for outcome in delivery.outcomes})
                    outbox[:] = [item for item in outbox if item.key not in answers]

    threads = [threading.Thread(target=request, args=(n,)) for n in range(len(people))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    history = _git(served, "log", "--format=%H %ae", "main").splitlines()
    assert sorted(answers) == list(range(len(people)))
    for n, person in enumerate(people):
        assert f"{answers[n]} {person.email}" in history
    assert len(pushes.read_text().splitlines()) < len(people)


@pytest.mark.django_db(transaction=True)  # the branch lock is a database lock on PostgreSQL
def test_eight_threads_writing_four_clusters_lose_nothing(repository, remote):
    rounds = 5
    errors: list[BaseException] = []

    def append(file_path: str, line: bytes):
        return lambda reader: {file_path: (reader.read(file_path) or b"") + line}

    def writer(thread: int) -> None:
        file_path = f"clients/acme/c{thread % 4}/values.yaml"
        try:
            for n in range(rounds):
                with branch_lock(repo_path=repository.path):
                    _one(repository, append(file_path, f"t{thread}-{n}\n".encode()), remote=remote)
        except BaseException as error:  # noqa: BLE001 - reported by the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    for cluster in range(4):
        lines = _remote_file(remote, f"clients/acme/c{cluster}/values.yaml").split()
        expected = {f"t{t}-{n}" for t in range(8) if t % 4 == cluster for n in range(rounds)}
        assert sorted(lines) == sorted(expected)
    assert len(commits_list(repository=repository)) == 1 + 8 * rounds  # the bootstrap commit, then one each
