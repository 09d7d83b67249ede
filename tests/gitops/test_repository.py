from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest
from django.db import connection

from gitops.locks import branch_lock
from gitops.repository import (
    BranchMoved,
    GitopsRepository,
    GitopsUnavailable,
    InvalidPath,
    RemoteConfig,
    TreeReader,
    blobs_read,
    branch_tip,
    branch_update,
    changes_deliver,
    commit_read,
    commits_list,
    file_read,
    files_commit,
    files_list,
    repository_open,
)

from .conftest import ALICE, PORTAL


def _git(repo_path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo_path), *args], check=True, capture_output=True, text=True
    ).stdout


def _commit(
    repository: GitopsRepository, changes: dict[str, bytes | None], message: str = "change\n"
) -> str | None:
    return files_commit(
        repository=repository,
        changes=changes,
        author=ALICE,
        committer=PORTAL,
        message=message,
        expected_tip=branch_tip(repository=repository),
    )


def _remote_tip(remote: RemoteConfig, branch: str = "main") -> str:
    return _git(Path(remote.url), "rev-parse", f"refs/heads/{branch}").strip()


def _remote_file(remote: RemoteConfig, file_path: str) -> str:
    return _git(Path(remote.url), "show", f"main:{file_path}")


def test_repository_open_creates_a_bare_repository_with_one_bootstrap_commit(tmp_path):
    path = tmp_path / "new.git"
    files = {"argocd/applicationset.yaml": b"kind: ApplicationSet\n", "README.md": b"read me\n"}

    first = repository_open(path=path, branch="main", bootstrap_files=files)
    again = repository_open(path=path, branch="main", bootstrap_files={"other.txt": b"x"})

    assert _git(path, "rev-parse", "--is-bare-repository").strip() == "true"
    assert len(commits_list(repository=again)) == 1
    assert files_list(repository=first) == ["README.md", "argocd/applicationset.yaml"]
    assert git_fsck_ok(path)


def git_fsck_ok(path: Path) -> bool:
    return (
        subprocess.run(["git", "--git-dir", str(path), "fsck", "--strict"], capture_output=True).returncode
        == 0
    )


def test_files_commit_writes_one_commit_with_author_committer_message_and_tree(repository):
    before = branch_tip(repository=repository)

    commit = _commit(
        repository,
        {"clients/acme/prod/values.yaml": b"replicaCount: 3\n"},
        message="acme/prod: replicas 2 -> 3\n\nRequested-by: Alice Example <alice@example.com>\n",
    )

    info = commit_read(repository=repository, commit=commit)
    assert info.parents == (before,)
    assert info.author == ALICE
    assert info.committer == PORTAL
    assert info.message.startswith("acme/prod: replicas 2 -> 3\n")
    assert "Requested-by: Alice Example <alice@example.com>" in info.message
    assert branch_tip(repository=repository) == commit
    assert files_list(repository=repository) == ["README.md", "clients/acme/prod/values.yaml"]
    assert file_read(repository=repository, file_path="clients/acme/prod/values.yaml") == b"replicaCount: 3\n"
    assert _git(repository.path, "diff", "--name-only", before, commit).split() == [
        "clients/acme/prod/values.yaml"
    ]
    assert git_fsck_ok(repository.path)


def test_committing_identical_content_makes_no_commit(repository):
    first = _commit(repository, {"clients/acme/prod/values.yaml": b"replicaCount: 3\n"})

    again = _commit(repository, {"clients/acme/prod/values.yaml": b"replicaCount: 3\n"})

    assert first is not None
    assert again is None
    assert branch_tip(repository=repository) == first


def test_commit_rebuilds_only_the_trees_on_the_changed_path(repository):
    _commit(repository, {f"clients/c{i}/prod/values.yaml": f"n: {i}\n".encode() for i in range(5)})
    before = {
        line.split()[3]: line.split()[2]
        for line in _git(repository.path, "ls-tree", "main:clients").splitlines()
    }

    _commit(repository, {"clients/c2/prod/values.yaml": b"n: changed\n"})

    after = {
        line.split()[3]: line.split()[2]
        for line in _git(repository.path, "ls-tree", "main:clients").splitlines()
    }
    assert {name for name in before if before[name] != after[name]} == {"c2"}


def test_deleting_the_last_file_of_a_folder_removes_the_folder(repository):
    _commit(repository, {"clients/acme/prod/values.yaml": b"a\n", "clients/acme/dev/values.yaml": b"b\n"})

    _commit(repository, {"clients/acme/prod/values.yaml": None})

    assert files_list(repository=repository, prefix="clients") == ["clients/acme/dev/values.yaml"]
    assert git_fsck_ok(repository.path)


@pytest.mark.parametrize(
    "bad_path", ["", "/etc/passwd", "clients/../x", "clients//x", "./x", "clients/.git/config", "a\\b", "x/"]
)
def test_unsafe_paths_are_refused(repository, bad_path):
    with pytest.raises(InvalidPath):
        _commit(repository, {bad_path: b"x"})


def test_commit_refuses_a_branch_that_moved_since_it_started(repository):
    started_on = branch_tip(repository=repository)
    moved_to = _commit(repository, {"other.txt": b"someone else\n"})

    with pytest.raises(BranchMoved):
        files_commit(
            repository=repository,
            changes={"mine.txt": b"mine\n"},
            author=ALICE,
            committer=PORTAL,
            message="mine\n",
            expected_tip=started_on,
        )

    assert branch_tip(repository=repository) == moved_to


def test_branch_update_swaps_only_from_the_expected_tip(repository):
    start = branch_tip(repository=repository)
    second = _commit(repository, {"a.txt": b"a"})

    with pytest.raises(BranchMoved):
        branch_update(repository=repository, expected_tip=start, new_tip=start)
    branch_update(repository=repository, expected_tip=second, new_tip=start)

    assert branch_tip(repository=repository) == start


def test_blobs_read_includes_content_no_longer_on_the_branch(repository):
    _commit(repository, {"secret.txt": b"old-content-4711\n"})
    _commit(repository, {"secret.txt": b"new\n"})

    blobs = list(blobs_read(repository=repository))

    assert b"old-content-4711\n" in blobs
    assert b"new\n" in blobs


def test_an_unwritable_repository_raises_gitops_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(GitopsUnavailable):
        repository_open(path=blocker / "gitops.git", branch="main", bootstrap_files={"a": b"a"})


# --- Delivery ---------------------------------------------------------------------------------


def _set(file_path: str, content: bytes):
    return lambda reader: {file_path: content}


def _deliver(repository, render, remote=None, message="change\n", push_retries=5):
    return changes_deliver(
        repository=repository,
        render=render,
        author=ALICE,
        committer=PORTAL,
        message=message,
        remote=remote,
        push_retries=push_retries,
    )


def test_delivery_without_remote_commits_locally(repository):
    delivery = _deliver(repository, _set("clients/acme/prod/values.yaml", b"x: 1\n"))

    assert delivery.commit == branch_tip(repository=repository)
    assert delivery.committed_at is not None
    assert delivery.pushed is True


def test_delivery_pushes_the_commit_to_the_remote(repository, remote):
    delivery = _deliver(repository, _set("clients/acme/prod/values.yaml", b"x: 1\n"), remote=remote)

    assert delivery.pushed is True
    assert _remote_tip(remote) == delivery.commit
    assert _remote_file(remote, "clients/acme/prod/values.yaml") == "x: 1\n"


def test_delivery_of_an_unchanged_tree_makes_no_commit_and_still_counts_as_pushed(repository, remote):
    first = _deliver(repository, _set("a.txt", b"a"), remote=remote)

    again = _deliver(repository, _set("a.txt", b"a"), remote=remote)

    assert again.commit is None
    assert again.pushed is True
    assert _remote_tip(remote) == first.commit


def test_remote_down_keeps_the_commit_local_and_a_later_delivery_pushes_it(repository, remote, tmp_path):
    down = RemoteConfig(url=str(tmp_path / "nowhere" / "server.git"))

    offline = _deliver(repository, _set("clients/acme/prod/values.yaml", b"x: 1\n"), remote=down)
    assert offline.pushed is False
    assert offline.commit == branch_tip(repository=repository)

    later = _deliver(repository, _set("clients/acme/dev/values.yaml", b"y: 2\n"), remote=remote)

    assert later.pushed is True
    history = _git(Path(remote.url), "log", "--format=%H", "main").split()
    assert offline.commit in history
    assert later.commit == history[0]


def test_a_remote_down_delivery_with_nothing_new_pushes_pending_commits_later(repository, remote, tmp_path):
    down = RemoteConfig(url="file://" + str(tmp_path / "nowhere.git"))
    offline = _deliver(repository, _set("a.txt", b"a"), remote=down)

    sync = _deliver(repository, _set("a.txt", b"a"), remote=remote)

    assert sync.commit is None
    assert sync.pushed is True
    assert _remote_tip(remote) == offline.commit


def test_non_fast_forward_push_re_renders_on_the_new_tip_and_keeps_both_changes(repository, remote, tmp_path):
    _deliver(repository, _set("README.md", b"hello\n"), remote=remote)
    other = repository_open(path=tmp_path / "other.git", branch="main", bootstrap_files={})
    seen_tips: list[str | None] = []

    def render(reader: TreeReader):
        seen_tips.append(reader.commit)
        if len(seen_tips) == 1:  # another portal instance pushes while we work
            _deliver(other, _set("clients/beta/prod/values.yaml", b"theirs\n"), remote=remote)
        return {"clients/acme/prod/values.yaml": b"ours\n"}

    delivery = _deliver(repository, render, remote=remote)

    assert delivery.pushed is True
    assert len(seen_tips) == 2
    assert seen_tips[1] != seen_tips[0]
    assert commit_read(repository=repository, commit=delivery.commit).parents == (seen_tips[1],)
    assert _remote_tip(remote) == delivery.commit
    assert _remote_file(remote, "clients/acme/prod/values.yaml") == "ours\n"
    assert _remote_file(remote, "clients/beta/prod/values.yaml") == "theirs\n"


def test_a_remote_that_keeps_moving_ends_in_a_local_commit_not_an_error(repository, remote, tmp_path):
    _deliver(repository, _set("README.md", b"hello\n"), remote=remote)
    other = repository_open(path=tmp_path / "other.git", branch="main", bootstrap_files={})
    calls = []

    def render(reader: TreeReader):
        calls.append(reader.commit)
        _deliver(other, _set("counter.txt", str(len(calls)).encode()), remote=remote)
        return {"mine.txt": b"mine\n"}

    delivery = _deliver(repository, render, remote=remote, push_retries=2)

    assert delivery.pushed is False
    assert len(calls) == 3
    assert file_read(repository=repository, file_path="mine.txt") == b"mine\n"


def test_unpushed_commits_are_superseded_when_the_remote_moved_and_render_covers_them(
    repository, remote, tmp_path
):
    down = RemoteConfig(url=str(tmp_path / "nowhere.git"))
    _deliver(repository, _set("README.md", b"hello\n"), remote=remote)
    offline = _deliver(repository, _set("clients/acme/prod/values.yaml", b"ours\n"), remote=down)
    other = repository_open(path=tmp_path / "other.git", branch="main", bootstrap_files={})
    _deliver(other, _set("clients/beta/prod/values.yaml", b"theirs\n"), remote=remote)

    def render_everything(reader):
        return {"clients/acme/prod/values.yaml": b"ours\n", "clients/acme/dev/values.yaml": b"new\n"}

    sync = _deliver(repository, render_everything, remote=remote)

    assert sync.pushed is True
    assert sync.superseded == (offline.commit,)
    assert _remote_file(remote, "clients/acme/prod/values.yaml") == "ours\n"
    assert _remote_file(remote, "clients/beta/prod/values.yaml") == "theirs\n"
    assert _remote_file(remote, "clients/acme/dev/values.yaml") == "new\n"


def _append(file_path: str, line: bytes):
    return lambda reader: {file_path: (reader.read(file_path) or b"") + line}


@pytest.mark.django_db(transaction=True)  # the branch lock is a database lock on PostgreSQL
def test_eight_threads_writing_four_clusters_lose_nothing(repository, remote):
    rounds = 5
    errors: list[BaseException] = []

    def writer(thread: int) -> None:
        file_path = f"clients/acme/c{thread % 4}/values.yaml"
        try:
            for n in range(rounds):
                with branch_lock(repo_path=repository.path):
                    _deliver(repository, _append(file_path, f"t{thread}-{n}\n".encode()), remote=remote)
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
