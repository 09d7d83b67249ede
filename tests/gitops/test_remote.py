"""Fetch and push over real smart HTTP (``git http-backend``), where the server's hooks run."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pygit2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from gitops.remote import RemoteConfig, commit_history, commit_is_ancestor, remote_fetch, remote_push
from gitops.repository import GitopsRepository, branch_tip, files_commit, repository_open
from tests.support.git_http import GitHttpServer, GitHttpServerProcess
from tests.support.ssh_host import SshHost

from .conftest import ALICE, PORTAL


@pytest.fixture
def http_server(tmp_path: Path):
    with GitHttpServer(tmp_path / "served") as server:
        yield server


def _server_tip(path: Path) -> str | None:
    found = subprocess.run(
        ["git", "--git-dir", str(path), "rev-parse", "--verify", "--quiet", "refs/heads/main"],
        capture_output=True,
        text=True,
    )
    return found.stdout.strip() or None


def _commit(repository: GitopsRepository, name: str) -> str:
    commit = files_commit(
        repository=repository,
        changes={name: name.encode()},
        author=ALICE,
        committer=PORTAL,
        message=f"{name}\n",
        expected_tip=branch_tip(repository=repository),
    )
    assert commit is not None
    return commit


def test_push_over_http_puts_the_branch_on_the_server(repository, http_server):
    served = http_server.repository_create("gitops.git")
    remote = RemoteConfig(url=http_server.url("gitops.git"))

    assert remote_push(repository=repository, remote=remote) is True

    assert _server_tip(served) == branch_tip(repository=repository)
    assert remote_fetch(repository=repository, remote=remote).tip == branch_tip(repository=repository)


def test_the_server_in_a_process_of_its_own_takes_a_push_too(repository, tmp_path):
    """The benchmarks' git host: the same server, outside the pushing process."""
    with GitHttpServerProcess(tmp_path / "served") as server:
        served = server.repository_create("gitops.git")
        assert remote_push(repository=repository, remote=RemoteConfig(url=server.url("gitops.git"))) is True
        assert _server_tip(served) == branch_tip(repository=repository)


def test_fetch_reports_the_servers_tip_and_an_unborn_branch(repository, http_server, tmp_path):
    http_server.repository_create("gitops.git")
    remote = RemoteConfig(url=http_server.url("gitops.git"))

    empty = remote_fetch(repository=repository, remote=remote)
    other = repository_open(path=tmp_path / "other.git", branch="main", bootstrap_files={"x": b"x"})
    remote_push(repository=other, remote=remote)
    found = remote_fetch(repository=repository, remote=remote)

    assert (empty.reachable, empty.tip) == (True, None)
    assert (found.reachable, found.tip) == (True, branch_tip(repository=other))


def test_a_push_the_pre_receive_hook_refuses_is_reported_as_not_pushed(repository, http_server):
    served = http_server.repository_create("gitops.git")
    http_server.refusing_hook_install("gitops.git", "frozen for the audit")
    told = []
    remote = RemoteConfig(url=http_server.url("gitops.git"), on_failure=told.append)

    pushed = remote_push(repository=repository, remote=remote)

    assert pushed is False
    assert _server_tip(served) is None
    # The operators are told why (the portal logs it), not left to guess from "not pushed".
    assert [type(error).__name__ for error in told] == ["PushRejected"]
    assert "refs/heads/main" in str(told[0]) and "pre-receive hook declined" in str(told[0])
    assert "frozen for the audit" in str(told[0])  # the hook's own reason


def test_the_servers_push_delay_is_observed(repository, http_server):
    http_server.repository_create("slow.git", push_delay_ms=150)
    remote = RemoteConfig(url=http_server.url("slow.git"))

    started = time.perf_counter()
    pushed = remote_push(repository=repository, remote=remote)
    elapsed = time.perf_counter() - started

    assert pushed is True
    assert elapsed >= 0.15


def test_a_non_fast_forward_push_is_refused_never_forced(repository, http_server, tmp_path):
    served = http_server.repository_create("gitops.git")
    remote = RemoteConfig(url=http_server.url("gitops.git"))
    other = repository_open(path=tmp_path / "other.git", branch="main", bootstrap_files={"theirs": b"t"})
    remote_push(repository=other, remote=remote)

    pushed = remote_push(repository=repository, remote=remote)

    assert pushed is False
    assert _server_tip(served) == branch_tip(repository=other)


def test_a_server_that_stops_answering_is_unreachable_not_an_error(repository, http_server):
    http_server.repository_create("gitops.git")
    remote = RemoteConfig(url=http_server.url("gitops.git"))
    http_server.answering = False

    state = remote_fetch(repository=repository, remote=remote)
    pushed = remote_push(repository=repository, remote=remote)

    assert (state.reachable, state.tip) == (False, None)
    assert pushed is False


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/nothing.git", "/nowhere/at/all.git", "not a url"])
def test_unreachable_remotes_never_raise(repository, url):
    remote = RemoteConfig(url=url)

    assert remote_fetch(repository=repository, remote=remote).reachable is False
    assert remote_push(repository=repository, remote=remote) is False


@pytest.mark.parametrize(("token", "pushed"), [("s3cret", True), ("wrong", False), (None, False)])
def test_the_token_is_sent_when_the_server_asks(repository, tmp_path, token, pushed):
    with GitHttpServer(tmp_path / "private", credentials=("x-access-token", "s3cret")) as server:
        served = server.repository_create("gitops.git")
        remote = RemoteConfig(url=server.url("gitops.git"), token=token)

        assert remote_push(repository=repository, remote=remote) is pushed

    assert (_server_tip(served) is not None) is pushed


def test_secrets_stay_out_of_the_configurations_repr():
    remote = RemoteConfig(url="https://git.example.com/ops.git", token="s3cret", ssh_passphrase="pass")

    assert "s3cret" not in repr(remote)
    assert "pass'" not in repr(remote)


def test_commit_is_ancestor_follows_history(repository, tmp_path):
    first = branch_tip(repository=repository)
    second = _commit(repository, "a.txt")
    unrelated = branch_tip(
        repository=repository_open(
            path=tmp_path / "unrelated.git", branch="main", bootstrap_files={"u": b"u"}
        )
    )

    assert commit_is_ancestor(repository=repository, ancestor=first, descendant=second)
    assert commit_is_ancestor(repository=repository, ancestor=second, descendant=second)
    assert not commit_is_ancestor(repository=repository, ancestor=second, descendant=first)
    assert not commit_is_ancestor(repository=repository, ancestor=unrelated, descendant=second)


def _commit_of(repository: GitopsRepository, name: str, parents: list[str]) -> str:
    """A commit with these parents (a merge when two), as a person's branch and merge would make."""
    handle = pygit2.Repository(str(repository.path))
    signature = pygit2.Signature(ALICE.name, ALICE.email)
    tree = handle[parents[0]].tree_id
    return str(
        handle.create_commit(None, signature, signature, name, tree, [pygit2.Oid(hex=p) for p in parents])
    )


def test_a_commits_history_holds_it_and_its_ancestors_through_merges_and_nothing_else(repository, tmp_path):
    root = branch_tip(repository=repository)
    first = _commit(repository, "a.txt")
    second = _commit(repository, "b.txt")
    side = _commit_of(repository, "side", [root])  # a branch from the start, merged later
    merge = _commit_of(repository, "merge", [second, side])
    after = _commit_of(repository, "after", [merge])
    unrelated = branch_tip(
        repository=repository_open(
            path=tmp_path / "unrelated.git", branch="main", bootstrap_files={"u": b"u"}
        )
    )

    # Asked in this order, each later revision's walk meets histories already known.
    assert commit_history(repository=repository, commit=second) == {root, first, second}
    assert commit_history(repository=repository, commit=after) == {root, first, second, side, merge, after}
    assert commit_history(repository=repository, commit=side) == {root, side}  # not what it was merged into
    assert commit_history(repository=repository, commit=merge) == {root, first, second, side, merge}
    assert commit_history(repository=repository, commit=unrelated) == frozenset()  # not in this repository
    assert commit_history(repository=repository, commit="f" * 40) == frozenset()


def _ssh_key(folder: Path) -> Path:
    key = ed25519.Ed25519PrivateKey.generate()
    path = folder / "id_ed25519"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    return path


def test_an_ssh_host_not_in_known_hosts_is_refused_before_the_portals_key_is_offered(
    repository, tmp_path, monkeypatch
):
    """Whoever answers for the git host's name must not get the key, nor the commits."""
    home = tmp_path / "home"
    monkeypatch.setattr(pygit2.settings, "homedir", str(home))  # libgit2's $HOME: .ssh/known_hosts
    told: list[Exception] = []
    with SshHost() as host:
        remote = RemoteConfig(
            url=host.url("gitops.git"), ssh_key_path=_ssh_key(tmp_path), on_failure=told.append
        )

        assert remote_fetch(repository=repository, remote=remote).reachable is False
        assert remote_push(repository=repository, remote=remote) is False
        assert host.sign_in_attempts == []
        assert [type(error).__name__ for error in told] == ["CertificateError", "CertificateError"]
        assert "unknown remote ssh hostkey" in str(told[0])

        (home / ".ssh").mkdir(parents=True)
        (home / ".ssh" / "known_hosts").write_text(host.known_hosts_line)
        remote_fetch(repository=repository, remote=remote)  # a known host: the key is offered
        assert host.sign_in_attempts[:1] == ["git"]
