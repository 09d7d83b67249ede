"""Copies of a few Redis entries kept in each process, dropped the moment Redis says they changed.

Every authenticated request reads its session's entries (``accounts.session_cache``); with Redis
that round trip cost more than the rest of ``/validate``. Redis tells clients which keys changed
(server-assisted client-side caching, ``CLIENT TRACKING ... BCAST PREFIX``, Redis 6 or later): one
connection per process hears of every change to a key under the mirrored prefixes (a write, a
delete, an expiry, an eviction, a flush) as a message on ``__redis__:invalidate``. Each read first
takes the messages waiting on that connection (a poll, no round trip) and drops the copies they
name; when every entry asked for has a copy, no request goes to Redis.

Why a copy never outlives a change:

* Redis queues the message to every tracking connection while it runs the write, before it
  answers the writer: by the time a revocation has been answered, its message is on the way to
  every worker, and the next read there takes it before looking at a copy. The writing process
  also drops its own copies at once (``forget``), not waiting for its message.
* A read that went to Redis keeps what it read only if no message was taken meanwhile (the
  generation), so a change that raced the read is never stored over.
* Copies are used only while the connection has answered a ping within ``TRUSTED_FOR``: a
  closed connection (Redis restarted) drops them at once, a hung Redis or a half-open connection
  within ``TRUSTED_FOR``, and a new connection starts with none (a message may have been lost).
* A copy lives at most ``COPY_SECONDS`` in any case; callers check lifetimes that are part of
  the value (a session's idle timer) themselves, as Redis's expiry may lag behind its clock.

redis-py's own client-side caching (``cache_config``) does the same per connection but refuses
servers older than 7.4; this uses its public ``Connection`` in RESP2, the messages redirected to
the tracking connection itself. Other cache backends (the file cache, the in-process cache of
some tests) are read directly: they cost no network round trip.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Iterable

from django.core.cache import caches
from redis.connection import Connection
from redis.exceptions import RedisError, ResponseError

from config.cache import RedisCache
from config.outages import cache_outage

logger = logging.getLogger(__name__)

INVALIDATION_CHANNEL = b"__redis__:invalidate"
PING_EVERY = 0.25  # seconds: how often a busy process asks the tracking connection for a sign of life
TRUSTED_FOR = 1.0  # seconds since the last answer within which copies are used
COPY_SECONDS = 5.0
MAX_COPIES = 10_000  # past this, every copy is dropped (a process serves far fewer live sessions)
RECONNECT_SECONDS = 1.0
UNANSWERED_SECONDS = 5.0  # a ping unanswered this long: the connection is dropped and made again
_ABSENT = object()  # a copy of "no such key": revocation markers are mostly absent


class CacheMirror:
    """Process-local copies of the default cache's entries under ``prefixes`` (with Redis)."""

    def __init__(self, *, prefixes: Iterable[str]) -> None:
        self._prefixes = tuple(prefixes)
        self._lock = threading.Lock()
        self._copies: dict[str, tuple[float, object]] = {}  # Redis key -> (used until, value)
        self._generation = 0  # changes whenever a copy may have been dropped
        self._source: tuple = ()
        self._connection: Connection | None = None
        self._pid = 0
        self._connect_after = 0.0
        self._answered_at = 0.0
        self._ping_sent_at: float | None = None

    def get_many(self, keys: list[str]) -> dict[str, object]:
        """``cache.get_many(keys)``, from the copies when every key has a current one."""
        backend = caches["default"]
        if not isinstance(backend, RedisCache):
            return backend.get_many(keys)
        if not all(key.startswith(self._prefixes) for key in keys):
            raise ValueError("Only keys under the mirrored prefixes have copies that Redis keeps current.")
        redis_keys = [backend.make_key(key) for key in keys]
        with self._lock:
            tracking = self._messages_take(backend)
            if tracking:
                now = time.monotonic()
                copies = [self._copies.get(redis_key) for redis_key in redis_keys]
                if all(copy is not None and copy[0] > now for copy in copies):
                    return {
                        key: copy[1] for key, copy in zip(keys, copies, strict=True) if copy[1] is not _ABSENT
                    }
            generation = self._generation
        found = backend.get_many(keys)
        if tracking:
            with self._lock:
                if self._generation == generation and self._connection is not None:
                    self._store(redis_keys, [found.get(key, _ABSENT) for key in keys])
        return found

    def forget(self, keys: Iterable[str]) -> None:
        """Drop the copies of ``keys`` now: for the process that changed them (its own message
        may still be on the way)."""
        backend = caches["default"]
        if not isinstance(backend, RedisCache):
            return
        with self._lock:
            for key in keys:
                self._copies.pop(backend.make_key(key), None)
            self._generation += 1

    # --- under the lock ---------------------------------------------------------------------

    def _store(self, redis_keys: list[str], values: list[object]) -> None:
        if len(self._copies) > MAX_COPIES:
            self._copies.clear()
        until = time.monotonic() + COPY_SECONDS
        for redis_key, value in zip(redis_keys, values, strict=True):
            self._copies[redis_key] = (until, value)

    def _messages_take(self, backend: RedisCache) -> bool:
        """Drop the copies Redis said changed; whether the copies may be used."""
        if self._source != backend.tracking_source or self._pid != os.getpid():
            self._reset(backend)  # another cache (a test's settings) or a forked process
        if self._connection is None and not self._connect(backend):
            return False
        connection = self._connection
        now = time.monotonic()
        try:
            while connection.can_read(timeout=0):
                self._message_apply(connection.read_response())
            if self._ping_sent_at is not None and now - self._ping_sent_at > UNANSWERED_SECONDS:
                raise RedisError("the tracking connection stopped answering")
            if self._ping_sent_at is None and now - self._answered_at >= PING_EVERY:
                connection.send_command("PING")
                self._ping_sent_at = now
        except (RedisError, OSError) as error:
            self._lose(error)
            return False
        return now - self._answered_at < TRUSTED_FOR

    def _message_apply(self, message: object) -> None:
        kind = message[0] if isinstance(message, list) and message else None
        if kind == b"pong" and self._ping_sent_at is not None:
            # Redis answers in order: every message about a change made before it read the ping
            # has been taken by now.
            self._answered_at, self._ping_sent_at = self._ping_sent_at, None
            return
        self._generation += 1
        if kind == b"message" and message[1] == INVALIDATION_CHANNEL:
            keys = message[2]
            if keys is None:  # FLUSHDB / FLUSHALL
                self._copies.clear()
            else:
                for key in keys:
                    self._copies.pop(key.decode(), None)
        else:  # nothing else is sent on a subscribed connection: drop everything rather than guess
            self._copies.clear()

    def _connect(self, backend: RedisCache) -> bool:
        now = time.monotonic()
        if now < self._connect_after:
            return False
        self._connect_after = now + RECONNECT_SECONDS
        connection = backend.tracking_connection()
        try:
            connection.connect()
            connection.send_command("CLIENT", "ID")
            own_id = connection.read_response()
            prefixes = [part for prefix in self._prefixes for part in ("PREFIX", backend.make_key(prefix))]
            connection.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", own_id, "BCAST", *prefixes)
            connection.read_response()
            connection.send_command("SUBSCRIBE", INVALIDATION_CHANNEL)
            connection.read_response()
        except ResponseError as error:  # an ACL without CLIENT or SUBSCRIBE, a server before 6.0
            connection.disconnect()
            logger.warning("Redis refused to track keys (%s): every request reads the cache.", error)
            self._connect_after = math.inf
            return False
        except (RedisError, OSError) as error:
            connection.disconnect()
            cache_outage.report(error)
            return False
        self._connection = connection
        self._answered_at, self._ping_sent_at = now, None
        self._copies.clear()  # messages may have been lost while no connection tracked
        self._generation += 1
        return True

    def _lose(self, error: BaseException) -> None:
        logger.warning(
            "The cache's tracking connection failed (%s): its copies are dropped.", type(error).__name__
        )
        if self._connection is not None:
            self._connection.disconnect()
        self._connection = None
        self._copies.clear()
        self._generation += 1

    def _reset(self, backend: RedisCache) -> None:
        # A forked child must not use (or close) its parent's socket: it only lets go of it.
        if self._connection is not None and self._pid == os.getpid():
            self._connection.disconnect()
        self._source, self._pid, self._connection = backend.tracking_source, os.getpid(), None
        self._copies.clear()
        self._generation += 1
        self._connect_after = 0.0
