"""The gitops repository: the only module that imports pygit2.

A bare repository edited in memory: a commit rebuilds only the trees along the paths
it changes (``TreeBuilder`` from the parent's subtrees), so its cost does not grow with
the number of clusters. The branch reference moves by compare-and-swap, and delivery to
an optional remote fetches first, re-renders on the remote tip when someone else
pushed, and never raises for a network failure: the commit then stays local until a
later delivery pushes it.

A commit's new objects (a blob, the four trees above it, the commit) are queued in memory
(libgit2's "mempack" backend) and written as one pack, so a commit creates three files
(pack, index, branch lock) instead of seven: creating files dominates the cost of a commit
on a real disk. Small packs are merged geometrically (as ``git repack --geometric=2`` does)
once there are more than ``PACKS_BEFORE_MERGE``, so lookups stay fast and the largest pack
is rarely rewritten. Where libgit2's mempack cannot be reached, objects are written loose.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import posixpath
import secrets
import struct
import threading
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import cffi
import pygit2
from pygit2.enums import CredentialType, FileMode, ObjectType
from pygit2.ffi import ffi as pygit2_ffi

logger = logging.getLogger(__name__)

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
    repo: pygit2.Repository,
    tree: pygit2.Tree | None,
    changes: Mapping[str, bytes | None],
    written: list[pygit2.Oid],
) -> pygit2.Oid | None:
    """The id of ``tree`` with ``changes`` applied, or None when the result is empty.

    Only the trees on the changed paths are rebuilt; every other subtree is reused by id.
    The id of every object written is appended to ``written``.
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
            blob_id = repo.create_blob(content)
            written.append(blob_id)
            builder.insert(name, blob_id, FileMode.BLOB)
    for name, sub_changes in folders.items():
        sub_id = _tree_edit(repo, _subtree(repo, tree, name), sub_changes, written)
        if sub_id is None:
            if builder.get(name) is not None:
                builder.remove(name)
        else:
            builder.insert(name, sub_id, FileMode.TREE)
    if len(builder) == 0:
        return None
    tree_id = builder.write()
    written.append(tree_id)
    return tree_id


def _empty_tree(repo: pygit2.Repository, written: list[pygit2.Oid]) -> pygit2.Oid:
    tree_id = repo.TreeBuilder().write()
    written.append(tree_id)
    return tree_id


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


# --- Handles, and objects written as one pack per commit -----------------------------------

_MEMPACK_DECLARATIONS = """
typedef struct git_repository git_repository;
typedef struct git_odb git_odb;
typedef struct git_odb_backend git_odb_backend;
typedef struct git_packbuilder git_packbuilder;
typedef struct git_oid { unsigned char id[20]; } git_oid;
typedef struct git_odb_object git_odb_object;
int git_odb_read(git_odb_object **out, git_odb *db, const git_oid *id);
const void *git_odb_object_data(git_odb_object *object);
size_t git_odb_object_size(git_odb_object *object);
int git_odb_object_type(git_odb_object *object);
void git_odb_object_free(git_odb_object *object);
int git_repository_odb(git_odb **out, git_repository *repo);
void git_odb_free(git_odb *db);
int git_odb_add_backend(git_odb *odb, git_odb_backend *backend, int priority);
int git_mempack_new(git_odb_backend **out);
int git_mempack_object_count(size_t *count, git_odb_backend *backend);
int git_mempack_reset(git_odb_backend *backend);
const char *git_packbuilder_name(git_packbuilder *pb);
"""
_MEMPACK_FUNCTIONS = (
    "git_repository_odb",
    "git_odb_free",
    "git_odb_add_backend",
    "git_mempack_new",
    "git_mempack_object_count",
    "git_odb_read",
    "git_odb_object_data",
    "git_odb_object_size",
    "git_odb_object_type",
    "git_odb_object_free",
    "git_mempack_reset",
    "git_packbuilder_name",
)
# Above the loose (1) and pack (2) backends, so new objects go to memory first.
_MEMPACK_PRIORITY = 999
PACKS_BEFORE_MERGE = 16
# At least down to this many, so that merges come every few commits rather than at every one.
PACKS_AFTER_MERGE = 8
_PACK_GEOMETRIC_FACTOR = 2
_PACKS_GENERATION_FILE = "portal-packs.generation"


def _libgit2_loaded_path() -> str | None:
    """The file of the libgit2 that pygit2 loaded (Linux), so the mempack calls share its state."""
    found: set[str] = set()
    try:
        with open("/proc/self/maps", encoding="utf-8") as maps:
            for line in maps:
                fields = line.split(maxsplit=5)
                if len(fields) == 6 and os.path.basename(fields[5].strip()).startswith("libgit2"):
                    found.add(fields[5].strip())
    except OSError:
        return None
    return found.pop() if len(found) == 1 else None  # two copies loaded: which one is pygit2's?


@cache
def _mempack_library() -> tuple[cffi.FFI, Any] | None:
    """cffi bindings for libgit2's in-memory object backend, which pygit2 does not wrap.

    dlopen of the file pygit2 already loaded returns that same library, so objects, packs and
    allocator are shared. None where it cannot be found or lacks a function (libgit2 before
    1.8): objects are then written loose.
    """
    path = _libgit2_loaded_path()
    if path is None:
        return None
    ffi = cffi.FFI()
    ffi.cdef(_MEMPACK_DECLARATIONS)
    try:
        lib = ffi.dlopen(path)
        for function in _MEMPACK_FUNCTIONS:
            getattr(lib, function)
    except (OSError, AttributeError):
        return None
    return ffi, lib


def _pointer(ffi: cffi.FFI, type_name: str, pygit2_pointer: Any) -> Any:
    return ffi.cast(type_name, int(pygit2_ffi.cast("uintptr_t", pygit2_pointer)))


def _libgit2_check(result: int, what: str) -> None:
    if result < 0:
        raise pygit2.GitError(f"libgit2 failed to {what} (error {result}).")


class _Handle(pygit2.Repository):
    """A repository handle whose new objects wait in memory until :meth:`objects_flush`.

    Its object database must not be enumerated (``for oid in handle.odb``): the in-memory
    store has no ``foreach`` and libgit2 would call a null pointer.
    """

    def __init__(self, path: str, packs_generation: tuple[int, int] | None) -> None:
        super().__init__(path)
        self.packs_generation = packs_generation
        self.mempack: Any = None
        library = _mempack_library()
        if library is None:
            return
        ffi, lib = library
        odb = ffi.new("git_odb **")
        backend = ffi.new("git_odb_backend **")
        _libgit2_check(lib.git_mempack_new(backend), "create an in-memory object store")
        _libgit2_check(
            lib.git_repository_odb(odb, _pointer(ffi, "git_repository *", self._repo)), "open the odb"
        )
        try:
            # The object database owns the backend from here on and frees it with the handle.
            _libgit2_check(lib.git_odb_add_backend(odb[0], backend[0], _MEMPACK_PRIORITY), "add the store")
        finally:
            lib.git_odb_free(odb[0])
        self.mempack = backend[0]

    def release(self) -> None:
        """Close the object database now (pygit2 handles are freed by the cycle collector only,
        which would keep deleted pack files open). Still usable after: objects are then loose."""
        self.mempack = None
        self.free()

    def objects_discard(self) -> None:
        """Forget objects queued by an earlier build that did not finish."""
        if self.mempack is not None:
            _, lib = _mempack_library()
            lib.git_mempack_reset(self.mempack)

    def objects_flush(self, object_ids: list[pygit2.Oid]) -> bool:
        """Write the queued objects, all among ``object_ids``, as one pack; True if one was written."""
        if self.mempack is None:
            return False  # they were written loose
        ffi, lib = _mempack_library()
        try:
            unique_ids = list(dict.fromkeys(object_ids))
            queued = ffi.new("size_t *")
            _libgit2_check(lib.git_mempack_object_count(queued, self.mempack), "count the queued objects")
            if queued[0] > len(unique_ids):
                # Some write went unrecorded: packing only the recorded ones would lose it.
                raise pygit2.GitError(f"{queued[0]} objects queued but {len(unique_ids)} recorded.")
            if queued[0] == 0:
                return False
            objects = _objects_read(ffi, lib, self, unique_ids)
            pack_write(folder=Path(self.path) / "objects" / "pack", objects=objects)
            return True
        finally:
            lib.git_mempack_reset(self.mempack)


def _objects_read(
    ffi: cffi.FFI, lib: Any, repo: pygit2.Repository, object_ids: list[pygit2.Oid]
) -> list[tuple[bytes, int, bytes]]:
    """``(raw id, type, content)`` of each object (pygit2's readers ask by prefix, which the
    in-memory store does not answer)."""
    odb = ffi.new("git_odb **")
    _libgit2_check(lib.git_repository_odb(odb, _pointer(ffi, "git_repository *", repo._repo)), "open the odb")
    found: list[tuple[bytes, int, bytes]] = []
    try:
        object_id = ffi.new("git_oid *")
        read = ffi.new("git_odb_object **")
        for oid in object_ids:
            object_id.id = oid.raw
            _libgit2_check(lib.git_odb_read(read, odb[0], object_id), f"read object {oid}")
            try:
                content = ffi.buffer(lib.git_odb_object_data(read[0]), lib.git_odb_object_size(read[0]))[:]
                found.append((oid.raw, lib.git_odb_object_type(read[0]), content))
            finally:
                lib.git_odb_object_free(read[0])
    finally:
        lib.git_odb_free(odb[0])
    return found


def _pack_object_header(kind: int, size: int) -> bytes:
    """Type and inflated size: 3 type bits and 4 size bits, then 7 size bits per byte."""
    header = bytearray()
    byte = (kind << 4) | (size & 0x0F)
    size >>= 4
    while size:
        header.append(byte | 0x80)
        byte = size & 0x7F
        size >>= 7
    header.append(byte)
    return bytes(header)


def pack_write(*, folder: Path, objects: list[tuple[bytes, int, bytes]]) -> str:
    """Write ``(raw id, type, content)`` objects as a version 2 pack with its index; returns its name.

    A commit's few small objects, undeltified: libgit2's PackBuilder spends more time than the
    whole commit on delta search and re-indexing them. Format: gitformat-pack(5). The index is
    renamed into place last, since readers find packs by their index.
    """
    chunks = [b"PACK", struct.pack(">II", 2, len(objects))]
    offset = 12
    entries: list[tuple[bytes, int, int]] = []
    for raw_id, kind, content in objects:
        packed = _pack_object_header(kind, len(content)) + zlib.compress(content, 1)
        if offset >= 0x80000000:
            raise ValueError("Packs this writer makes stay under 2 GiB (32-bit index offsets).")
        entries.append((raw_id, zlib.crc32(packed), offset))
        chunks.append(packed)
        offset += len(packed)
    pack = b"".join(chunks)
    pack_checksum = hashlib.sha1(pack).digest()  # noqa: S324 - git's object format, not security
    entries.sort()
    fanout = [0] * 256
    for raw_id, _, _ in entries:
        fanout[raw_id[0]] += 1
    for index in range(1, 256):
        fanout[index] += fanout[index - 1]
    count = len(entries)
    index_data = b"".join(
        [
            b"\377tOc",
            struct.pack(">I", 2),
            struct.pack(">256I", *fanout),
            b"".join(raw_id for raw_id, _, _ in entries),
            struct.pack(f">{count}I", *(crc for _, crc, _ in entries)),
            struct.pack(f">{count}I", *(position for _, _, position in entries)),
            pack_checksum,
        ]
    )
    index_data += hashlib.sha1(index_data).digest()  # noqa: S324
    name = pack_checksum.hex()
    for suffix, content in ((".pack", pack + pack_checksum), (".idx", index_data)):
        temporary = folder / f"tmp_portal_{secrets.token_hex(8)}{suffix}"
        with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444), "wb") as file:
            file.write(content)
        os.replace(temporary, folder / f"pack-{name}{suffix}")
    return name


_thread_repositories = threading.local()
_OPEN_HANDLES_PER_THREAD = 4


def _packs_generation(repository: GitopsRepository) -> tuple[int, int] | None:
    """Changes whenever packs are merged (and old ones deleted), in any process."""
    try:
        found = os.stat(repository.path / _PACKS_GENERATION_FILE)
    except FileNotFoundError:
        return None
    return found.st_ino, found.st_mtime_ns


def _open(repository: GitopsRepository) -> _Handle:
    """This thread's handle on the repository (pygit2 handles must not be shared between threads).

    Reusing it saves reopening the object database on every call; references and new
    objects are still read from disk each time, so other processes' commits are seen. After
    packs were merged the handle is reopened, so it lets go of the deleted pack files.
    """
    handles: dict[str, _Handle] = getattr(_thread_repositories, "handles", None) or {}
    _thread_repositories.handles = handles
    key = str(repository.path)
    handle = handles.get(key)
    generation = _packs_generation(repository)
    if handle is not None and handle.packs_generation == generation and (repository.path / "HEAD").exists():
        return handle
    try:
        fresh = _Handle(key, generation)
    except pygit2.GitError as error:
        raise GitopsUnavailable(f"The gitops repository cannot be opened: {error}") from error
    if handle is not None:
        handle.release()
    handles[key] = fresh
    while len(handles) > _OPEN_HANDLES_PER_THREAD:  # a few repositories per process in practice
        handles.pop(next(iter(handles))).release()
    return fresh


@dataclass(frozen=True)
class PackFile:
    """One pack of the object database: its index file and how many objects it holds."""

    index_path: Path
    objects: int

    @property
    def pack_path(self) -> Path:
        return self.index_path.with_suffix(".pack")


def _pack_index_read(index_path: Path, *, object_ids: bool) -> tuple[int, list[pygit2.Oid]]:
    """Object count (and ids) from a version 2 pack index: magic, version, 256-entry fan-out, ids."""
    with open(index_path, "rb") as index:
        header = index.read(8 + 256 * 4)
        if len(header) != 8 + 256 * 4 or header[:8] != b"\377tOc\x00\x00\x00\x02":
            raise ValueError(f"{index_path.name} is not a version 2 pack index.")
        (count,) = struct.unpack(">I", header[-4:])
        if not object_ids:
            return count, []
        raw = index.read(20 * count)
    return count, [pygit2.Oid(raw=raw[offset : offset + 20]) for offset in range(0, len(raw), 20)]


def packs_list(*, repository: GitopsRepository) -> list[PackFile]:
    """The packs that may be merged, smallest first (a ``.keep`` file protects a pack, as in git)."""
    folder = repository.path / "objects" / "pack"
    found: list[PackFile] = []
    for entry in os.scandir(folder):
        index_path = Path(entry.path)
        if index_path.suffix != ".idx" or index_path.with_suffix(".keep").exists():
            continue
        if not index_path.with_suffix(".pack").exists():
            continue
        try:
            count, _ = _pack_index_read(index_path, object_ids=False)
        except (OSError, ValueError):
            continue
        found.append(PackFile(index_path=index_path, objects=count))
    return sorted(found, key=lambda pack: (pack.objects, pack.index_path.name))


def packs_to_merge(object_counts: list[int], factor: int = _PACK_GEOMETRIC_FACTOR) -> int:
    """How many of the smallest packs (counts sorted ascending) to merge into one.

    Geometric repacking: the packs that stay must each hold at least ``factor`` times the
    objects of the next smaller one; the merged pack also absorbs any larger pack it would
    otherwise break that progression with. So each object is rewritten O(log n) times.
    """
    split = 0
    for index in range(len(object_counts) - 1, 0, -1):
        if object_counts[index] < factor * object_counts[index - 1]:
            split = index
            break
    if split == 0:
        return 0
    merged = sum(object_counts[: split + 1])
    count = split + 1
    while count < len(object_counts) and merged * factor > object_counts[count]:
        merged += object_counts[count]
        count += 1
    return count


@contextmanager
def _merge_guard(repository: GitopsRepository) -> Iterator[bool]:
    """One merger at a time across processes; others skip rather than wait (True: ours)."""
    fd = os.open(repository.path / "portal-packs.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _pack_merged_write(repository: GitopsRepository, merging: list[PackFile]) -> str:
    """Write one pack with every object of ``merging``; returns its index file name."""
    ffi, lib = _mempack_library()
    # A handle of its own, closed right after: the thread's cached one may be in use.
    merger = pygit2.Repository(str(repository.path))
    try:
        builder = pygit2.PackBuilder(merger)
        builder.set_threads(1)
        for pack in merging:
            for object_id in _pack_index_read(pack.index_path, object_ids=True)[1]:
                builder.add(object_id)
        builder.write(str(repository.path / "objects" / "pack"))
        name = lib.git_packbuilder_name(_pointer(ffi, "git_packbuilder *", builder._packbuilder))
        if name == ffi.NULL:
            raise pygit2.GitError("The merged pack has no name.")
        return f"pack-{ffi.string(name).decode()}.idx"
    finally:
        merger.free()


def packs_merge(*, repository: GitopsRepository, limit: int = PACKS_BEFORE_MERGE) -> int:
    """Merge small packs once there are more than ``limit``; returns how many were merged.

    The smallest packs are merged into one, as many as the geometric rule asks and at least
    enough to leave ``PACKS_AFTER_MERGE`` packs, so the largest pack is rarely rewritten.

    Objects are never lost: the merged pack is complete on disk before any old pack is
    deleted, and readers that miss an object rescan the pack folder. Failures are logged and
    left for the next commit: the commits themselves are already safe.
    """
    if _mempack_library() is None:
        return 0  # without it packs only come from fetches, and the merged pack could not be named
    folder = repository.path / "objects" / "pack"
    try:
        if sum(1 for name in os.listdir(folder) if name.endswith(".idx")) <= limit:
            return 0
        with _merge_guard(repository) as ours:
            if not ours:
                return 0
            packs = packs_list(repository=repository)
            count = max(packs_to_merge([pack.objects for pack in packs]), len(packs) - PACKS_AFTER_MERGE + 1)
            if count < 2:
                return 0
            merged_index = _pack_merged_write(repository, packs[:count])
            for pack in packs[:count]:
                if pack.index_path.name == merged_index:
                    continue  # the same objects already formed this pack: it is the result
                # The index first: a pack without an index is invisible to git and libgit2.
                for stale in (pack.index_path, pack.pack_path, pack.index_path.with_suffix(".rev")):
                    stale.unlink(missing_ok=True)
            marker = repository.path / f"{_PACKS_GENERATION_FILE}.tmp"
            marker.write_bytes(b"")
            os.replace(marker, repository.path / _PACKS_GENERATION_FILE)
            # This thread's handle read the old packs; other threads reopen theirs on next use.
            stale = (getattr(_thread_repositories, "handles", None) or {}).pop(str(repository.path), None)
            if stale is not None:
                stale.release()
            return count
    except (OSError, ValueError, pygit2.GitError) as error:
        logger.warning("Merging gitops packs failed (they stay as they are): %s", error)
        return 0


def _signature(identity: GitIdentity, when: datetime) -> pygit2.Signature:
    return pygit2.Signature(identity.name, identity.email, int(when.timestamp()), 0)


def repository_open(
    *,
    path: Path,
    branch: str,
    bootstrap_files: Mapping[str, bytes] | Callable[[], Mapping[str, bytes]],
    committer: GitIdentity | None = None,
) -> GitopsRepository:
    """Open the bare repository, creating it with one commit of ``bootstrap_files`` if missing.

    ``bootstrap_files`` may be a function, called only when the branch does not exist yet.
    """
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
    if _ref_target(repo, repository.ref_name) is None:
        if callable(bootstrap_files):
            bootstrap_files = bootstrap_files()
        if not bootstrap_files:
            return repository
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
    # A plain handle: libgit2's in-memory store cannot be enumerated (git_odb_foreach would crash).
    repo = pygit2.Repository(str(repository.path))
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
    repo: _Handle,
    *,
    base: str | None,
    changes: Mapping[str, bytes | None],
    author: GitIdentity,
    committer: GitIdentity,
    message: str,
    when: datetime,
) -> str | None:
    """Write the commit for ``changes`` on ``base`` (one pack); None when the tree is unchanged."""
    repo.objects_discard()
    written: list[pygit2.Oid] = []
    try:
        base_tree = repo[base].peel(pygit2.Tree) if base else None
        new_tree = _tree_edit(repo, base_tree, changes, written) or _empty_tree(repo, written)
        old_tree = base_tree.id if base_tree is not None else _empty_tree(repo, written)
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
        written.append(commit_id)
        repo.objects_flush(written)  # on disk before any reference can point at it
        return str(commit_id)
    finally:
        repo.objects_discard()


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
    packs_merge(repository=repository)
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
    try:
        return _changes_deliver(
            repository=repository,
            render=render,
            author=author,
            committer=committer,
            message=message,
            remote=remote,
            push_retries=push_retries,
        )
    finally:
        packs_merge(repository=repository)


def _changes_deliver(
    *,
    repository: GitopsRepository,
    render: Render,
    author: GitIdentity,
    committer: GitIdentity,
    message: str,
    remote: RemoteConfig | None = None,
    push_retries: int = 5,
) -> Delivery:
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
