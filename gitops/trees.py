"""Trees and commits as git objects: safe paths, reading a tree, editing it, building a commit.

A commit rebuilds only the trees along the paths it changes: a ``TreeBuilder`` starts from
the parent's subtree and every other entry is reused by id. So committing one values file
costs the same in a repository of ten clusters or ten thousand: one blob, one tree per folder
above it, one commit. Objects are written through pygit2's object database (loose objects);
``repository_compact`` packs them later, outside any user's request.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

import pygit2
from pygit2.enums import FileMode, ObjectType

from gitops.errors import InvalidPath


def path_parts(file_path: str) -> list[str]:
    """The folders and file name of a repository path; raise :class:`InvalidPath` if unsafe.

    Refused: empty or absolute paths, backslashes, NUL, empty, ``.`` or ``..`` segments and
    any ``.git`` segment (git itself refuses such trees on checkout).
    """
    parts = file_path.split("/")
    if (
        not file_path
        or file_path.startswith("/")
        or "\\" in file_path
        or "\x00" in file_path
        or any(part in {"", ".", ".."} or part.lower() == ".git" for part in parts)
    ):
        raise InvalidPath(f"Not a safe repository path: {file_path!r}")
    return parts


def _subtree(repo: pygit2.Repository, tree: pygit2.Tree | None, name: str) -> pygit2.Tree | None:
    if tree is None or name not in tree:
        return None
    entry = tree[name]
    return repo[entry.id] if entry.type == ObjectType.TREE else None


class TreeReader:
    """Read-only view of one commit's tree (``commit`` None: an empty repository).

    Holds a pygit2 handle, so it belongs to the thread that made it, like the handle.
    """

    def __init__(self, repo: pygit2.Repository, commit: str | None) -> None:
        self._handle = repo
        self.commit = commit
        self._tree = repo[commit].peel(pygit2.Tree) if commit else None

    def read(self, file_path: str) -> bytes | None:
        """A file's content, or None when there is no file at that path."""
        *folders, name = path_parts(file_path)
        tree = self._tree
        for folder in folders:
            tree = _subtree(self._handle, tree, folder)
        if tree is None or name not in tree:
            return None
        entry = tree[name]
        return self._handle[entry.id].data if entry.type == ObjectType.BLOB else None

    def list(self, prefix: str = "") -> list[str]:
        """Every file path under the folder ``prefix`` (default: the whole tree), sorted."""
        prefix = prefix.strip("/")
        tree = self._tree
        for folder in path_parts(prefix) if prefix else []:
            tree = _subtree(self._handle, tree, folder)
        found: list[str] = []
        if tree is not None:
            self._walk(tree, prefix, found)
        return sorted(found)

    def _walk(self, tree: pygit2.Tree, base: str, found: list[str]) -> None:
        for entry in tree:
            entry_path = posixpath.join(base, entry.name) if base else entry.name
            if entry.type == ObjectType.TREE:
                self._walk(self._handle[entry.id], entry_path, found)
            elif entry.type == ObjectType.BLOB:
                found.append(entry_path)


def _changes_split(
    changes: Mapping[str, bytes | None],
) -> tuple[dict[str, bytes | None], dict[str, dict[str, bytes | None]]]:
    """The changes to files of this folder, and those below each subfolder (paths relative to it)."""
    files: dict[str, bytes | None] = {}
    folders: dict[str, dict[str, bytes | None]] = {}
    for file_path, content in changes.items():
        head, *rest = path_parts(file_path)
        if rest:
            folders.setdefault(head, {})["/".join(rest)] = content
        else:
            files[head] = content
    return files, folders


def _entry_set(builder: pygit2.TreeBuilder, name: str, object_id: pygit2.Oid | None, mode: int) -> None:
    """Insert or replace ``name``; remove it when ``object_id`` is None."""
    if object_id is not None:
        builder.insert(name, object_id, mode)
    elif builder.get(name) is not None:
        builder.remove(name)


def tree_edit(
    repo: pygit2.Repository, tree: pygit2.Tree | None, changes: Mapping[str, bytes | None]
) -> pygit2.Oid | None:
    """The id of ``tree`` with ``changes`` applied (None deletes), or None when the result is empty.

    Only the trees on the changed paths are rebuilt; every other subtree is reused by id.
    A folder left empty disappears, as git has no empty trees below the root.
    """
    files, folders = _changes_split(changes)
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    for name, content in files.items():
        _entry_set(builder, name, None if content is None else repo.create_blob(content), FileMode.BLOB)
    for name, sub_changes in folders.items():
        _entry_set(builder, name, tree_edit(repo, _subtree(repo, tree, name), sub_changes), FileMode.TREE)
    if len(builder) == 0:
        return None
    return builder.write()


def commit_build(
    repo: pygit2.Repository,
    *,
    base: str | None,
    changes: Mapping[str, bytes | None],
    author: pygit2.Signature,
    committer: pygit2.Signature,
    message: str,
) -> str | None:
    """Write the commit of ``changes`` on ``base`` (no reference moves); None when the tree is unchanged.

    Every path is checked before any object is written, so a bad path leaves nothing behind.
    """
    for file_path in changes:
        path_parts(file_path)
    base_tree = repo[base].peel(pygit2.Tree) if base else None
    new_tree = tree_edit(repo, base_tree, changes) or repo.TreeBuilder().write()
    old_tree = base_tree.id if base_tree is not None else repo.TreeBuilder().write()
    if new_tree == old_tree:
        return None
    parents = [pygit2.Oid(hex=base)] if base else []
    return str(repo.create_commit(None, author, committer, message, new_tree, parents))
