"""Each process's copies of the hot cache entries: no round trip while Redis says they are unchanged,
and never a copy that outlives a change, an outage or a hung server.

Needs a Redis server (REDIS_URL, as ``.ci/run`` sets it), reached through a proxy the tests cut;
round trips are counted where this process sends them.
"""

from __future__ import annotations

import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings
from redis.exceptions import ResponseError

from config import cache_mirror
from config.cache import CACHE_ERRORS, RedisCache
from config.cache_mirror import CacheMirror
from tests.support.tcp_proxy import TcpProxy

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="REDIS_URL is not set: no Redis server to track")
DB = 8
OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 2}  # as config/settings.py sets them


@pytest.fixture
def proxy():
    target = urlsplit(REDIS_URL)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 6379) as running:
        yield running


@pytest.fixture
def server() -> redis.Redis:
    """Redis itself, not through the proxy: what another replica's writes look like."""
    target = urlsplit(REDIS_URL)
    client = redis.Redis(host=target.hostname or "127.0.0.1", port=target.port or 6379, db=DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def portal_cache(proxy, server):
    """The default cache is Redis through the proxy, as config/settings.py configures it."""
    cache_setting = {
        "BACKEND": "config.cache.RedisCache",
        "LOCATION": f"redis://{proxy.address}/{DB}",
        "KEY_PREFIX": "mirror-test",
        "OPTIONS": OPTIONS,
    }
    with override_settings(CACHES={"default": cache_setting}):
        yield caches["default"]


@pytest.fixture
def other_replica(server) -> RedisCache:
    """The same cache as another replica writes it: straight to Redis."""
    target = urlsplit(REDIS_URL)
    return RedisCache(
        f"redis://{target.hostname or '127.0.0.1'}:{target.port or 6379}/{DB}",
        {"KEY_PREFIX": "mirror-test", "OPTIONS": OPTIONS},
    )


@pytest.fixture
def mirror(portal_cache) -> CacheMirror:
    mirror = CacheMirror(prefixes=("hot:",))
    yield mirror
    mirror.close()


def _tracking(mirror: CacheMirror, keys: list[str]) -> None:
    """Read until the process's keeper tracks the keys (it connects in the background)."""
    deadline = time.monotonic() + 5
    while not mirror.tracking:
        mirror.get_many(keys)
        assert time.monotonic() < deadline, "the mirror never started tracking"
        time.sleep(0.01)


def _counting_reads(backend: RedisCache) -> list[list[str]]:
    """Every read this thread's backend sends to Redis from now on (the copies answer the rest)."""
    reads: list[list[str]] = []
    read = backend.get_many
    backend.get_many = lambda keys: reads.append(keys) or read(keys)
    return reads


def _settled() -> None:
    """Long enough for Redis's message to reach this process through the proxy's thread (a
    request would take it at once; here the keeper has taken it too, whatever the load)."""
    time.sleep(cache_mirror.PING_EVERY * 3)


def test_a_copy_saves_the_round_trip_until_another_replica_changes_the_entry(
    mirror, portal_cache, other_replica, server
):
    portal_cache.set("hot:session", {"seen": 1})
    keys = ["hot:session", "hot:revoked"]
    _tracking(mirror, keys)
    assert mirror.get_many(keys) == {"hot:session": {"seen": 1}}
    reads = _counting_reads(portal_cache)
    for _ in range(20):
        assert mirror.get_many(keys) == {"hot:session": {"seen": 1}}
    assert reads == []

    other_replica.set("hot:revoked", 1)  # a marker that was absent appears
    _settled()
    assert mirror.get_many(keys) == {"hot:session": {"seen": 1}, "hot:revoked": 1}
    other_replica.delete("hot:session")
    _settled()
    assert mirror.get_many(keys) == {"hot:revoked": 1}
    other_replica.clear()  # FLUSHDB
    _settled()
    assert mirror.get_many(keys) == {}
    assert len(reads) == 3


def test_the_writing_process_sees_its_own_change_at_once(mirror, portal_cache, monkeypatch):
    portal_cache.set("hot:claims", "old")
    _tracking(mirror, ["hot:claims"])
    assert mirror.get_many(["hot:claims"]) == {"hot:claims": "old"}
    monkeypatch.setattr(mirror._connection, "can_read", lambda timeout=0: False)  # its message: not yet here
    portal_cache.set("hot:claims", "new")
    mirror.forget(["hot:claims"])  # no wait for Redis's message
    assert mirror.get_many(["hot:claims"]) == {"hot:claims": "new"}


def test_a_read_that_raced_a_change_is_not_kept(mirror, portal_cache, other_replica, monkeypatch):
    portal_cache.set("hot:claims", "old")
    _tracking(mirror, ["hot:other"])
    read_from_redis = portal_cache.get_many

    def change_lands_after_the_read(keys):
        found = read_from_redis(keys)
        monkeypatch.undo()
        other_replica.set("hot:claims", "new")
        _settled()
        mirror.get_many(["hot:other"])  # another request of this process takes Redis's message
        return found

    monkeypatch.setattr(portal_cache, "get_many", change_lands_after_the_read)
    assert mirror.get_many(["hot:claims"]) == {"hot:claims": "old"}  # what that request read
    assert mirror.get_many(["hot:claims"]) == {"hot:claims": "new"}


def test_a_change_made_while_the_connection_was_down_is_seen(mirror, portal_cache, other_replica, proxy):
    portal_cache.set("hot:session", "before")
    _tracking(mirror, ["hot:session"])
    assert mirror.get_many(["hot:session"]) == {"hot:session": "before"}
    proxy.refuse()  # Redis restarts: every connection of this process is cut
    other_replica.set("hot:session", "after")  # no message can reach this process
    proxy.forward()
    assert mirror.get_many(["hot:session"]) == {"hot:session": "after"}
    _tracking(mirror, ["hot:session"])  # again, on a new connection
    for _ in range(3):
        assert mirror.get_many(["hot:session"]) == {"hot:session": "after"}


@pytest.mark.parametrize(
    ("outage", "noticed_after"),
    [
        ("refuse", 0.0),  # Redis stops: its connections end, and the very next read knows
        ("hang", cache_mirror.TRUSTED_FOR + cache_mirror.PING_EVERY),  # no answer to the pings
    ],
)
def test_no_copy_is_used_once_redis_stops_or_hangs(mirror, portal_cache, proxy, outage, noticed_after):
    portal_cache.set("hot:session", "alive")
    _tracking(mirror, ["hot:session"])
    assert mirror.get_many(["hot:session"]) == {"hot:session": "alive"}
    proxy.mode_set(outage)
    time.sleep(noticed_after)
    with pytest.raises(CACHE_ERRORS):  # answered 503 by its callers: fails closed
        mirror.get_many(["hot:session"])
    proxy.forward()


def test_copies_end_after_their_lifetime(mirror, portal_cache, monkeypatch):
    portal_cache.set("hot:session", "value")
    _tracking(mirror, ["hot:session"])
    mirror.get_many(["hot:session"])
    reads = _counting_reads(portal_cache)
    mirror.get_many(["hot:session"])
    assert reads == []
    monkeypatch.setattr(cache_mirror, "COPY_SECONDS", 0.0)
    mirror.forget(["hot:session"])
    mirror.get_many(["hot:session"])
    mirror.get_many(["hot:session"])
    assert len(reads) == 2


def test_keys_outside_the_mirrored_prefixes_are_refused(mirror):
    with pytest.raises(ValueError, match="mirrored prefixes"):
        mirror.get_many(["cold:key"])


def test_a_redis_user_not_allowed_to_track_reads_redis_every_time(server, caplog):
    """An ACL without CLIENT (or a server older than 6.0): no copies, one warning, no outage."""
    target = urlsplit(REDIS_URL)
    user = f"mirror-test-{uuid.uuid4().hex[:8]}"  # the server's users are global: one of this run's own
    server.acl_setuser(user, enabled=True, passwords=["+mirror-test-pw"], keys=["*"], channels=["*"],
                       commands=["+@all", "-client"])  # fmt: skip
    try:
        location = (
            f"redis://{user}:mirror-test-pw@{target.hostname or '127.0.0.1'}:{target.port or 6379}/{DB}"
        )
        cache_setting = {"BACKEND": "config.cache.RedisCache", "LOCATION": location, "OPTIONS": OPTIONS}
        with override_settings(CACHES={"default": cache_setting}):
            caches["default"].set("hot:session", "value")
            mirror = CacheMirror(prefixes=("hot:",))
            mirror.get_many(["hot:session"])  # starts the keeper, which is refused
            time.sleep(cache_mirror.PING_EVERY * 3)
            reads = _counting_reads(caches["default"])
            for _ in range(3):
                assert mirror.get_many(["hot:session"]) == {"hot:session": "value"}
            assert len(reads) == 3
    finally:
        server.acl_deluser(user)
    refusals = [record for record in caplog.records if "refused to track" in record.getMessage()]
    assert len(refusals) == 1


def test_whatever_else_arrives_on_the_channel_drops_copies_and_answers(
    mirror, portal_cache, other_replica, server, caplog
):
    """Any client of the server may PUBLISH on Redis's invalidation channel (it ignores databases)."""
    portal_cache.set("hot:session", "alive")
    keys = ["hot:session", "hot:revoked"]
    _tracking(mirror, keys)
    assert mirror.get_many(keys) == {"hot:session": "alive"}
    reads = _counting_reads(portal_cache)
    for count, junk in enumerate((b"x", b"", b"\xff"), start=1):
        server.publish("__redis__:invalidate", junk)
        _settled()
        assert mirror.get_many(keys) == {"hot:session": "alive"}
        assert len(reads) == count  # the copies were dropped
        assert mirror.tracking  # and the connection kept

    # One message names every key of a prefix changed at once: a key that is not UTF-8 (none of
    # the portal's) must not keep the others' copies.
    with server.pipeline(transaction=True) as both:  # one event-loop turn: one message naming both
        both.set(other_replica.make_key("hot:revoked"), 1)
        both.set(other_replica.make_key("hot:\xff").encode("utf-8", "surrogateescape") + b"\xff", b"1")
        both.execute()
    _settled()
    assert mirror.get_many(keys) == {"hot:session": "alive", "hot:revoked": 1}
    assert mirror.tracking
    assert not [record for record in caplog.records if "tracking connection failed" in record.getMessage()]


def test_an_idle_process_leaves_no_messages_piling_up_in_redis(mirror, portal_cache, other_replica, server):
    """Redis keeps what a tracking connection has not read in its own memory (up to 32 MB each),
    once the socket's buffers are full: 20 MB of other replicas' changes fill them."""
    _tracking(mirror, ["hot:session"])
    with server.pipeline(transaction=False) as pipeline:
        for index in range(20_000):
            pipeline.set(other_replica.make_key(f"hot:session:{index:04}:" + "x" * 1000), 1)
        pipeline.execute()
    deadline = time.monotonic() + 2  # well within UNANSWERED_SECONDS: the connection is the same
    while (pending := _unread_bytes_in_redis(server)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pending == 0


def _unread_bytes_in_redis(server: redis.Redis) -> int:
    [mirror_client] = [
        client
        for client in server.client_list(_type="pubsub")
        if client["name"] == cache_mirror.CONNECTION_NAME and client["db"] == str(DB)
    ]
    return int(mirror_client["omem"])


def test_while_redis_hangs_no_request_waits_for_another(mirror, portal_cache, proxy, monkeypatch):
    """The keeper makes connections (each try waits up to a socket timeout) apart from requests:
    each request waits for its own read only, and is answered 503 within one socket timeout."""
    monkeypatch.setattr(cache_mirror, "UNANSWERED_SECONDS", 0.5)
    portal_cache.set("hot:session", "alive")
    _tracking(mirror, ["hot:session"])
    proxy.hang()
    time.sleep(1)  # the keeper has given up on the connection and is trying to make another

    def read(_index: int) -> float:
        started = time.monotonic()
        with pytest.raises(CACHE_ERRORS):  # each thread reads through a backend of its own, as in gunicorn
            mirror.get_many(["hot:session"])
        return time.monotonic() - started

    with ThreadPoolExecutor(max_workers=6) as pool:
        waits = list(pool.map(read, range(6)))
    proxy.forward()
    assert max(waits) < OPTIONS["socket_timeout"] + 1, waits


def test_with_read_replicas_every_read_goes_to_redis(server):
    """Django reads from any replica listed after the primary, which may lag behind its messages."""
    target = urlsplit(REDIS_URL)
    primary = f"redis://{target.hostname or '127.0.0.1'}:{target.port or 6379}/{DB}"
    cache_setting = {"BACKEND": "config.cache.RedisCache", "LOCATION": [primary, primary], "OPTIONS": OPTIONS}
    with override_settings(CACHES={"default": cache_setting}):
        caches["default"].set("hot:session", "value")
        mirror = CacheMirror(prefixes=("hot:",))
        reads = _counting_reads(caches["default"])
        for _ in range(5):
            assert mirror.get_many(["hot:session"]) == {"hot:session": "value"}
            time.sleep(cache_mirror.PING_EVERY)
        assert len(reads) == 5
        assert not mirror.tracking


def test_a_redis_busy_or_a_surprise_while_connecting_is_tried_again(mirror, portal_cache, monkeypatch):
    """Only a refusal (an ACL, an old server) turns copies off for good."""
    monkeypatch.setattr(cache_mirror, "RECONNECT_SECONDS", 0.05)
    make_connection = portal_cache.tracking_connection
    failures = [ResponseError("BUSY Redis is busy running a script."), ValueError("anything unexpected")]

    def flaky_connection():
        if failures:
            raise failures.pop(0)
        return make_connection()

    monkeypatch.setattr(portal_cache, "tracking_connection", flaky_connection)
    portal_cache.set("hot:session", "alive")
    _tracking(mirror, ["hot:session"])
    assert failures == []


def test_a_url_that_asks_for_resp3_still_gets_copies(server):
    target = urlsplit(REDIS_URL)
    location = f"redis://{target.hostname or '127.0.0.1'}:{target.port or 6379}/{DB}?protocol=3"
    cache_setting = {"BACKEND": "config.cache.RedisCache", "LOCATION": location, "OPTIONS": OPTIONS}
    with override_settings(CACHES={"default": cache_setting}):
        caches["default"].set("hot:session", "value")
        mirror = CacheMirror(prefixes=("hot:",))
        try:
            _tracking(mirror, ["hot:session"])
        finally:
            mirror.close()
