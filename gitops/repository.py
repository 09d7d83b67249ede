"""The gitops repository: a bare git repository and the one branch the portal writes.

Commits are built in memory from the parent's trees (``gitops.trees``) and the branch moves
by compare-and-swap, so a commit never needs a work tree or an index and its cost does not
grow with the number of clusters. Objects are written loose through pygit2's object
database; :func:`repository_compact` packs them with pygit2's own pack builder, from
housekeeping (``gitops_sync``), never in a user's request.

pygit2 handles must not be shared between threads: each thread keeps its own, reopened after
the repository was compacted so it lets go of deleted pack files.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pygit2
from pygit2.enums import ObjectType, RepositoryOpenFlag

from gitops.errors import BranchMoved, RepositoryUnavailable
from gitops.trees import TreeReader, commit_build

logger = logging.getLogger(__name__)

REMOTE_NAME = "origin"
# Renamed over after each compaction: handles opened before it reopen (see repository_handle).
_COMPACTED_MARKER = "portal-compacted"
_REF_LOCK_FILE = "portal-ref.lock"
_HANDLES_PER_THREAD = 4  # a few repositories per process in practice
_OPEN_FLAGS = RepositoryOpenFlag.NO_SEARCH | RepositoryOpenFlag.BARE
_LOOSE_OBJECT_NAME = re.compile(r"[0-9a-f]{40}")
DEFAULT_COMMITTER_NAME = "Qdrant Portal"
DEFAULT_COMMITTER_EMAIL = "portal@qdrant-portal.local"


_SIGNATURE_TRIMMED = " .,:;<>\"\\'"  # what git (libgit2's extract_trimmed) trims from either end


def _signature_text(text: str) -> str:
    spaced = "".join(" " if char in "<>" or ord(char) < 32 or ord(char) == 127 else char for char in text)
    return " ".join(spaced.split()).strip(_SIGNATURE_TRIMMED)


@dataclass(frozen=True)
class GitIdentity:
    """A name and email as git records them: any text is made into one git accepts.

    A person's display name is free text: git refuses a signature with angle brackets, or whose
    name is empty once it trims its "crud" from both ends ("."), and a newline would end the
    author line. A refused signature would stop every change queued behind it, so angle
    brackets and control characters become spaces and an empty name falls back to the email.
    """

    name: str
    email: str

    def __post_init__(self) -> None:
        email = _signature_text(self.email) or "unknown"
        object.__setattr__(self, "email", email)
        object.__setattr__(self, "name", _signature_text(self.name) or email)


@dataclass(frozen=True)
class GitopsRepository:
    """A bare repository on disk and the branch the portal writes."""

    path: Path
    branch: str

    @property
    def ref_name(self) -> str:
        return f"refs/heads/{self.branch}"

    @property
    def remote_ref_name(self) -> str:
        """Where the branch as last fetched from (or pushed to) the remote is remembered."""
        return f"refs/remotes/{REMOTE_NAME}/{self.branch}"


@dataclass(frozen=True)
class CommitInfo:
    id: str
    parents: tuple[str, ...]
    author: GitIdentity
    committer: GitIdentity
    message: str
    committed_at: datetime


# --- Handles ---------------------------------------------------------------------------------

_thread_handles = threading.local()


def _handle_version(path: Path) -> tuple[int, int, int] | None:
    """Changes when the repository is created anew or compacted, by any process (None: no repository)."""
    try:
        head = os.stat(path / "HEAD")
    except OSError:
        return None
    try:
        marker = os.stat(path / _COMPACTED_MARKER)
    except FileNotFoundError:
        return head.st_ino, 0, 0
    return head.st_ino, marker.st_ino, marker.st_mtime_ns


def repository_handle(repository: GitopsRepository) -> pygit2.Repository:
    """This thread's pygit2 handle on the repository.

    Reused, since opening costs more than most reads; references and new objects are read
    from disk on each use, so other processes' commits are seen. Raises
    :class:`RepositoryUnavailable` when there is no repository at the path.
    """
    handles: dict[str, tuple[tuple[int, int, int], pygit2.Repository]] | None = getattr(
        _thread_handles, "handles", None
    )
    if handles is None:
        handles = _thread_handles.handles = {}
    key = str(repository.path)
    version = _handle_version(repository.path)
    cached = handles.pop(key, None)
    if cached is not None and cached[0] == version:
        handles[key] = cached
        return cached[1]
    if cached is not None:
        cached[1].free()
    if version is None:
        raise RepositoryUnavailable(f"There is no gitops repository at {repository.path}.")
    try:
        handle = pygit2.Repository(key, _OPEN_FLAGS)
    except pygit2.GitError as error:
        raise RepositoryUnavailable(f"The gitops repository cannot be opened: {error}") from error
    handles[key] = (version, handle)
    while len(handles) > _HANDLES_PER_THREAD:
        handles.pop(next(iter(handles)))[1].free()
    return handle


def _handle_forget(repository: GitopsRepository) -> None:
    cached = (getattr(_thread_handles, "handles", None) or {}).pop(str(repository.path), None)
    if cached is not None:
        cached[1].free()


# --- Opening -----------------------------------------------------------------------------------


def _repository_init(repository: GitopsRepository) -> None:
    repository.path.mkdir(parents=True, exist_ok=True)
    pygit2.init_repository(str(repository.path), bare=True, initial_head=repository.branch)
    # The 256 loose-object folders up front: otherwise early commits pay a mkdir each.
    for fanout in range(256):
        (repository.path / "objects" / f"{fanout:02x}").mkdir(exist_ok=True)


def repository_open(
    *,
    path: Path,
    branch: str,
    bootstrap_files: Mapping[str, bytes] | Callable[[], Mapping[str, bytes]],
    committer: GitIdentity | None = None,
) -> GitopsRepository:
    """Open the bare repository, creating it with one commit of ``bootstrap_files`` if the branch is missing.

    ``bootstrap_files`` may be a function, called only when the branch does not exist yet; with
    no files the branch stays unborn (an empty server repository, say).
    """
    repository = GitopsRepository(path=Path(path), branch=branch)
    try:
        if not (repository.path / "HEAD").exists():
            _repository_init(repository)
    except (OSError, pygit2.GitError) as error:
        raise RepositoryUnavailable(f"The gitops repository cannot be created: {error}") from error
    if branch_tip(repository=repository) is not None:
        return repository
    files = bootstrap_files() if callable(bootstrap_files) else bootstrap_files
    if not files:
        return repository
    identity = committer or GitIdentity(name=DEFAULT_COMMITTER_NAME, email=DEFAULT_COMMITTER_EMAIL)
    try:
        files_commit(
            repository=repository,
            changes=files,
            author=identity,
            committer=identity,
            message="Bootstrap the gitops repository\n",
            expected_tip=None,
        )
    except BranchMoved:
        pass  # another process bootstrapped it first
    return repository


# --- Branch compare-and-swap -------------------------------------------------------------------


@contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (created if missing) for the block.

    A new descriptor per acquisition: flock locks belong to an open file description, so two
    threads of one process exclude each other only through separate descriptors.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as error:
        raise RepositoryUnavailable(f"The gitops lock file cannot be created: {error}") from error
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _ref_guard(repository: GitopsRepository):
    """Make read-compare-write of the branch atomic across threads and processes."""
    return file_lock(repository.path / _REF_LOCK_FILE)


def branch_tip(*, repository: GitopsRepository) -> str | None:
    """The commit the branch points at (None for an unborn branch)."""
    reference = repository_handle(repository).references.get(repository.ref_name)
    return None if reference is None else str(reference.target)


def branch_update(*, repository: GitopsRepository, expected_tip: str | None, new_tip: str) -> None:
    """Compare-and-swap the branch: raise :class:`BranchMoved` if it left ``expected_tip``.

    Under the portal's flock the comparison cannot race another portal thread or process;
    libgit2's ``set_target`` compares again under git's own ``.lock`` file, which also
    catches a git command line writing the branch meanwhile.
    """
    handle = repository_handle(repository)
    with _ref_guard(repository):
        reference = handle.references.get(repository.ref_name)
        current = None if reference is None else str(reference.target)
        if current != expected_tip:
            raise BranchMoved(f"{repository.ref_name} is at {current}, expected {expected_tip}.")
        try:
            if reference is None:
                handle.references.create(repository.ref_name, pygit2.Oid(hex=new_tip))
            else:
                reference.set_target(pygit2.Oid(hex=new_tip), "portal: update")
        except (OSError, pygit2.GitError) as error:  # OSError: a stale ref .lock file
            moved_to = handle.references.get(repository.ref_name)
            if (None if moved_to is None else str(moved_to.target)) != expected_tip:
                raise BranchMoved(f"{repository.ref_name} moved outside the portal.") from error
            raise RepositoryUnavailable(f"The gitops branch cannot be updated: {error}") from error


# --- Committing --------------------------------------------------------------------------------


def _signature(identity: GitIdentity, when: datetime) -> pygit2.Signature:
    return pygit2.Signature(identity.name, identity.email, int(when.timestamp()), 0)


def commit_create(
    *,
    repository: GitopsRepository,
    base: str | None,
    changes: Mapping[str, bytes | None],
    author: GitIdentity,
    committer: GitIdentity,
    message: str,
    when: datetime | None = None,
) -> str | None:
    """Write the commit of ``changes`` (None deletes a file) on ``base``, moving no branch.

    Returns its id, or None when the tree would not change (no empty commits). Raises
    :class:`gitops.errors.InvalidPath` for an unsafe path, :class:`RepositoryUnavailable` when
    the objects cannot be written.
    """
    when = when or datetime.now(tz=UTC)
    try:
        return commit_build(
            repository_handle(repository),
            base=base,
            changes=changes,
            author=_signature(author, when),
            committer=_signature(committer, when),
            message=message,
        )
    except (OSError, pygit2.GitError) as error:
        raise RepositoryUnavailable(f"The change could not be committed: {error}") from error


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
    commit = commit_create(
        repository=repository,
        base=expected_tip,
        changes=changes,
        author=author,
        committer=committer,
        message=message,
    )
    if commit is not None:
        branch_update(repository=repository, expected_tip=expected_tip, new_tip=commit)
    return commit


# --- Reading -----------------------------------------------------------------------------------


def tree_reader(*, repository: GitopsRepository, commit: str | None = None) -> TreeReader:
    """A reader of ``commit``'s tree (default: the branch tip), for this thread only."""
    return TreeReader(repository_handle(repository), commit or branch_tip(repository=repository))


def file_read(*, repository: GitopsRepository, file_path: str, commit: str | None = None) -> bytes | None:
    """A file's content at ``commit`` (default: the branch tip), or None if absent."""
    return tree_reader(repository=repository, commit=commit).read(file_path)


def files_list(*, repository: GitopsRepository, prefix: str = "", commit: str | None = None) -> list[str]:
    """Every file path under ``prefix`` at ``commit`` (default: the branch tip), sorted."""
    return tree_reader(repository=repository, commit=commit).list(prefix)


def blobs_read(*, repository: GitopsRepository) -> Iterator[bytes]:
    """Every blob stored in the repository, reachable or not (for secret-leak checks)."""
    handle = repository_handle(repository)
    for object_id in handle.odb:
        found = handle.get(object_id)
        if found is not None and found.type == ObjectType.BLOB:
            yield found.data


def commit_read(*, repository: GitopsRepository, commit: str) -> CommitInfo:
    found = repository_handle(repository)[commit].peel(pygit2.Commit)
    return CommitInfo(
        id=str(found.id),
        parents=tuple(str(parent) for parent in found.parent_ids),
        author=GitIdentity(name=found.author.name, email=found.author.email),
        committer=GitIdentity(name=found.committer.name, email=found.committer.email),
        message=found.message,
        committed_at=datetime.fromtimestamp(found.commit_time, tz=UTC),
    )


def commit_exists(*, repository: GitopsRepository, commit: str) -> bool:
    """Whether this repository holds the commit ``commit`` (a full hexadecimal id)."""
    try:
        found = repository_handle(repository).get(commit)
    except (ValueError, pygit2.GitError):
        return False
    return found is not None and found.type == ObjectType.COMMIT


def commits_list(
    *, repository: GitopsRepository, limit: int = 1000, commit: str | None = None
) -> list[CommitInfo]:
    """The history of ``commit`` (default: the branch tip), newest first (first parents only)."""
    result: list[CommitInfo] = []
    current = commit or branch_tip(repository=repository)
    while current is not None and len(result) < limit:
        info = commit_read(repository=repository, commit=current)
        result.append(info)
        current = info.parents[0] if info.parents else None
    return result


# --- Compaction --------------------------------------------------------------------------------


def _pack_object_ids(objects_folder: Path) -> set[pygit2.Oid]:
    """The ids in the packs of ``objects_folder/pack``, as libgit2 reads them."""
    return set(pygit2.OdbBackendPack(str(objects_folder)))


def _pack_everything(repository: GitopsRepository, staging: Path) -> tuple[int, str | None]:
    """Write one pack of every object into ``staging/pack``: (objects packed, pack name)."""
    (staging / "pack").mkdir(parents=True)
    # A handle of its own, closed at once: the thread's handle may be in use by a caller.
    handle = pygit2.Repository(str(repository.path), _OPEN_FLAGS)
    try:
        count = handle.pack(path=staging / "pack")
    finally:
        handle.free()
    indexes = list((staging / "pack").glob("pack-*.idx"))
    # libgit2 writes a pack even of nothing: an empty repository has nothing to install.
    return count, indexes[0].stem if indexes and count else None


def _pack_install(staging: Path, pack_folder: Path, name: str) -> None:
    """Move the new pack into place, its index last: readers find packs by their index."""
    files = sorted((staging / "pack").glob(f"{name}.*"), key=lambda found: found.suffix == ".idx")
    for found in files:
        os.replace(found, pack_folder / found.name)


def _pack_contents(index: Path, scratch: Path) -> set[pygit2.Oid]:
    """The ids in the pack of ``index``: it is linked alone into a scratch objects folder to be read."""
    probe = scratch / f"probe-{index.stem}"
    (probe / "pack").mkdir(parents=True)
    for found in (index, index.with_suffix(".pack")):
        try:
            os.link(found, probe / "pack" / found.name)
        except OSError:  # a file system without hard links
            shutil.copyfile(found, probe / "pack" / found.name)
    return _pack_object_ids(probe)


def _packs_remove_contained(pack_folder: Path, name: str, packed: set[pygit2.Oid], scratch: Path) -> int:
    """Delete the older packs whose every object is in the new one; never a ``.keep`` (or promisor) pack."""
    removed = 0
    for index in sorted(pack_folder.glob("pack-*.idx")):
        protected = index.with_suffix(".keep").exists() or index.with_suffix(".promisor").exists()
        if index.stem == name or protected or not index.with_suffix(".pack").exists():
            continue
        if not _pack_contents(index, scratch) <= packed:
            logger.warning("Pack %s holds objects the new pack lacks: kept.", index.name)
            continue
        # The index first: a pack without an index is invisible to git and libgit2.
        for suffix in (".idx", ".pack", ".rev", ".bitmap", ".mtimes"):
            index.with_suffix(suffix).unlink(missing_ok=True)
        removed += 1
    if removed:
        # git's multi-pack index (written by `git repack --write-midx`) would name deleted packs.
        (pack_folder / "multi-pack-index").unlink(missing_ok=True)
    return removed


def _loose_remove_contained(objects_folder: Path, packed: set[pygit2.Oid]) -> int:
    """Delete the loose objects the new pack holds; any other (written meanwhile) stays."""
    removed = 0
    for folder in objects_folder.iterdir():
        if len(folder.name) != 2 or not folder.is_dir():
            continue  # pack/, info/
        for entry in os.scandir(folder):
            object_name = folder.name + entry.name
            if _LOOSE_OBJECT_NAME.fullmatch(object_name) and pygit2.Oid(hex=object_name) in packed:
                os.unlink(entry.path)
                removed += 1
    return removed


def _compacted_mark(repository: GitopsRepository) -> None:
    marker = repository.path / f"{_COMPACTED_MARKER}.tmp"
    marker.write_bytes(b"")
    os.replace(marker, repository.path / _COMPACTED_MARKER)


def repository_compact(*, repository: GitopsRepository) -> int:
    """Pack every object into one pack, then delete the loose objects and older packs it holds.

    Returns how many objects were packed. Nothing is deleted that the new pack does not
    hold, as libgit2 reads it back: objects written meanwhile stay loose, and a pack with a
    ``.keep`` file is never deleted (its objects are copied into the new pack all the same).
    The new pack is in place before anything is deleted, and readers that miss an object
    rescan the pack folder, so reading threads and processes never miss one. Callers hold both
    locks, so no commit or push runs meanwhile; it runs from housekeeping, never in a user's
    request. Raises :class:`RepositoryUnavailable` when it cannot be done.
    """
    objects_folder = repository.path / "objects"
    try:
        with tempfile.TemporaryDirectory(prefix="portal-compact-", dir=repository.path) as scratch:
            count, name = _pack_everything(repository, Path(scratch) / "new")
            if name is None:
                return 0  # an empty repository
            packed = _pack_object_ids(Path(scratch) / "new")
            _pack_install(Path(scratch) / "new", objects_folder / "pack", name)
            packs = _packs_remove_contained(objects_folder / "pack", name, packed, Path(scratch))
            loose = _loose_remove_contained(objects_folder, packed)
        _compacted_mark(repository)
    except (OSError, pygit2.GitError) as error:
        raise RepositoryUnavailable(f"The gitops repository could not be compacted: {error}") from error
    _handle_forget(repository)
    # INFO only when something was removed: else a CronJob's every gitops_sync repeats the line.
    level = logging.INFO if packs or loose else logging.DEBUG
    message = "Compacted %s: %d objects packed, %d packs and %d loose objects removed."
    logger.log(level, message, repository.path, count, packs, loose)
    return count
