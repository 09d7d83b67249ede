"""Attempts counted in the cache: never more than the limit in any stretch of the period."""

from __future__ import annotations

import pytest
from django.test import override_settings

from config.ratelimit import attempt_return, attempt_take


@pytest.fixture(autouse=True)
def _in_process_cache():
    with override_settings(
        CACHES={
            "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "ratelimit"}
        }
    ):
        from django.core.cache import cache

        cache.clear()
        yield


def _take(now: float) -> float | None:
    return attempt_take(key="guesses", limit=3, seconds=60, now=now)


def test_the_limit_holds_across_the_clock_period_and_retry_after_says_when():
    start = 1_000_000_020  # a period begins here (a multiple of 60)
    assert [_take(start + second) for second in (50, 55, 59)] == [None] * 3
    # 1 s into the next period: three in the last minute, so refused until the period after.
    assert _take(start + 61) == pytest.approx(59)
    assert _take(start + 119) == pytest.approx(1)
    assert _take(start + 120) is None


def test_refused_attempts_do_not_count_and_a_right_one_can_be_taken_back():
    start = 1_000_000_020
    assert [_take(start + n) for n in range(3)] == [None] * 3
    assert _take(start + 3) == pytest.approx(117)  # this period is full: the next one starts full too
    for n in range(20):  # hammering while refused
        assert _take(start + 4 + n) is not None
    attempt_return(key="guesses", seconds=60, now=start + 2)  # the third one was right after all
    assert _take(start + 30) is None
    assert _take(start + 130) is None  # the next-but-one period: the refusals left nothing behind
