"""The cache: what an outage looks like (so callers catch exactly that), the Redis backend, and the
file cache used without Redis."""

from __future__ import annotations

import fcntl
import os
import pickle
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.cache.backends.base import DEFAULT_TIMEOUT
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.db import DatabaseError
from redis.backoff import NoBackoff
from redis.connection import Connection, ConnectionPool, parse_url
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.retry import Retry

# Redis (RedisCache) raises RedisError subclasses (ConnectionError, TimeoutError...); a socket
# failure below it can surface as an OSError; the database cache raises DatabaseError. A
# programming error (TypeError, a parse error in the request...) is none of these.
CACHE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, DatabaseError)


class _OneClientPerPool(RedisCacheClient):
    """Django's Redis client, keeping one ``redis.Redis`` per connection pool.

    Django builds a new ``redis.Redis`` object for every cache operation, which costs more than
    the round trip on an authenticated request; the object is thread-safe and cheap to keep.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, object] = {}

    def get_client(self, key=None, *, write: bool = False):
        pool = self._get_connection_pool(write)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class RedisCache(DjangoRedisCache):
    """Django's Redis cache backend with :class:`_OneClientPerPool`, and a broken connection tried
    again once (``RETRY_ON_A_NEW_CONNECTION``); otherwise the same."""

    def __init__(self, server, params) -> None:
        options = {"retry": RETRY_ON_A_NEW_CONNECTION, **params.get("OPTIONS", {})}
        super().__init__(server, {**params, "OPTIONS": options})
        self._class = _OneClientPerPool
        self._timeouts = {name: options[name] for name in TIMEOUT_OPTIONS if name in options}
        # What a tracking connection of ``config.cache_mirror`` is for: the server and the key
        # prefix (Django makes a backend object per thread; they share one connection). None with
        # read replicas: a replica read after the primary's message could be behind it.
        self.tracking_source = (self._servers[0], self.make_key("")) if len(self._servers) == 1 else None

    def tracking_connection(self) -> Connection:
        """A new, unconnected RESP2 connection to the server, with the cache's timeouts."""
        # RESP2 whatever the URL says: from_url would let ``?protocol=3`` override the argument.
        options = {**parse_url(self._servers[0]), **self._timeouts, "protocol": 2}
        return ConnectionPool(**options).make_connection()


TIMEOUT_OPTIONS = ("socket_connect_timeout", "socket_timeout")


# A pooled connection an outage broke fails its first command after Redis is back (the pool's
# check on handing it out does not catch the break), and Django builds the pool itself, so
# redis-py's default retry never applies: each thread of each worker answered one 503. A
# connection error is tried again once, at once, on a new connection; a timeout is not, so a hung
# Redis is still answered within one socket timeout. The cost: a command Redis ran but whose answer
# the broken connection lost is sent twice. For a rate limit's counter that is one attempt counted
# twice, or one given back twice (one attempt more); an ``add`` answers "already there" (one reset
# email or throttle audit row skipped). Only a connection breaking at that instant does it, which
# no client of the portal can arrange; sending counters through a second pool without retries was
# judged not worth its connections.
RETRY_ON_A_NEW_CONNECTION = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


class FileCache(FileBasedCache):
    """Django's file cache, swept of expired entries now and then instead of culled on every write.

    Django's lists every file of the folder on every write to decide whether to cull (O(entries):
    25 ms a write at 10,000 entries), removes an expired entry only when it is read, and past
    ``MAX_ENTRIES`` deletes a random third of them, live sessions' idle timers included. Here a
    write costs the same whatever the folder holds: at most once per ``SWEEP_SECONDS`` a
    process sweeps the folder on a thread of its own, removing expired entries only, so what
    remains is what is alive (``MAX_ENTRIES`` is not used).

    ``add`` and ``incr`` are atomic among this machine's threads and processes (counters of
    attempts rely on it, ``config.ratelimit``), and ``incr`` keeps the entry's expiry: Django's
    read the value, add and write it back, so that two processes could both pass, and gave the
    entry the default timeout.
    """

    SWEEP_SECONDS = 60.0

    def __init__(self, dir, params) -> None:  # noqa: A002 (Django's name)
        super().__init__(dir, params)
        self._sweep_due = 0.0
        self._sweeping = threading.Lock()

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        """Exclusive among ``add`` and ``incr`` calls on this machine (a new descriptor each time:
        ``flock`` locks belong to an open file description, so threads exclude each other too)."""
        self._createdir()
        descriptor = os.open(os.path.join(self._dir, "atomic.lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)

    def add(self, key, value, timeout=DEFAULT_TIMEOUT, version=None) -> bool:
        with self._atomic():
            return super().add(key, value, timeout, version)

    def incr(self, key, delta=1, version=None) -> int:
        with self._atomic():
            value = self.get(key, version=version)  # None when missing or expired
            if value is None:
                raise ValueError(f"Key {key!r} not found.")
            with open(self._key_to_file(key, version), "rb") as entry:
                expiry = pickle.load(entry)  # noqa: S301 - the cache's own file, read as Django reads it (expiry first)
            value += delta
            self.set(
                key,
                value,
                timeout=None if expiry is None else max(expiry - time.time(), 0.001),
                version=version,
            )
            return value

    def _cull(self) -> None:  # Django calls it before each write
        now = time.monotonic()
        if now < self._sweep_due or not self._sweeping.acquire(blocking=False):
            return
        self._sweep_due = now + self.SWEEP_SECONDS
        threading.Thread(target=self._sweep, name="file-cache-sweep", daemon=True).start()

    def _sweep(self) -> None:
        try:
            for path in self._list_cache_files():
                try:
                    with open(path, "rb") as entry:
                        self._is_expired(entry)  # removes it when expired
                except OSError:  # removed by another process meanwhile
                    continue
        finally:
            self._sweeping.release()
