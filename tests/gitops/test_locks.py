from __future__ import annotations

import multiprocessing
import threading
import time

import pytest
from django.db import connection

from gitops.locks import PUSH_NAMED_LOCK_PREFIX, branch_lock, lock_file_path, named_lock_name, push_lock

# Where the branch lock lives in the database (else: a file lock next to the repository).
DATABASE_LOCK_VENDORS = {"postgresql", "mysql"}


def _hold_and_record(repo_path, log, name: str, lock=branch_lock) -> None:
    with lock(repo_path=repo_path):
        log.append(f"{name}:in")
        time.sleep(0.05)
        log.append(f"{name}:out")


def _assert_never_overlapping(log) -> None:
    log = list(log)
    assert len(log) % 2 == 0 and log
    for i in range(0, len(log), 2):
        entered, left = log[i], log[i + 1]
        assert entered.endswith(":in")
        assert left == entered.replace(":in", ":out")


@pytest.mark.parametrize("lock", [branch_lock, push_lock])
@pytest.mark.django_db(transaction=True)
def test_threads_holding_the_branch_or_the_push_lock_never_overlap(tmp_path, lock):
    log: list[str] = []
    repo_path = tmp_path / "gitops.git"

    def worker(name: str) -> None:
        try:
            _hold_and_record(repo_path, log, name, lock)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    _assert_never_overlapping(log)
    assert len(log) == 12


@pytest.mark.django_db(transaction=True)
def test_a_push_in_flight_does_not_hold_up_the_next_commits(tmp_path):
    """The push lock and the branch lock are two locks: commits go on while a push is out."""
    repo_path = tmp_path / "gitops.git"
    pushing, done = threading.Event(), threading.Event()

    def pusher() -> None:
        try:
            with push_lock(repo_path=repo_path):
                pushing.set()
                done.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=pusher)
    thread.start()
    try:
        assert pushing.wait(10)
        committed = threading.Event()

        def committer() -> None:
            try:
                with branch_lock(repo_path=repo_path):
                    committed.set()
            finally:
                connection.close()

        other = threading.Thread(target=committer)
        other.start()
        other.join(timeout=5)
        assert committed.is_set()
    finally:
        done.set()
        thread.join(timeout=10)


def test_the_lock_file_sits_next_to_the_repository(tmp_path):
    assert lock_file_path(repo_path=tmp_path / "gitops.git") == tmp_path / "gitops.git.lock"
    assert (
        lock_file_path(repo_path=tmp_path / "gitops.git", suffix=".push.lock")
        == tmp_path / "gitops.git.push.lock"
    )


@pytest.mark.django_db(transaction=True)
def test_the_branch_lock_is_released_when_the_block_raises(tmp_path):
    repo_path = tmp_path / "gitops.git"
    with pytest.raises(RuntimeError), branch_lock(repo_path=repo_path):
        raise RuntimeError("boom")

    acquired = threading.Event()

    def again() -> None:
        with branch_lock(repo_path=repo_path):
            acquired.set()
        connection.close()

    thread = threading.Thread(target=again)
    thread.start()
    thread.join(timeout=5)
    assert acquired.is_set()


def _process_worker(repo_path, log, name, database_name) -> None:
    import django
    from django.conf import settings

    # The test database, not DATABASE_URL's own (which need not exist: the test runner made this one).
    settings.DATABASES["default"]["NAME"] = database_name
    django.setup()
    from django.db import connection as process_connection

    try:
        _hold_and_record(repo_path, log, name)
    finally:
        process_connection.close()


def _four_processes_hold_the_lock(context, target, tmp_path, *extra) -> None:
    """Four processes take the lock twice each; their holds must never overlap."""
    with context.Manager() as manager:
        log = manager.list()
        processes = [
            context.Process(target=target, args=(tmp_path / "gitops.git", log, f"p{i}", *extra))
            for i in range(4)
        ]
        for process in processes:
            process.start()
        for process in processes:
            process.join(timeout=60)
        assert all(process.exitcode == 0 for process in processes)
        _assert_never_overlapping(log)
        assert len(log) == 8


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_processes_holding_the_branch_lock_never_overlap_on_a_database_server(tmp_path):
    """PostgreSQL's advisory lock, or MariaDB's named lock (GET_LOCK), across processes."""
    if connection.vendor not in DATABASE_LOCK_VENDORS:
        pytest.skip("the database lock across processes needs PostgreSQL or MariaDB/MySQL")
    _four_processes_hold_the_lock(
        multiprocessing.get_context("spawn"), _process_worker, tmp_path, connection.settings_dict["NAME"]
    )


def test_processes_holding_the_file_lock_never_overlap(tmp_path):
    """The file-lock branch across processes (what SQLite deployments rely on)."""
    if connection.vendor in DATABASE_LOCK_VENDORS:
        pytest.skip(f"{connection.vendor} takes the lock in the database")
    _four_processes_hold_the_lock(multiprocessing.get_context("fork"), _hold_and_record, tmp_path)


def test_named_lock_names_fit_mysql_and_tell_databases_apart():
    assert named_lock_name(database="portal") == "qdrant-portal.gitops:portal"
    assert (
        named_lock_name(database="portal", prefix=PUSH_NAMED_LOCK_PREFIX)
        == "qdrant-portal.gitops-push:portal"
    )
    long_names = [named_lock_name(database="x" * 64 + suffix) for suffix in ("a", "b")]
    assert all(len(name) == 64 for name in long_names)
    assert long_names[0] != long_names[1]


@pytest.mark.django_db(transaction=True)
def test_on_mariadb_the_named_lock_is_seen_by_other_connections_and_released_after_the_block(tmp_path):
    if connection.vendor != "mysql":
        pytest.skip("MariaDB/MySQL's named lock")
    name = named_lock_name(database=connection.settings_dict["NAME"])
    holder: list[int | None] = []

    def holder_of_the_lock() -> None:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT IS_USED_LOCK(%s)", [name])
                holder.append(cursor.fetchone()[0])
        finally:
            connection.close()

    with branch_lock(repo_path=tmp_path / "gitops.git"):
        with connection.cursor() as cursor:
            cursor.execute("SELECT CONNECTION_ID()")
            (own_id,) = cursor.fetchone()
        thread = threading.Thread(target=holder_of_the_lock)
        thread.start()
        thread.join()
    thread = threading.Thread(target=holder_of_the_lock)
    thread.start()
    thread.join()
    assert holder == [own_id, None]
    assert not lock_file_path(repo_path=tmp_path / "gitops.git").exists()  # no file lock beside it
