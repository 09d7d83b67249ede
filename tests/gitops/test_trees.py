"""Trees are edited along the changed paths only, and paths that could escape are refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pygit2
import pytest

from gitops.errors import InvalidPath
from gitops.repository import GitopsRepository, branch_tip, files_commit, repository_handle
from gitops.trees import TreeReader, commit_build, path_parts, tree_edit

from .conftest import ALICE, PORTAL

SIGNATURE = pygit2.Signature(ALICE.name, ALICE.email, 1_700_000_000, 0)


def _git(repo_path: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(repo_path), *args], check=True, capture_output=True, text=True
    ).stdout


def _commit(repository: GitopsRepository, changes: dict[str, bytes | None]) -> str | None:
    return files_commit(
        repository=repository,
        changes=changes,
        author=ALICE,
        committer=PORTAL,
        message="change\n",
        expected_tip=branch_tip(repository=repository),
    )


def _object_count(repository: GitopsRepository) -> int:
    return sum(1 for _ in repository_handle(repository).odb)


@pytest.mark.parametrize(
    "bad_path",
    ["", "/etc/passwd", "clients/../x", "clients//x", "./x", "clients/.git/config", "a\\b", "x/", "a\x00b"],
)
def test_unsafe_paths_are_refused(repository, bad_path):
    with pytest.raises(InvalidPath):
        path_parts(bad_path)
    with pytest.raises(InvalidPath):
        _commit(repository, {bad_path: b"x"})


def test_invalid_path_is_also_a_value_error():
    with pytest.raises(ValueError):
        path_parts("../x")


def test_a_bad_path_among_good_ones_writes_no_object(repository):
    before = _object_count(repository)

    with pytest.raises(InvalidPath):
        _commit(repository, {"clients/acme/prod/values.yaml": b"fine\n", "clients/../escape": b"x"})

    assert _object_count(repository) == before


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

    reader = TreeReader(repository_handle(repository), branch_tip(repository=repository))
    assert reader.list("clients") == ["clients/acme/dev/values.yaml"]
    assert "prod" not in _git(repository.path, "ls-tree", "--name-only", "main:clients/acme").split()


def test_deleting_a_file_that_is_not_there_changes_nothing(repository):
    handle = repository_handle(repository)
    tip = branch_tip(repository=repository)

    commit = commit_build(
        handle, base=tip, changes={"nowhere/x.yaml": None}, author=SIGNATURE, committer=SIGNATURE, message="x"
    )

    assert commit is None


def test_an_unchanged_tree_builds_no_commit(repository):
    handle = repository_handle(repository)
    tip = branch_tip(repository=repository)

    same = commit_build(
        handle,
        base=tip,
        changes={"README.md": b"hello\n"},
        author=SIGNATURE,
        committer=SIGNATURE,
        message="x",
    )
    nothing_on_nothing = commit_build(
        handle, base=None, changes={}, author=SIGNATURE, committer=SIGNATURE, message="x"
    )

    assert same is None
    assert nothing_on_nothing is None


def test_commit_build_writes_a_commit_on_its_base_and_moves_no_branch(repository):
    handle = repository_handle(repository)
    tip = branch_tip(repository=repository)

    commit = commit_build(
        handle,
        base=tip,
        changes={"a/b.txt": b"b\n"},
        author=SIGNATURE,
        committer=SIGNATURE,
        message="add b\n",
    )

    assert branch_tip(repository=repository) == tip
    built = handle[commit].peel(pygit2.Commit)
    assert [str(parent) for parent in built.parent_ids] == [tip]
    assert built.message == "add b\n"
    assert TreeReader(handle, commit).list() == ["README.md", "a/b.txt"]


def test_deleting_every_file_leaves_the_empty_tree(repository):
    handle = repository_handle(repository)

    commit = commit_build(
        handle,
        base=branch_tip(repository=repository),
        changes={"README.md": None},
        author=SIGNATURE,
        committer=SIGNATURE,
        message="empty\n",
    )

    assert TreeReader(handle, commit).list() == []
    assert handle[commit].peel(pygit2.Commit).tree_id == handle.TreeBuilder().write()


def test_tree_edit_reuses_untouched_subtrees_by_id(repository):
    handle = repository_handle(repository)
    base = handle[
        commit_build(
            handle,
            base=None,
            changes={"x/1.txt": b"1", "y/2.txt": b"2"},
            author=SIGNATURE,
            committer=SIGNATURE,
            message="m",
        )
    ].peel(pygit2.Tree)

    edited = handle[tree_edit(handle, base, {"x/1.txt": b"one"})]

    assert edited["y"].id == base["y"].id
    assert edited["x"].id != base["x"].id


def test_reader_reads_files_lists_folders_and_answers_none_for_the_rest(repository):
    _commit(repository, {"clients/acme/prod/values.yaml": b"v\n", "clients/acme/client.yaml": b"c\n"})
    reader = TreeReader(repository_handle(repository), branch_tip(repository=repository))

    assert reader.read("clients/acme/prod/values.yaml") == b"v\n"
    assert reader.read("clients/acme/prod") is None  # a folder is not a file
    assert reader.read("clients/nobody/values.yaml") is None
    assert reader.list("clients/acme") == ["clients/acme/client.yaml", "clients/acme/prod/values.yaml"]
    assert reader.list("/clients/acme/prod/") == ["clients/acme/prod/values.yaml"]
    assert reader.list("clients/nobody") == []
    with pytest.raises(InvalidPath):
        reader.read("../outside")


def test_a_reader_of_no_commit_is_empty(repository):
    reader = TreeReader(repository_handle(repository), None)

    assert reader.commit is None
    assert reader.read("README.md") is None
    assert reader.list() == []
