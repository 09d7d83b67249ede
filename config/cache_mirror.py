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
* Copies are used only while the connection has answered a ping sent within ``TRUSTED_FOR``: a
  closed connection (Redis restarted) drops them at once; a hung Redis, or a path to it that
  stalls while Redis still takes other processes' writes, stops them counting within
  ``TRUSTED_FOR`` (the one window in which a change may go unseen here); a new connection
  starts with none (a message may have been lost).
* A copy lives at most ``COPY_SECONDS`` in any case; callers check lifetimes that are part of
  the value (a session's idle timer) themselves, as Redis's expiry may lag behind its clock.

A thread per process (the keeper) makes the connection, pings it every ``PING_EVERY`` and takes
its messages between requests, so a request never waits for a connection to be made and an idle
process never lets Redis pile up messages for it (they would count against Redis's memory).

redis-py's own client-side caching (``cache_config``) does the same per connection but refuses
servers older than 7.4; this uses its public ``Connection`` in RESP2, the messages redirected to
the tracking connection itself. Other cache backends (the file cache, the in-process cache of
some tests) are read directly: they cost no network round trip; so is Redis with read replicas.
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
from redis.exceptions import NoPermissionError, RedisError, ResponseError

from config.cache import RedisCache
from config.outages import cache_outage

logger = logging.getLogger(__name__)

INVALIDATION_CHANNEL = b"__redis__:invalidate"
CONNECTION_NAME = "portal-cache-mirror"
PING_EVERY = 0.1  # seconds between the keeper's pings (and its taking of messages)
TRUSTED_FOR = 0.5  # seconds: copies count while a ping sent this recently has been answered
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
        self._backend: RedisCache | None = None  # whose server the keeper tracks
        self._connection: Connection | None = None
        self._pid = 0  # the process the connection and the keeper belong to
        self._closed = False
        self._connect_after = 0.0
        self._answered_at = -math.inf
        self._ping_sent_at: float | None = None
        # A child forked while the keeper held the lock would find it held forever.
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._lock = threading.Lock()

    def get_many(self, keys: list[str]) -> dict[str, object]:
        """``cache.get_many(keys)``, from the copies when every key has a current one."""
        backend = caches["default"]
        if not isinstance(backend, RedisCache) or backend.tracking_source is None:
            return backend.get_many(keys)
        if not all(key.startswith(self._prefixes) for key in keys):
            raise ValueError("Only keys under the mirrored prefixes have copies that Redis keeps current.")
        redis_keys = [backend.make_key(key) for key in keys]
        with self._lock:
            self._follow(backend)
            tracking = self._messages_take()
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
        if not isinstance(backend, RedisCache) or backend.tracking_source is None:
            return
        with self._lock:
            for key in keys:
                self._copies.pop(backend.make_key(key), None)
            self._generation += 1

    @property
    def tracking(self) -> bool:
        """Whether copies count now: a connection tracks, and answered a recent ping."""
        with self._lock:
            return self._pid == os.getpid() and self._messages_take()

    def close(self) -> None:
        """Stop the keeper and let go of the connection (the copies go with it)."""
        with self._lock:
            self._closed = True
            self._lose(None)

    # --- under the lock ---------------------------------------------------------------------

    def _follow(self, backend: RedisCache) -> None:
        """Track ``backend``'s server from this process (a new process, or a test's other cache)."""
        if self._pid == os.getpid() and self._backend is not None:
            if self._backend.tracking_source == backend.tracking_source:
                return
            self._lose(None)
        self._backend, self._pid, self._connection = backend, os.getpid(), None  # a forked child lets go
        self._copies.clear()
        self._generation += 1
        self._connect_after = 0.0
        self._closed = False
        threading.Thread(target=self._keep, args=(backend,), name="cache-mirror", daemon=True).start()

    def _store(self, redis_keys: list[str], values: list[object]) -> None:
        now = time.monotonic()
        if len(self._copies) > MAX_COPIES:
            self._copies = {key: copy for key, copy in self._copies.items() if copy[0] > now}
            if len(self._copies) > MAX_COPIES:
                self._copies.clear()
        until = now + COPY_SECONDS
        for redis_key, value in zip(redis_keys, values, strict=True):
            self._copies[redis_key] = (until, value)

    def _messages_take(self) -> bool:
        """Drop the copies Redis said changed; whether the copies may be used."""
        connection = self._connection
        if connection is None:
            return False
        try:
            while connection.can_read(timeout=0):
                self._message_apply(connection.read_response())
        except Exception as error:  # noqa: BLE001 - whatever broke the tracking connection, no copy counts
            self._lose(error)
            return False
        return time.monotonic() - self._answered_at < TRUSTED_FOR

    def _message_apply(self, message: object) -> None:
        if message == [b"pong", b""] and self._ping_sent_at is not None:
            # Redis answers in order: every message about a change made before it read the ping
            # has been taken by now.
            self._answered_at, self._ping_sent_at = self._ping_sent_at, None
            return
        self._generation += 1
        keys = _invalidated_keys(message)
        if keys is None:
            self._copies.clear()
        else:
            for key in keys:
                self._copies.pop(key, None)

    def _ping(self) -> None:
        """The keeper's turn: take what waits, then ping, or give up on a connection that stopped
        answering (a new one is made)."""
        self._messages_take()
        if self._connection is None:
            return
        now = time.monotonic()
        if self._ping_sent_at is None:
            self._connection.send_command("PING")
            self._ping_sent_at = now
        elif now - self._ping_sent_at > UNANSWERED_SECONDS:
            self._lose(RedisError("the tracking connection stopped answering"))

    def _lose(self, error: BaseException | None) -> None:
        if error is not None:
            logger.warning(
                "The cache's tracking connection failed (%s): its copies are dropped.", type(error).__name__
            )
        if self._connection is not None:
            self._connection.disconnect()
        self._connection, self._ping_sent_at = None, None
        self._copies.clear()
        self._generation += 1

    # --- the keeper: a thread per process ---------------------------------------------------

    def _keep(self, backend: RedisCache) -> None:
        while True:
            with self._lock:
                if self._closed or self._backend is not backend or self._pid != os.getpid():
                    return  # closed, or another keeper follows another cache now
                if self._connection is not None:
                    try:
                        self._ping()
                    except Exception as error:  # noqa: BLE001 - as in _messages_take
                        self._lose(error)
                connect = self._connection is None and time.monotonic() >= self._connect_after
            if connect:
                try:
                    self._install(backend, self._connect(backend))
                except Exception:  # the keeper must outlive a surprise; requests read Redis meanwhile
                    logger.exception("The cache mirror could not connect; it tries again.")
            time.sleep(PING_EVERY)

    def _install(self, backend: RedisCache, connection: Connection | None) -> None:
        with self._lock:
            self._connect_after = time.monotonic() + RECONNECT_SECONDS
            if connection is None:
                return
            if self._closed or self._backend is not backend or self._connection is not None:
                connection.disconnect()
                return
            self._connection, self._answered_at, self._ping_sent_at = connection, time.monotonic(), None
            self._copies.clear()  # messages may have been lost while no connection tracked
            self._generation += 1

    def _connect(self, backend: RedisCache) -> Connection | None:
        """A connection tracking the prefixes (made without the lock: requests read Redis meanwhile)."""
        connection = None
        try:
            connection = backend.tracking_connection()
            connection.connect()
            connection.send_command("CLIENT", "SETNAME", CONNECTION_NAME)  # what operators see in CLIENT LIST
            connection.read_response()
            connection.send_command("CLIENT", "ID")
            own_id = connection.read_response()
            prefixes = [part for prefix in self._prefixes for part in ("PREFIX", backend.make_key(prefix))]
            connection.send_command("CLIENT", "TRACKING", "ON", "REDIRECT", own_id, "BCAST", *prefixes)
            connection.read_response()
            connection.send_command("SUBSCRIBE", INVALIDATION_CHANNEL)
            connection.read_response()
        except (RedisError, OSError) as error:
            if connection is not None:
                connection.disconnect()
            if _refused_for_good(error):
                logger.warning("Redis refused to track keys (%s): every request reads the cache.", error)
                with self._lock:
                    self._closed = True
            else:  # down, loading, busy with a script...: tried again
                cache_outage.report(error)
            return None
        return connection


def _refused_for_good(error: BaseException) -> bool:
    """An ACL without CLIENT, SUBSCRIBE or the channel; a server without tracking (before 6.0)."""
    return isinstance(error, NoPermissionError) or (
        isinstance(error, ResponseError) and str(error).lower().startswith("unknown")
    )


def _invalidated_keys(message: object) -> list[str] | None:
    """The keys an invalidation message names; None for a flush, and for anything else that comes
    (any client of the server may PUBLISH on the channel): then every copy goes."""
    if not (
        isinstance(message, list) and len(message) == 3 and message[:2] == [b"message", INVALIDATION_CHANNEL]
    ):
        return None
    keys = message[2]
    if not isinstance(keys, list) or not all(isinstance(key, bytes) for key in keys):
        return None
    # A key that is not UTF-8 is none of ours (ours are str); it must not stop the others.
    return [key.decode("utf-8", "surrogateescape") for key in keys]
