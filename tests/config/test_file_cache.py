"""The file cache used without Redis: live entries are never culled, expired ones are swept."""

from __future__ import annotations

import time

import pytest
import time_machine

from config.cache import FileCache


@pytest.fixture
def file_cache(tmp_path):
    cache = FileCache(str(tmp_path / "cache"), {"OPTIONS": {"MAX_ENTRIES": 10}})
    yield cache
    cache._sweeping.acquire(timeout=10)  # no sweep left running into the next test


def _sweep_now(cache: FileCache) -> None:
    """A write once the sweep is due starts it; wait for its thread to finish."""
    # First let a sweep still running finish (the first write of a test starts one): a write
    # during it starts none, and on a busy machine the test then read what that older sweep left.
    assert cache._sweeping.acquire(timeout=10)
    cache._sweeping.release()
    cache._sweep_due = 0.0
    cache.set("trigger", 1)
    assert cache._sweeping.acquire(timeout=10)
    cache._sweeping.release()


def test_live_entries_are_never_culled_however_many(file_cache):
    # Django's file cache deletes a random third of the entries past MAX_ENTRIES (10 here):
    # a signed-in user's idle timer among them would sign them out.
    for n in range(40):
        file_cache.set(f"session:{n}", n, timeout=3600)
    _sweep_now(file_cache)
    assert [file_cache.get(f"session:{n}") for n in range(40)] == list(range(40))


def test_expired_entries_leave_the_folder_at_the_next_sweep_without_being_read(file_cache):
    for n in range(5):
        file_cache.set(f"throttle:{n}", n, timeout=60)
    file_cache.set("session", "alive", timeout=3600)
    files_before = len(file_cache._list_cache_files())
    with time_machine.travel(time.time() + 120):
        _sweep_now(file_cache)
        remaining = len(file_cache._list_cache_files())
        assert file_cache.get("session") == "alive"
    assert (files_before, remaining) == (6, 2)  # the session and the write that started the sweep


def test_a_sweep_runs_at_most_once_a_minute_per_process(file_cache):
    _sweep_now(file_cache)
    file_cache.set("expired-soon", 1, timeout=1)
    with time_machine.travel(time.time() + 5):
        file_cache.set("another-write", 2)  # the sweep is not due: nothing is listed or removed
        assert file_cache._sweeping.acquire(blocking=False)
        file_cache._sweeping.release()
        assert len(file_cache._list_cache_files()) == 3


def test_a_counter_keeps_its_expiry_when_counted(file_cache):
    with time_machine.travel(1_900_000_000, tick=False) as traveller:
        file_cache.add("attempts", 1, timeout=900)
        traveller.shift(600)
        assert file_cache.incr("attempts") == 2  # Django's gave it the default 300 s from now
        traveller.shift(301)
        assert file_cache.get("attempts") is None
        with pytest.raises(ValueError, match="not found"):
            file_cache.incr("attempts")


def _count_from_processes(location: str, key: str, rounds: int) -> None:
    counter = FileCache(location, {})
    for _ in range(rounds):
        if not counter.add(key, 1, timeout=60):
            counter.incr(key)


def test_counting_from_several_processes_loses_no_count(tmp_path):
    import multiprocessing

    location = str(tmp_path / "cache")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_count_from_processes, args=(location, "hits", 200)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0] * 4
    assert FileCache(location, {}).get("hits") == 800
