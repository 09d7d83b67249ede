"""One writer at a time on the gitops branch, across threads and processes.

PostgreSQL: a session-level advisory lock, so that portal processes on several hosts
(sharing one database, each with its own clone) serialize too. Otherwise: ``flock`` on a
file next to the repository (``gitops.repository.file_lock``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from gitops.repository import file_lock

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

    with file_lock(lock_file_path(repo_path=repo_path)):
        yield
