"""One writer at a time on the gitops branch, and one pusher at a time, across threads and processes.

Two locks, so that commits and pushes overlap: the branch lock guards the local branch (making
commits, moving it), the push lock the push of it. A request commits under the branch lock,
then pushes under the push lock while the next request commits. Whoever needs both takes the
push lock first, so two holders never wait on each other.

PostgreSQL: a session-level advisory lock, so that portal processes on several hosts
(sharing one database, each with its own clone) serialize too; MySQL/MariaDB: a named lock
(``GET_LOCK``), held by the connection like the advisory lock. Otherwise: ``flock`` on a
file next to the repository (``gitops.repository.file_lock``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import OperationalError, connection

from gitops.repository import file_lock

# Fixed: every portal process must agree on them. "gitops" in ASCII, well inside int64; the
# push lock's is the next one.
ADVISORY_LOCK_KEY = 0x676974_6F7073
PUSH_ADVISORY_LOCK_KEY = ADVISORY_LOCK_KEY + 1
# MySQL/MariaDB: named locks are per server, not per database as PostgreSQL's advisory locks
# are, so the name carries the database's; MySQL refuses names over 64 characters.
NAMED_LOCK_PREFIX = "qdrant-portal.gitops:"
PUSH_NAMED_LOCK_PREFIX = "qdrant-portal.gitops-push:"
NAMED_LOCK_NAME_MAX = 64
# GET_LOCK waits at most this long per call (MariaDB has no "for ever"); it is asked again.
NAMED_LOCK_WAIT_SECONDS = 60


def named_lock_name(*, database: str, prefix: str = NAMED_LOCK_PREFIX) -> str:
    """The MySQL/MariaDB name of a gitops lock for one database (at most 64 characters)."""
    name = f"{prefix}{database}"
    if len(name) > NAMED_LOCK_NAME_MAX:
        digest = hashlib.sha256(database.encode()).hexdigest()
        name = f"{prefix}{digest}"[:NAMED_LOCK_NAME_MAX]
    return name


def lock_file_path(*, repo_path: Path, suffix: str = ".lock") -> Path:
    repo_path = Path(repo_path)
    return repo_path.with_name(f"{repo_path.name}{suffix}")


@contextmanager
def branch_lock(*, repo_path: Path) -> Iterator[None]:
    """Hold the gitops writers' lock (the local branch) for the duration of the block."""
    with _exclusive(repo_path=repo_path, key=ADVISORY_LOCK_KEY, prefix=NAMED_LOCK_PREFIX, suffix=".lock"):
        yield


@contextmanager
def push_lock(*, repo_path: Path) -> Iterator[None]:
    """Hold the gitops pushers' lock for the duration of the block (take it before the branch lock)."""
    with _exclusive(
        repo_path=repo_path, key=PUSH_ADVISORY_LOCK_KEY, prefix=PUSH_NAMED_LOCK_PREFIX, suffix=".push.lock"
    ):
        yield


@contextmanager
def _exclusive(*, repo_path: Path, key: int, prefix: str, suffix: str) -> Iterator[None]:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    if connection.vendor == "mysql":
        with _named_lock(name=named_lock_name(database=connection.settings_dict["NAME"], prefix=prefix)):
            yield
        return

    with file_lock(lock_file_path(repo_path=repo_path, suffix=suffix)):
        yield


@contextmanager
def _named_lock(*, name: str) -> Iterator[None]:
    with connection.cursor() as cursor:
        acquired = 0
        while acquired == 0:  # 0: the wait ran out while another process holds it; wait again
            cursor.execute("SELECT GET_LOCK(%s, %s)", [name, NAMED_LOCK_WAIT_SECONDS])
            (acquired,) = cursor.fetchone()
    if acquired != 1:  # NULL: an error, such as the connection being killed (answered as an outage)
        raise OperationalError(f"MySQL/MariaDB refused the named lock {name!r}")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", [name])
