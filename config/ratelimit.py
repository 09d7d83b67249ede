"""Attempts counted in the cache, atomically: at most ``limit`` in any ``seconds`` long stretch.

A counter per clock-aligned window of ``seconds``: an attempt adds one to the current window's
counter (``add``, else ``incr``: one atomic step in Redis, and in the file cache on one
machine), and is allowed while that count plus the previous window's stays within ``limit``;
a refused attempt takes its one back, so hammering does not lengthen a refusal. Any stretch of
``seconds`` lies within two adjacent windows, so it never holds more than ``limit`` allowed
attempts; a refusal lasts at most two windows.

Why not DRF's own throttle: it reads the list of recent attempts, appends, and writes it back,
so requests arriving together all read the same list and all pass, however many they are.
"""

from __future__ import annotations

import math

from django.core.cache import cache


def _window_key(key: str, window: int) -> str:
    return f"{key}:w{window}"


def _lifetime(seconds: int) -> int:
    return 2 * seconds + 1  # a window's counter is read through the window after it


def _count_one(key: str, seconds: int) -> int:
    """Add one to ``key``'s counter (made, to outlive the window after it, if missing)."""
    while True:
        if cache.add(key, 1, timeout=_lifetime(seconds)):
            return 1
        try:
            count = cache.incr(key)
        except ValueError:  # expired (or evicted) between add and incr: make it again
            continue
        if count == 1:
            # Django's Redis incr is EXISTS then INCRBY: a key gone in between comes back
            # without an expiry, which a volatile-* eviction policy would never remove.
            cache.touch(key, timeout=_lifetime(seconds))
        return count


def attempt_take(*, key: str, limit: int, seconds: int, now: float) -> float | None:
    """Count one attempt under ``key``: None when it is allowed, else the seconds until one would be.

    Raises the cache's errors (``config.cache.CACHE_ERRORS``): callers fail closed.
    """
    window = math.floor(now / seconds)
    current = _count_one(_window_key(key, window), seconds)
    before = cache.get(_window_key(key, window - 1), 0)
    if current + before <= limit:
        return None
    attempt_return(key=key, seconds=seconds, now=now)
    # Next window, the previous count is this one's (without the refused attempts): if that
    # alone fills the limit, wait for the window after.
    windows = 1 if current - 1 < limit else 2
    return (window + windows) * seconds - now


def attempt_return(*, key: str, seconds: int, now: float) -> None:
    """Take back an attempt counted by :func:`attempt_take` at ``now`` (it did not count after all)."""
    window_key = _window_key(key, math.floor(now / seconds))
    try:
        if cache.decr(window_key) < 1:
            cache.touch(window_key, timeout=_lifetime(seconds))  # as in _count_one
    except ValueError:
        pass  # the window's counter is gone: nothing to take back
