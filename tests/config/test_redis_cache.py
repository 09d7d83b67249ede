"""The Redis cache after an outage: a connection the outage broke costs no request.

Needs a Redis server (REDIS_URL, as ``.ci/run`` sets it); reached through a proxy the test cuts.
"""

from __future__ import annotations

import os
import time
from urllib.parse import urlsplit

import pytest

from config.cache import CACHE_ERRORS, RedisCache
from tests.support.tcp_proxy import TcpProxy

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set: no Redis server to cut off")


@pytest.fixture
def proxy():
    target = urlsplit(REDIS_URL)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 6379) as running:
        yield running


def _cache(proxy: TcpProxy) -> RedisCache:
    # As config/settings.py configures it, through the proxy.
    options = {"socket_connect_timeout": 2, "socket_timeout": 2}
    return RedisCache(f"redis://{proxy.address}/7", {"KEY_PREFIX": "redis-cache-test", "OPTIONS": options})


@pytest.mark.parametrize("round_", range(5))  # the break reaches the client with the RST: every round
def test_the_first_request_after_redis_restarts_is_answered(proxy, round_):
    cache = _cache(proxy)
    cache.set("kept", "value")  # the pool now holds an open connection, idle
    proxy.refuse()  # Redis goes away: the open connection is cut
    proxy.forward()  # and comes back before this process sends anything
    assert cache.get("kept") == "value"


def test_a_hung_redis_is_still_answered_within_one_socket_timeout(proxy):
    """Connection errors are tried again on a new connection; a timeout is not (twice as long)."""
    cache = _cache(proxy)
    cache.set("kept", "value")
    proxy.hang()
    started = time.monotonic()
    with pytest.raises(CACHE_ERRORS):
        cache.get("kept")
    assert time.monotonic() - started < 3  # socket_timeout is 2 s
    proxy.forward()
