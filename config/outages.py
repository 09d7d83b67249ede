"""A failing dependency is reported once per outage burst, and answered 503 with Retry-After.

When PostgreSQL or Redis goes away, every request fails the same way: a traceback (or a
warning) per request would bury the one line that matters. Each dependency's reporter logs the
first failure, then at most once per ``REPORT_INTERVAL`` while it lasts; the request is marked,
so Django's own per-response error line is dropped for it (``config.logging.OutageFilter``).
A database that gave one transaction up for another's (a deadlock) is up: that is a warning line
per request, answered ``database_busy`` with a shorter Retry-After.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest

logger = logging.getLogger("portal.outages")

REPORT_INTERVAL_SECONDS = 60.0
# A connection that cannot be made or was lost; not a constraint violation or a bad query.
DATABASE_ERRORS: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


# A transaction the database gave up for another's sake, not a lost connection: PostgreSQL's
# serialization failure, deadlock and lock timeout; MySQL's lock wait timeout and deadlock;
# SQLite's busy timeout. Nothing of it was written.
_BUSY_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
_BUSY_DRIVER_CODES = frozenset({1205, 1213, "database is locked"})


def database_busy(error: BaseException) -> bool:
    """Whether a database error is contention (a transaction given up) rather than an outage."""
    cause = error.__cause__ or error  # Django's error wraps the driver's, which says which
    if getattr(cause, "sqlstate", None) in _BUSY_SQLSTATES:
        return True
    return bool(cause.args) and cause.args[0] in _BUSY_DRIVER_CODES


def database_failure_report(error: BaseException, request: HttpRequest | None = None) -> bool:
    """Log a database error as what it is; True when it is contention (``database_busy``): one
    line each, as a conflict, not the outage burst a lost database is reported as."""
    if request is not None:
        request.dependency_outage = "database"  # this line, not Django's per-response one
    if not database_busy(error):
        database_outage.report(error, request)
        return False
    logger.warning(
        "database busy: the transaction was given up for another's (%s: %s); answered 503, try again",
        type(error).__name__,
        str(error).splitlines()[0][:200] if str(error) else "",
    )
    return True


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
