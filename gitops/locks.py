"""One writer at a time on the gitops branch, across threads and processes.

PostgreSQL: a session-level advisory lock, so that portal processes on several hosts
(sharing one database, each with its own clone) serialize too. Otherwise: ``flock`` on a
file next to the repository, with a new file descriptor per acquisition because flock
locks belong to an open file description, so two threads of one process exclude each
other only through separate descriptors.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from gitops.errors import RepositoryUnavailable

# Fixed: every portal process must agree on it. "gitops" in ASCII, well inside int64.
ADVISORY_LOCK_KEY = 0x676974_6F7073


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

    path = lock_file_path(repo_path=repo_path)
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
