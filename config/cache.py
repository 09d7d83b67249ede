"""What a cache outage looks like, so callers catch exactly that and nothing else."""

from __future__ import annotations

from django.db import DatabaseError
from redis.exceptions import RedisError

# Redis (RedisCache) raises RedisError subclasses (ConnectionError, TimeoutError...); a socket
# failure below it can surface as an OSError; the database cache raises DatabaseError. A
# programming error (TypeError, a parse error in the request...) is none of these.
CACHE_ERRORS: tuple[type[Exception], ...] = (RedisError, OSError, DatabaseError)
