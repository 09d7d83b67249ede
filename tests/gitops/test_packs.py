"""Objects reach the disk as one pack per commit, and small packs are merged without losing any."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from gitops import repository as gitops_repository
from gitops.repository import (
    PACKS_BEFORE_MERGE,
    GitopsRepository,
    branch_tip,
    commits_list,
    file_read,
    files_commit,
    packs_list,
    packs_to_merge,
    repository_open,
)

from .conftest import ALICE, PORTAL

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _git(repository: GitopsRepository, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repository.path), *args], check=True, capture_output=True, text=True
    ).stdout


def _commit(repository: GitopsRepository, index: int) -> str:
    commit = files_commit(
        repository=repository,
        changes={f"clients/client1/cluster{index % 3}/values.yaml": f"replicaCount: {index}\n".encode()},
        author=ALICE,
        committer=PORTAL,
        message=f"change {index}\n",
        expected_tip=branch_tip(repository=repository),
    )
    assert commit is not None
    return commit


def _loose_objects(repository: GitopsRepository) -> list[str]:
    objects = repository.path / "objects"
    return [
        f"{folder.name}/{name}"
        for folder in objects.iterdir()
        if len(folder.name) == 2 and folder.is_dir()
        for name in os.listdir(folder)
    ]


def _pack_files(repository: GitopsRepository) -> set[str]:
    return {name for name in os.listdir(repository.path / "objects" / "pack") if name.endswith(".idx")}


def _deleted_packs_held_open() -> list[str]:
    held = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if ".pack" in target and target.endswith("(deleted)"):
            held.append(target)
    return held


def test_a_commit_writes_its_objects_as_one_pack_and_no_loose_objects(repository):
    packs_before = _pack_files(repository)

    commit = _commit(repository, 1)

    assert len(_pack_files(repository) - packs_before) == 1
    assert _loose_objects(repository) == []
    # git itself reads the result: a valid repository with the new file on the branch
    _git(repository, "fsck", "--full", "--strict", "--no-dangling")
    assert _git(repository, "rev-parse", "main").strip() == commit
    assert _git(repository, "show", "main:clients/client1/cluster1/values.yaml") == "replicaCount: 1\n"


def test_many_commits_keep_the_pack_count_bounded_and_every_commit_readable(repository):
    commits = [_commit(repository, index) for index in range(3 * PACKS_BEFORE_MERGE)]

    assert len(packs_list(repository=repository)) <= PACKS_BEFORE_MERGE
    _git(repository, "fsck", "--full", "--strict", "--no-dangling")
    assert [info.id for info in commits_list(repository=repository)][: len(commits)] == commits[::-1]
    for index, commit in enumerate(commits):
        path = f"clients/client1/cluster{index % 3}/values.yaml"
        assert (
            file_read(repository=repository, file_path=path, commit=commit)
            == f"replicaCount: {index}\n".encode()
        )


def test_a_thread_that_read_before_packs_were_merged_reads_every_commit_after(repository):
    """Threads keep their own handles; a merge elsewhere must not break them or pin deleted packs."""
    first = _commit(repository, 0)
    with ThreadPoolExecutor(max_workers=1) as same_thread:
        assert (
            same_thread.submit(file_read, repository=repository, file_path="README.md").result() == b"hello\n"
        )
        commits = [first] + [_commit(repository, index) for index in range(1, 2 * PACKS_BEFORE_MERGE)]
        assert len(packs_list(repository=repository)) <= PACKS_BEFORE_MERGE

        def read_all() -> list[bytes | None]:
            return [
                file_read(
                    repository=repository,
                    file_path=f"clients/client1/cluster{index % 3}/values.yaml",
                    commit=commit,
                )
                for index, commit in enumerate(commits)
            ]

        contents = same_thread.submit(read_all).result()
    assert contents == [f"replicaCount: {index}\n".encode() for index in range(len(commits))]
    assert _deleted_packs_held_open() == []


def test_a_pack_marked_keep_is_never_merged(repository):
    _commit(repository, 0)
    kept = packs_list(repository=repository)[0].index_path
    kept.with_suffix(".keep").write_bytes(b"operator\n")

    for index in range(1, 2 * PACKS_BEFORE_MERGE):
        _commit(repository, index)

    assert kept.exists()
    assert kept.with_suffix(".pack").exists()
    _git(repository, "fsck", "--full", "--strict", "--no-dangling")


@pytest.mark.parametrize(
    ("object_counts", "merged"),
    [
        ([], 0),
        ([7], 0),
        ([5, 10, 20, 40], 0),  # already a geometric progression: nothing to do
        ([6, 6, 10_000], 2),  # the small ones merge; the big base pack stays
        ([6] * 16 + [10_000], 16),
        ([1, 1, 1, 1, 5], 5),  # the merged pack (4) would break the progression with 5: absorbed
        ([6, 6, 300, 10_000], 2),
        ([6] * 10 + [50, 10_000], 11),
    ],
)
def test_packs_to_merge_keeps_a_geometric_progression(object_counts, merged):
    assert packs_to_merge(object_counts) == merged


def test_without_libgit2s_in_memory_store_objects_are_written_loose(tmp_path, monkeypatch):
    """Where the bundled libgit2 cannot be found (not Linux, say), commits still work."""
    monkeypatch.setattr(gitops_repository, "_mempack_library", lambda: None)
    repository = repository_open(path=tmp_path / "loose.git", branch="main", bootstrap_files={"a": b"1\n"})

    commit = _commit(repository, 1)

    assert _pack_files(repository) == set()
    assert len(_loose_objects(repository)) > 0
    _git(repository, "fsck", "--full", "--strict", "--no-dangling")
    assert _git(repository, "rev-parse", "main").strip() == commit


_WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from gitops.repository import BranchMoved, GitIdentity, branch_tip, files_commit, repository_open

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


def test_two_processes_committing_and_merging_packs_lose_nothing(repository):
    per_process = 2 * PACKS_BEFORE_MERGE
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

    _git(repository, "fsck", "--full", "--strict", "--no-dangling")
    assert len(packs_list(repository=repository)) <= PACKS_BEFORE_MERGE + 1
    tree = set(_git(repository, "ls-tree", "-r", "--name-only", "main").split())
    for name in ("alpha", "beta"):
        for index in range(per_process):
            assert f"clients/{name}/c{index}/values.yaml" in tree
    # every commit of both writers is on the branch: none was lost to a race
    assert int(_git(repository, "rev-list", "--count", "main")) == 1 + 2 * per_process
