"""A failing dependency is reported once per outage burst, and answered 503 with Retry-After.

When PostgreSQL or Redis goes away, every request fails the same way: a traceback (or a
warning) per request would bury the one line that matters. Each dependency's reporter logs the
first failure, then at most once per ``REPORT_INTERVAL`` while it lasts; the request is marked,
so Django's own per-response error line is dropped for it (``config.logging.OutageFilter``).
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest

logger = logging.getLogger("portal.outages")

REPORT_INTERVAL_SECONDS = 60.0
RETRY_AFTER_SECONDS = 5
# A connection that cannot be made or was lost; not a constraint violation or a bad query.
DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


class OutageReporter:
    def __init__(self, dependency: str) -> None:
        self.dependency = dependency
        self._last_report = -REPORT_INTERVAL_SECONDS
        self._lock = threading.Lock()

    def report(self, error: BaseException, request: HttpRequest | None = None) -> None:
        if request is not None:
            request.dependency_outage = self.dependency
        now = time.monotonic()
        with self._lock:
            if now - self._last_report < REPORT_INTERVAL_SECONDS:
                return
            self._last_report = now
        logger.error(
            "%s unreachable: %s: %s (reported once a minute while it lasts)",
            self.dependency,
            type(error).__name__,
            str(error).splitlines()[0][:200] if str(error) else "",
        )


database_outage = OutageReporter("database")
cache_outage = OutageReporter("session cache")
gitops_remote_outage = OutageReporter("gitops remote")
