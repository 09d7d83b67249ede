"""The cache: what an outage looks like (so callers catch exactly that), and the Redis backend."""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient
from django.db import DatabaseError
from redis.exceptions import RedisError

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
    """Django's Redis cache backend with :class:`_OneClientPerPool`; otherwise the same."""

    def __init__(self, server, params) -> None:
        super().__init__(server, params)
        self._class = _OneClientPerPool
