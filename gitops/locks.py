"""One writer at a time on the gitops branch, across threads and processes.

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

# Fixed: every portal process must agree on it. "gitops" in ASCII, well inside int64.
ADVISORY_LOCK_KEY = 0x676974_6F7073
# MySQL/MariaDB: named locks are per server, not per database as PostgreSQL's advisory locks
# are, so the name carries the database's; MySQL refuses names over 64 characters.
NAMED_LOCK_PREFIX = "qdrant-portal.gitops:"
NAMED_LOCK_NAME_MAX = 64
# GET_LOCK waits at most this long per call (MariaDB has no "for ever"); it is asked again.
NAMED_LOCK_WAIT_SECONDS = 60


def named_lock_name(*, database: str) -> str:
    """The MySQL/MariaDB lock name of the branch lock for one database (at most 64 characters)."""
    name = f"{NAMED_LOCK_PREFIX}{database}"
    if len(name) > NAMED_LOCK_NAME_MAX:
        digest = hashlib.sha256(database.encode()).hexdigest()
        name = f"{NAMED_LOCK_PREFIX}{digest}"[:NAMED_LOCK_NAME_MAX]
    return name


def lock_file_path(*, repo_path: Path) -> Path:
    repo_path = Path(repo_path)
    return repo_path.with_name(f"{repo_path.name}.lock")


@contextmanager
def branch_lock(*, repo_path: Path) -> Iterator[None]:
    """Hold the gitops writers' lock for the duration of the block."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK_KEY])
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_KEY])
        return
    if connection.vendor == "mysql":
        with _named_lock(name=named_lock_name(database=connection.settings_dict["NAME"])):
            yield
        return

    with file_lock(lock_file_path(repo_path=repo_path)):
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
