"""repository_compact packs every object with pygit2 and deletes only what the new pack holds."""

from __future__ import annotations

import logging
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

from gitops import repository as gitops_repository
from gitops.repository import (
    GitopsRepository,
    blobs_read,
    branch_tip,
    commits_list,
    file_read,
    files_commit,
    repository_compact,
    repository_open,
)

from .conftest import ALICE, PORTAL


def _git(repository: GitopsRepository, *args: str, stdin: bytes | None = None) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repository.path), *args],
        check=True,
        capture_output=True,
        input=stdin,
    ).stdout.decode()


def _fsck(repository: GitopsRepository) -> None:
    _git(repository, "fsck", "--full", "--strict")


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


def _packs(repository: GitopsRepository) -> set[str]:
    return {name for name in os.listdir(repository.path / "objects" / "pack") if name.endswith(".idx")}


def _objects_total(repository: GitopsRepository) -> int:
    return len(_git(repository, "cat-file", "--batch-all-objects", "--batch-check").splitlines())


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


def test_commits_write_loose_objects_git_reads(repository):
    commit = _commit(repository, 1)

    assert _packs(repository) == set()
    assert len(_loose_objects(repository)) > 0
    _fsck(repository)
    assert _git(repository, "rev-parse", "main").strip() == commit
    assert _git(repository, "show", "main:clients/client1/cluster1/values.yaml") == "replicaCount: 1\n"


def test_compact_packs_every_object_into_one_pack_and_removes_the_loose_ones(repository):
    commits = [_commit(repository, index) for index in range(12)]
    total = _objects_total(repository)

    packed = repository_compact(repository=repository)

    assert packed == total
    assert len(_packs(repository)) == 1
    assert _loose_objects(repository) == []
    _fsck(repository)
    assert [info.id for info in commits_list(repository=repository)][: len(commits)] == commits[::-1]
    for index, commit in enumerate(commits):
        path = f"clients/client1/cluster{index % 3}/values.yaml"
        assert (
            file_read(repository=repository, file_path=path, commit=commit)
            == f"replicaCount: {index}\n".encode()
        )


def test_compact_keeps_unreachable_objects(repository):
    _commit(repository, 1)
    files_commit(
        repository=repository,
        changes={"secret.txt": b"old-content-4711\n"},
        author=ALICE,
        committer=PORTAL,
        message="m\n",
        expected_tip=branch_tip(repository=repository),
    )
    _commit(repository, 2)
    files_commit(
        repository=repository,
        changes={"secret.txt": b"new\n"},
        author=ALICE,
        committer=PORTAL,
        message="m\n",
        expected_tip=branch_tip(repository=repository),
    )

    repository_compact(repository=repository)

    assert b"old-content-4711\n" in list(blobs_read(repository=repository))


def test_compacting_again_merges_older_packs_and_new_loose_objects(repository):
    _commit(repository, 0)
    repository_compact(repository=repository)
    first_pack = _packs(repository)
    later = [_commit(repository, index) for index in range(1, 6)]

    packed = repository_compact(repository=repository)

    assert packed == _objects_total(repository)
    assert len(_packs(repository)) == 1
    assert _packs(repository) != first_pack
    assert _loose_objects(repository) == []
    _fsck(repository)
    assert _git(repository, "rev-parse", "main").strip() == later[-1]


def test_compacting_a_compact_repository_changes_nothing(repository, caplog):
    _commit(repository, 0)
    with caplog.at_level(logging.INFO, logger="gitops.repository"):
        first = repository_compact(repository=repository)
        pack = _packs(repository)
        told = [record.getMessage() for record in caplog.records]
        caplog.clear()

        again = repository_compact(repository=repository)

    assert again == first
    assert _packs(repository) == pack
    _fsck(repository)
    # The first one removed loose objects and says so; the second found nothing to do and
    # says nothing at INFO (a CronJob's log is not a line per run).
    assert len(told) == 1 and told[0].startswith("Compacted ")
    assert caplog.records == []


def test_an_empty_repository_compacts_to_nothing(tmp_path):
    empty = repository_open(path=tmp_path / "empty.git", branch="main", bootstrap_files={})

    assert repository_compact(repository=empty) == 0
    assert _packs(empty) == set()


def test_a_pack_marked_keep_is_never_removed(repository):
    _commit(repository, 0)
    repository_compact(repository=repository)
    (kept,) = _packs(repository)
    keep = repository.path / "objects" / "pack" / kept.replace(".idx", ".keep")
    keep.write_bytes(b"operator\n")
    _commit(repository, 1)

    repository_compact(repository=repository)

    assert kept in _packs(repository)
    assert (repository.path / "objects" / "pack" / kept.replace(".idx", ".pack")).exists()
    assert len(_packs(repository)) == 2
    _fsck(repository)


def test_objects_written_during_compaction_are_never_removed(repository, monkeypatch):
    """A loose object and a pack that appear after the pack was built hold objects it lacks: kept."""
    _commit(repository, 0)
    pack_everything = gitops_repository._pack_everything
    late: dict[str, str] = {}

    def pack_then_write(repository_arg, staging):
        result = pack_everything(repository_arg, staging)
        late["loose"] = _git(repository, "hash-object", "-w", "--stdin", stdin=b"late loose\n").strip()
        blob = _git(repository, "hash-object", "-w", "--stdin", stdin=b"late packed\n").strip()
        _git(
            repository,
            "pack-objects",
            "-q",
            str(repository.path / "objects" / "pack" / "pack"),
            stdin=blob.encode(),
        )
        late["packed"] = blob
        return result

    monkeypatch.setattr(gitops_repository, "_pack_everything", pack_then_write)

    repository_compact(repository=repository)

    assert len(_packs(repository)) == 2
    assert _git(repository, "cat-file", "-p", late["loose"]) == "late loose\n"
    assert _git(repository, "cat-file", "-p", late["packed"]) == "late packed\n"
    _fsck(repository)


def test_a_thread_that_read_before_compaction_reads_every_commit_after(repository):
    """Threads keep their own handles; a compaction elsewhere must not break them or pin deleted packs."""
    first = _commit(repository, 0)
    repository_compact(repository=repository)
    with ThreadPoolExecutor(max_workers=1) as same_thread:
        assert (
            same_thread.submit(file_read, repository=repository, file_path="README.md").result() == b"hello\n"
        )
        commits = [first] + [_commit(repository, index) for index in range(1, 8)]
        repository_compact(repository=repository)

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


def test_commits_after_compaction_are_readable_by_git(repository):
    _commit(repository, 0)
    repository_compact(repository=repository)

    commit = _commit(repository, 1)

    _fsck(repository)
    assert _git(repository, "rev-parse", "main").strip() == commit
    assert _git(repository, "show", "main:clients/client1/cluster1/values.yaml") == "replicaCount: 1\n"


@pytest.mark.parametrize("clusters", [200])
def test_compaction_of_a_large_commit_passes_fsck(repository, clusters):
    files_commit(
        repository=repository,
        changes={f"clients/c{i // 50}/k{i % 50}/values.yaml": f"n: {i}\n".encode() for i in range(clusters)},
        author=ALICE,
        committer=PORTAL,
        message="many\n",
        expected_tip=branch_tip(repository=repository),
    )

    packed = repository_compact(repository=repository)

    assert packed == _objects_total(repository)
    _fsck(repository)
