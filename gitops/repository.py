"""The gitops repository: the only module that imports pygit2.

A bare repository edited in memory: a commit rebuilds only the trees along the paths
it changes (``TreeBuilder`` from the parent's subtrees), so its cost does not grow with
the number of clusters. The branch reference moves by compare-and-swap, and delivery to
an optional remote fetches first, re-renders on the remote tip when someone else
pushed, and never raises for a network failure: the commit then stays local until a
later delivery pushes it.
"""

from __future__ import annotations

import fcntl
import os
import posixpath
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import pygit2
from pygit2.enums import CredentialType, FileMode, ObjectType

REMOTE_NAME = "origin"
_CREDENTIAL_ATTEMPTS = 3
# libgit2 waits for the OS defaults (minutes) otherwise; writers hold the branch lock.
pygit2.settings.server_connect_timeout = 10_000
pygit2.settings.server_timeout = 30_000


class GitopsError(Exception):
    """Base of the typed gitops failures (``code`` is stable; ``status_code`` for HTTP)."""

    code = "gitops_error"
    status_code = 500


class GitopsUnavailable(GitopsError):
    """Not even a local commit could be made: nothing was changed."""

    code = "gitops_unavailable"
    status_code = 503


class BranchMoved(GitopsError):
    """The branch no longer points at the commit the change was built on."""

    code = "gitops_branch_moved"
    status_code = 409


class InvalidPath(GitopsError, ValueError):
    """A repository path that could escape its folder or name no file."""

    code = "gitops_invalid_path"
    status_code = 400


@dataclass(frozen=True)
class GitIdentity:
    name: str
    email: str


@dataclass(frozen=True)
class RemoteConfig:
    """Where to push. ``token`` is for HTTPS; ``ssh_key_path`` for SSH (user from the URL)."""

    url: str
    token: str | None = field(default=None, repr=False)
    username: str = "x-access-token"
    ssh_key_path: Path | None = None
    ssh_public_key_path: Path | None = None
    ssh_passphrase: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class GitopsRepository:
    """A handle on a bare repository and the branch the portal writes."""

    path: Path
    branch: str

    @property
    def ref_name(self) -> str:
        return f"refs/heads/{self.branch}"

    @property
    def remote_ref_name(self) -> str:
        return f"refs/remotes/{REMOTE_NAME}/{self.branch}"


@dataclass(frozen=True)
class Delivery:
    """The outcome of :func:`changes_deliver`.

    ``commit`` carries the change (None when nothing changed). ``pushed`` is True when the
    branch tip, this change included, is on the remote (or no remote is configured).
    ``superseded`` lists local commits that never reached the remote and were dropped
    because the remote moved: their changes are whatever ``render`` produced again.
    """

    commit: str | None
    pushed: bool
    committed_at: datetime | None
    tip: str | None = None
    superseded: tuple[str, ...] = ()


class TreeReader:
    """Read-only view of one commit's tree, handed to ``render``."""

    def __init__(self, repo: pygit2.Repository, commit_id: str | None) -> None:
        self._repo = repo
        self.commit = commit_id
        self._tree = repo[commit_id].peel(pygit2.Tree) if commit_id else None

    def read(self, file_path: str) -> bytes | None:
        return _tree_file_read(self._repo, self._tree, file_path)

    def list(self, prefix: str = "") -> list[str]:
        return _tree_files_list(self._repo, self._tree, prefix)


Render = Callable[[TreeReader], Mapping[str, bytes | None]]


# --- Paths and trees ---------------------------------------------------------------------


def _path_parts(file_path: str) -> list[str]:
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


def _tree_file_read(repo: pygit2.Repository, tree: pygit2.Tree | None, file_path: str) -> bytes | None:
    *folders, name = _path_parts(file_path)
    for folder in folders:
        tree = _subtree(repo, tree, folder)
    if tree is None or name not in tree:
        return None
    entry = tree[name]
    return repo[entry.id].data if entry.type == ObjectType.BLOB else None


def _tree_files_list(repo: pygit2.Repository, tree: pygit2.Tree | None, prefix: str) -> list[str]:
    prefix = prefix.strip("/")
    if prefix:
        for folder in _path_parts(prefix):
            tree = _subtree(repo, tree, folder)
    if tree is None:
        return []
    found: list[str] = []

    def walk(current: pygit2.Tree, base: str) -> None:
        for entry in current:
            entry_path = posixpath.join(base, entry.name) if base else entry.name
            if entry.type == ObjectType.TREE:
                walk(repo[entry.id], entry_path)
            elif entry.type == ObjectType.BLOB:
                found.append(entry_path)

    walk(tree, prefix)
    return sorted(found)


def _tree_edit(
    repo: pygit2.Repository, tree: pygit2.Tree | None, changes: Mapping[str, bytes | None]
) -> pygit2.Oid | None:
    """The id of ``tree`` with ``changes`` applied, or None when the result is empty.

    Only the trees on the changed paths are rebuilt; every other subtree is reused by id.
    """
    files: dict[str, bytes | None] = {}
    folders: dict[str, dict[str, bytes | None]] = {}
    for file_path, content in changes.items():
        head, *rest = _path_parts(file_path)
        if rest:
            folders.setdefault(head, {})["/".join(rest)] = content
        else:
            files[head] = content
    builder = repo.TreeBuilder(tree) if tree is not None else repo.TreeBuilder()
    for name, content in files.items():
        if content is None:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            builder.insert(name, repo.create_blob(content), FileMode.BLOB)
    for name, sub_changes in folders.items():
        sub_id = _tree_edit(repo, _subtree(repo, tree, name), sub_changes)
        if sub_id is None:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            builder.insert(name, sub_id, FileMode.TREE)
    if len(builder) == 0:
        return None
    return builder.write()


def _empty_tree(repo: pygit2.Repository) -> pygit2.Oid:
    return repo.TreeBuilder().write()


# --- Branch reference ----------------------------------------------------------------------


@contextmanager
def _ref_guard(repository: GitopsRepository) -> Iterator[None]:
    """Make read-compare-write of the branch atomic across threads and processes."""
    fd = os.open(repository.path / "portal-ref.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _ref_target(repo: pygit2.Repository, ref_name: str) -> str | None:
    try:
        return str(repo.lookup_reference(ref_name).target)
    except KeyError:
        return None


def _ref_swap(
    repository: GitopsRepository,
    repo: pygit2.Repository,
    *,
    ref_name: str,
    expected: str | None,
    new: str,
    message: str,
) -> None:
    """Point ``ref_name`` at ``new`` only if it still points at ``expected``."""
    with _ref_guard(repository):
        current = _ref_target(repo, ref_name)
        if current != expected:
            raise BranchMoved(f"{ref_name} is at {current}, expected {expected}.")
        repo.create_reference_direct(ref_name, pygit2.Oid(hex=new), True, message=message)


def branch_tip(*, repository: GitopsRepository) -> str | None:
    """The commit the branch points at (None for an empty repository)."""
    return _ref_target(_open(repository), repository.ref_name)


def branch_update(*, repository: GitopsRepository, expected_tip: str | None, new_tip: str) -> None:
    """Compare-and-swap the branch: raise :class:`BranchMoved` if it left ``expected_tip``."""
    repo = _open(repository)
    _ref_swap(
        repository,
        repo,
        ref_name=repository.ref_name,
        expected=expected_tip,
        new=new_tip,
        message="portal: update",
    )


# --- Opening and reading -------------------------------------------------------------------


_thread_repositories = threading.local()
_OPEN_HANDLES_PER_THREAD = 4


def _open(repository: GitopsRepository) -> pygit2.Repository:
    """This thread's handle on the repository (pygit2 handles must not be shared between threads).

    Reusing it saves reopening the object database on every call; references and new
    objects are still read from disk each time, so other processes' commits are seen.
    """
    handles: dict[str, pygit2.Repository] = getattr(_thread_repositories, "handles", None) or {}
    _thread_repositories.handles = handles
    key = str(repository.path)
    handle = handles.get(key)
    if handle is not None and (repository.path / "HEAD").exists():
        return handle
    try:
        handle = pygit2.Repository(key)
    except pygit2.GitError as error:
        raise GitopsUnavailable(f"The gitops repository cannot be opened: {error}") from error
    handles[key] = handle
    while len(handles) > _OPEN_HANDLES_PER_THREAD:  # a few repositories per process in practice
        handles.pop(next(iter(handles)))
    return handle


def _signature(identity: GitIdentity, when: datetime) -> pygit2.Signature:
    return pygit2.Signature(identity.name, identity.email, int(when.timestamp()), 0)


def repository_open(
    *,
    path: Path,
    branch: str,
    bootstrap_files: Mapping[str, bytes],
    committer: GitIdentity | None = None,
) -> GitopsRepository:
    """Open the bare repository, creating it with one commit of ``bootstrap_files`` if missing."""
    repository = GitopsRepository(path=Path(path), branch=branch)
    try:
        if not (repository.path / "HEAD").exists():
            repository.path.mkdir(parents=True, exist_ok=True)
            pygit2.init_repository(str(repository.path), bare=True, initial_head=branch)
            # The 256 loose-object folders up front: otherwise early commits pay a mkdir each.
            for fanout in range(256):
                (repository.path / "objects" / f"{fanout:02x}").mkdir(exist_ok=True)
        repo = _open(repository)
    except (OSError, pygit2.GitError) as error:
        raise GitopsUnavailable(f"The gitops repository cannot be created: {error}") from error
    if _ref_target(repo, repository.ref_name) is None and bootstrap_files:
        identity = committer or GitIdentity(name="Qdrant Portal", email="portal@qdrant-portal.local")
        try:
            files_commit(
                repository=repository,
                changes=bootstrap_files,
                author=identity,
                committer=identity,
                message="Bootstrap the gitops repository\n",
                expected_tip=None,
            )
        except BranchMoved:
            pass  # another process bootstrapped it first
    return repository


def file_read(*, repository: GitopsRepository, file_path: str, commit: str | None = None) -> bytes | None:
    """A file's content at ``commit`` (default: the branch tip), or None if absent."""
    repo = _open(repository)
    return TreeReader(repo, commit or _ref_target(repo, repository.ref_name)).read(file_path)


def files_list(*, repository: GitopsRepository, prefix: str = "", commit: str | None = None) -> list[str]:
    """Every file path under ``prefix`` at ``commit`` (default: the branch tip), sorted."""
    repo = _open(repository)
    return TreeReader(repo, commit or _ref_target(repo, repository.ref_name)).list(prefix)


def blobs_read(*, repository: GitopsRepository) -> Iterator[bytes]:
    """Every blob stored in the repository, reachable or not (for secret-leak checks)."""
    repo = _open(repository)
    for oid in repo.odb:
        obj = repo.get(oid)
        if obj is not None and obj.type == ObjectType.BLOB:
            yield obj.data


@dataclass(frozen=True)
class CommitInfo:
    id: str
    parents: tuple[str, ...]
    author: GitIdentity
    committer: GitIdentity
    message: str
    committed_at: datetime


def commit_read(*, repository: GitopsRepository, commit: str) -> CommitInfo:
    repo = _open(repository)
    found = repo[commit].peel(pygit2.Commit)
    return CommitInfo(
        id=str(found.id),
        parents=tuple(str(parent) for parent in found.parent_ids),
        author=GitIdentity(name=found.author.name, email=found.author.email),
        committer=GitIdentity(name=found.committer.name, email=found.committer.email),
        message=found.message,
        committed_at=datetime.fromtimestamp(found.commit_time, tz=UTC),
    )


def commits_list(*, repository: GitopsRepository, limit: int = 1000) -> list[CommitInfo]:
    """The branch history, newest first (first parents only)."""
    repo = _open(repository)
    result: list[CommitInfo] = []
    current = _ref_target(repo, repository.ref_name)
    while current is not None and len(result) < limit:
        info = commit_read(repository=repository, commit=current)
        result.append(info)
        current = info.parents[0] if info.parents else None
    return result


# --- Committing ----------------------------------------------------------------------------


def _commit_build(
    repo: pygit2.Repository,
    *,
    base: str | None,
    changes: Mapping[str, bytes | None],
    author: GitIdentity,
    committer: GitIdentity,
    message: str,
    when: datetime,
) -> str | None:
    """Write the commit object for ``changes`` on ``base``; None when the tree is unchanged."""
    base_tree = repo[base].peel(pygit2.Tree) if base else None
    new_tree = _tree_edit(repo, base_tree, changes) or _empty_tree(repo)
    old_tree = base_tree.id if base_tree is not None else _empty_tree(repo)
    if new_tree == old_tree:
        return None
    commit_id = repo.create_commit(
        None,
        _signature(author, when),
        _signature(committer, when),
        message,
        new_tree,
        [pygit2.Oid(hex=base)] if base else [],
    )
    return str(commit_id)


def files_commit(
    *,
    repository: GitopsRepository,
    changes: Mapping[str, bytes | None],
    author: GitIdentity,
    committer: GitIdentity,
    message: str,
    expected_tip: str | None,
) -> str | None:
    """Commit ``changes`` (None deletes a file) on ``expected_tip`` and move the branch there.

    Returns the new commit id, or None when the tree would not change (no empty commits).
    Raises :class:`BranchMoved` if the branch is no longer at ``expected_tip``.
    """
    repo = _open(repository)
    try:
        commit_id = _commit_build(
            repo,
            base=expected_tip,
            changes=changes,
            author=author,
            committer=committer,
            message=message,
            when=datetime.now(tz=UTC),
        )
        if commit_id is None:
            return None
        _ref_swap(
            repository,
            repo,
            ref_name=repository.ref_name,
            expected=expected_tip,
            new=commit_id,
            message=f"portal: {message.splitlines()[0] if message else 'commit'}",
        )
    except (OSError, pygit2.GitError) as error:
        raise GitopsUnavailable(f"The change could not be committed: {error}") from error
    return commit_id


# --- Remote --------------------------------------------------------------------------------


class _Callbacks(pygit2.RemoteCallbacks):
    def __init__(self, remote: RemoteConfig) -> None:
        super().__init__()
        self._remote = remote
        self._attempts = 0
        self.rejected: dict[str, str] = {}

    def credentials(self, url, username_from_url, allowed_types):  # noqa: ANN001, ANN201
        self._attempts += 1
        if self._attempts > _CREDENTIAL_ATTEMPTS:
            raise pygit2.GitError("The gitops remote refused the credentials.")
        remote = self._remote
        if allowed_types & CredentialType.SSH_KEY and remote.ssh_key_path is not None:
            return pygit2.Keypair(
                username_from_url or "git",
                str(remote.ssh_public_key_path) if remote.ssh_public_key_path else None,
                str(remote.ssh_key_path),
                remote.ssh_passphrase or "",
            )
        if allowed_types & CredentialType.USERPASS_PLAINTEXT and remote.token:
            return pygit2.UserPass(username_from_url or remote.username, remote.token)
        raise pygit2.GitError("No credentials configured for the gitops remote.")

    def push_update_reference(self, refname, message):  # noqa: ANN001, ANN201
        if message:
            self.rejected[refname] = message


def _remote_fetch(
    repository: GitopsRepository, repo: pygit2.Repository, remote: RemoteConfig
) -> tuple[bool, str | None]:
    """Fetch the branch: (reachable, remote tip). Never raises for a network failure."""
    try:
        handle = repo.remotes.create_anonymous(remote.url)
        handle.fetch(
            [f"+refs/heads/{repository.branch}:{repository.remote_ref_name}"],
            callbacks=_Callbacks(remote),
        )
    except (pygit2.GitError, OSError, ValueError):
        return False, None
    return True, _ref_target(repo, repository.remote_ref_name)


def _remote_push(repository: GitopsRepository, repo: pygit2.Repository, remote: RemoteConfig) -> bool:
    """Push the branch (never forced). False when rejected or unreachable."""
    callbacks = _Callbacks(remote)
    try:
        handle = repo.remotes.create_anonymous(remote.url)
        handle.push([f"{repository.ref_name}:{repository.ref_name}"], callbacks=callbacks)
    except (pygit2.GitError, OSError, ValueError):
        return False
    return not callbacks.rejected


def _is_ancestor(repo: pygit2.Repository, ancestor: str, descendant: str) -> bool:
    if ancestor == descendant:
        return True
    return repo.descendant_of(pygit2.Oid(hex=descendant), pygit2.Oid(hex=ancestor))


def _pending_commits(repo: pygit2.Repository, local: str, remote_tip: str | None) -> tuple[str, ...]:
    """Local commits not on the remote, newest first."""
    pending: list[str] = []
    walker = repo.walk(pygit2.Oid(hex=local))
    if remote_tip is not None:
        walker.hide(pygit2.Oid(hex=remote_tip))
    for found in walker:
        pending.append(str(found.id))
    return tuple(pending)


def tree_reader(*, repository: GitopsRepository, remote: RemoteConfig | None = None) -> TreeReader:
    """A reader of the branch as the remote has it (fetched first), or of the local tip."""
    repo = _open(repository)
    tip = _ref_target(repo, repository.ref_name)
    if remote is not None:
        reachable, remote_tip = _remote_fetch(repository, repo, remote)
        if not reachable:
            raise GitopsUnavailable("The gitops remote cannot be reached.")
        tip = remote_tip or tip
    return TreeReader(repo, tip)


# --- Delivery ------------------------------------------------------------------------------


def changes_deliver(
    *,
    repository: GitopsRepository,
    render: Render,
    author: GitIdentity,
    committer: GitIdentity,
    message: str,
    remote: RemoteConfig | None = None,
    push_retries: int = 5,
) -> Delivery:
    """Commit what ``render`` returns for the current tip, then push it if there is a remote.

    ``render`` gets a :class:`TreeReader` of the commit the change is built on and returns
    ``{path: content or None}``; it may be called several times, each time on a newer tip:
    after the branch moved locally, or after a push was refused because the remote moved
    (the change is then rendered again on the fetched tip, at most ``push_retries`` times).
    Pending local commits go out with the next successful push. A remote that cannot be
    reached is not an error: the commit stays local and ``pushed`` is False.
    Raises :class:`GitopsUnavailable` only when not even the local commit can be made.
    """
    superseded: list[str] = []
    own_commits: set[str] = set()
    attempts = 0
    while True:
        attempts += 1
        repo = _open(repository)
        local_tip = _ref_target(repo, repository.ref_name)
        reachable, remote_tip = (False, None) if remote is None else _remote_fetch(repository, repo, remote)
        base = local_tip
        if reachable and remote_tip is not None:
            if local_tip is None or _is_ancestor(repo, local_tip, remote_tip):
                base = remote_tip
            elif not _is_ancestor(repo, remote_tip, local_tip):
                # Diverged: our unpushed commits are rebuilt by rendering on the remote tip.
                for dropped in _pending_commits(repo, local_tip, remote_tip):
                    if dropped not in own_commits and dropped not in superseded:
                        superseded.append(dropped)
                base = remote_tip
        when = datetime.now(tz=UTC)
        try:
            commit_id = _commit_build(
                repo,
                base=base,
                changes=render(TreeReader(repo, base)),
                author=author,
                committer=committer,
                message=message,
                when=when,
            )
            new_tip = commit_id or base
            if commit_id is not None:
                own_commits.add(commit_id)
            if new_tip is not None and new_tip != local_tip:
                _ref_swap(
                    repository,
                    repo,
                    ref_name=repository.ref_name,
                    expected=local_tip,
                    new=new_tip,
                    message=f"portal: {message.splitlines()[0] if message else 'deliver'}",
                )
        except BranchMoved:
            if attempts > push_retries:
                raise GitopsUnavailable(
                    "The gitops branch kept moving; the change was not committed."
                ) from None
            continue
        except (OSError, pygit2.GitError) as error:
            raise GitopsUnavailable(f"The change could not be committed: {error}") from error

        committed_at = when if commit_id is not None else None
        result = Delivery(
            commit=commit_id,
            pushed=remote is None,
            committed_at=committed_at,
            tip=new_tip,
            superseded=tuple(superseded),
        )
        if remote is None or not reachable:
            return result
        if new_tip is None or new_tip == remote_tip:
            return replace(result, pushed=True)
        if _remote_push(repository, repo, remote):
            with _ref_guard(repository):
                repo.create_reference_direct(repository.remote_ref_name, pygit2.Oid(hex=new_tip), True)
            return replace(result, pushed=True)
        # Refused or unreachable: a fresh fetch tells which. Either way the commit is kept
        # locally; when the remote moved, undo ours so the next round re-renders it there.
        still_reachable, moved_tip = _remote_fetch(repository, repo, remote)
        if not still_reachable or moved_tip is None or _is_ancestor(repo, moved_tip, new_tip):
            return result
        if attempts > push_retries:
            return result
        if commit_id is not None:
            try:
                _ref_swap(
                    repository,
                    repo,
                    ref_name=repository.ref_name,
                    expected=commit_id,
                    new=base if base is not None else commit_id,
                    message="portal: re-render on the remote tip",
                )
            except BranchMoved:
                pass  # someone committed on top meanwhile; the next round rebuilds on the remote
