"""The repository handle: opening, committing, the branch's compare-and-swap, reading."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from gitops.errors import BranchMoved, InvalidPath, RepositoryUnavailable
from gitops.repository import (
    GitopsRepository,
    blobs_read,
    branch_tip,
    branch_update,
    commit_create,
    commit_read,
    commits_list,
    file_read,
    files_commit,
    files_list,
    repository_handle,
    repository_open,
    tree_reader,
)

from .conftest import ALICE, PORTAL

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _git(repo_path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo_path), *args], check=True, capture_output=True, text=True
    ).stdout


def git_fsck_ok(path: Path) -> bool:
    return (
        subprocess.run(["git", "--git-dir", str(path), "fsck", "--strict"], capture_output=True).returncode
        == 0
    )


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


def test_repository_open_creates_a_bare_repository_with_one_bootstrap_commit(tmp_path):
    path = tmp_path / "new.git"
    files = {"argocd/applicationset.yaml": b"kind: ApplicationSet\n", "README.md": b"read me\n"}

    first = repository_open(path=path, branch="main", bootstrap_files=files)
    again = repository_open(path=path, branch="main", bootstrap_files={"other.txt": b"x"})

    assert _git(path, "rev-parse", "--is-bare-repository").strip() == "true"
    assert len(commits_list(repository=again)) == 1
    assert files_list(repository=first) == ["README.md", "argocd/applicationset.yaml"]
    assert git_fsck_ok(path)


def test_bootstrap_files_given_as_a_function_are_rendered_only_for_a_new_branch(tmp_path):
    calls = []

    def bootstrap() -> dict[str, bytes]:
        calls.append(1)
        return {"README.md": b"hello\n"}

    repository_open(path=tmp_path / "lazy.git", branch="main", bootstrap_files=bootstrap)
    repository_open(path=tmp_path / "lazy.git", branch="main", bootstrap_files=bootstrap)

    assert calls == [1]


def test_a_repository_without_bootstrap_files_keeps_an_unborn_branch(tmp_path):
    repository = repository_open(path=tmp_path / "server.git", branch="main", bootstrap_files={})

    assert branch_tip(repository=repository) is None
    assert files_list(repository=repository) == []
    assert commits_list(repository=repository) == []


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
    assert info.committed_at.tzinfo is not None
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


def test_unsafe_paths_are_refused_by_files_commit(repository):
    with pytest.raises(InvalidPath):
        _commit(repository, {"clients/../x": b"x"})


def test_reads_at_an_older_commit_see_that_commit(repository):
    first = _commit(repository, {"a.txt": b"one\n"})
    _commit(repository, {"a.txt": b"two\n", "b.txt": b"b\n"})

    assert file_read(repository=repository, file_path="a.txt", commit=first) == b"one\n"
    assert files_list(repository=repository, commit=first) == ["README.md", "a.txt"]
    assert tree_reader(repository=repository).read("a.txt") == b"two\n"
    assert tree_reader(repository=repository, commit=first).commit == first


def test_commit_create_builds_on_any_base_and_leaves_the_branch_alone(repository):
    start = branch_tip(repository=repository)

    commit = commit_create(
        repository=repository,
        base=start,
        changes={"x.txt": b"x\n"},
        author=ALICE,
        committer=PORTAL,
        message="x\n",
    )

    assert branch_tip(repository=repository) == start
    assert commit_read(repository=repository, commit=commit).parents == (start,)


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


def test_branch_update_creates_an_unborn_branch_only_when_expected(tmp_path, repository):
    empty = repository_open(path=tmp_path / "empty.git", branch="main", bootstrap_files={})
    commit = commit_create(
        repository=empty, base=None, changes={"a": b"a"}, author=ALICE, committer=PORTAL, message="a\n"
    )

    with pytest.raises(BranchMoved):
        branch_update(repository=empty, expected_tip=commit, new_tip=commit)
    branch_update(repository=empty, expected_tip=None, new_tip=commit)
    with pytest.raises(BranchMoved):
        branch_update(repository=empty, expected_tip=None, new_tip=commit)

    assert branch_tip(repository=empty) == commit


def test_a_branch_moved_by_the_git_command_line_is_seen(repository):
    started_on = branch_tip(repository=repository)
    other = _commit(repository, {"x.txt": b"x"})
    branch_update(repository=repository, expected_tip=other, new_tip=started_on)
    _git(repository.path, "update-ref", "refs/heads/main", other)

    with pytest.raises(BranchMoved):
        branch_update(repository=repository, expected_tip=started_on, new_tip=started_on)


def test_threads_racing_on_one_tip_move_the_branch_once(repository):
    start = branch_tip(repository=repository)
    candidates = [
        commit_create(
            repository=repository,
            base=start,
            changes={"race.txt": f"{n}\n".encode()},
            author=ALICE,
            committer=PORTAL,
            message=f"{n}\n",
        )
        for n in range(8)
    ]
    won: list[str] = []
    barrier = threading.Barrier(len(candidates))

    def racer(candidate: str) -> None:
        barrier.wait()
        try:
            branch_update(repository=repository, expected_tip=start, new_tip=candidate)
            won.append(candidate)
        except BranchMoved:
            pass

    threads = [threading.Thread(target=racer, args=(candidate,)) for candidate in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(won) == 1
    assert branch_tip(repository=repository) == won[0]


def test_each_thread_gets_its_own_handle(repository):
    handles = []

    def grab() -> None:
        handles.append(repository_handle(repository))

    thread = threading.Thread(target=grab)
    thread.start()
    thread.join()

    assert repository_handle(repository) is repository_handle(repository)
    assert handles[0] is not repository_handle(repository)


def test_blobs_read_includes_content_no_longer_on_the_branch(repository):
    _commit(repository, {"secret.txt": b"old-content-4711\n"})
    _commit(repository, {"secret.txt": b"new\n"})

    blobs = list(blobs_read(repository=repository))

    assert b"old-content-4711\n" in blobs
    assert b"new\n" in blobs


def test_an_unwritable_repository_raises_repository_unavailable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")

    with pytest.raises(RepositoryUnavailable):
        repository_open(path=blocker / "gitops.git", branch="main", bootstrap_files={"a": b"a"})


def test_a_repository_that_disappeared_raises_repository_unavailable(repository):
    branch_tip(repository=repository)  # this thread now holds a handle on it
    shutil.rmtree(repository.path)

    with pytest.raises(RepositoryUnavailable):
        branch_tip(repository=repository)
    with pytest.raises(RepositoryUnavailable):
        _commit(repository, {"a.txt": b"a"})


def test_a_path_inside_another_repository_is_not_taken_for_it(tmp_path):
    """Opening never searches parent folders: a missing repository is missing, not its parent."""
    outer = repository_open(path=tmp_path / "outer.git", branch="main", bootstrap_files={"a": b"a"})
    inner = outer.path / "inner"
    inner.mkdir()
    (inner / "HEAD").write_text("ref: refs/heads/main\n")

    with pytest.raises(RepositoryUnavailable):
        branch_tip(repository=GitopsRepository(path=inner, branch="main"))


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from gitops.errors import BranchMoved
    from gitops.repository import GitIdentity, branch_tip, files_commit, repository_open

    repository = repository_open(path=Path(sys.argv[1]), branch="main", bootstrap_files={})
    me = GitIdentity(name=sys.argv[2], email=sys.argv[2] + "@example.com")
    for index in range(int(sys.argv[3])):
        while True:
            try:
                files_commit(
                    repository=repository,
                    changes={f"clients/{sys.argv[2]}/c{index}/values.yaml": f"n: {index}\\n".encode()},
                    author=me,
                    committer=me,
                    message=f"{sys.argv[2]} {index}\\n",
                    expected_tip=branch_tip(repository=repository),
                )
                break
            except BranchMoved:
                continue
    """
)


def test_two_processes_committing_lose_nothing(repository):
    per_process = 30
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(repository.path), name, str(per_process)],
            cwd=PROJECT_ROOT,
            stderr=subprocess.PIPE,
        )
        for name in ("alpha", "beta")
    ]
    for writer in writers:
        _, errors = writer.communicate(timeout=120)
        assert writer.returncode == 0, errors.decode()

    _git(repository.path, "fsck", "--full", "--strict", "--no-dangling")
    tree = set(_git(repository.path, "ls-tree", "-r", "--name-only", "main").split())
    for name in ("alpha", "beta"):
        for index in range(per_process):
            assert f"clients/{name}/c{index}/values.yaml" in tree
    # every commit of both writers is on the branch: none was lost to a race
    assert int(_git(repository.path, "rev-list", "--count", "main")) == 1 + 2 * per_process
