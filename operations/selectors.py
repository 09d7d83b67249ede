"""The system status: one probe per dependency, each bounded in time, none ever raising.

A probe answers what it found (``ok`` True with the figures) or why it could not
(``ok`` False and an ``error``: the exception's class and first line, with credentials and
tokens redacted). Probes that leave the process (the database, the cache, Argo CD) run at the
same time on threads of their own, with their own connections, and the page waits for them at
most ``PROBE_TIMEOUT_SECONDS``: a hung server is reported as not answering instead of holding
the request. The outbox is read only once the database probe has answered.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.filebased import FileBasedCache
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Count, Min
from django.utils import timezone

from accounts.keys import key_file_created
from accounts.tokens import key_ring
from clusters.deployments import argocd_configured, deployments_summary
from clusters.selectors import changes_pending, gitops_remote_state
from config.cache import CACHE_ERRORS
from config.logging import text_redact

PROBE_TIMEOUT_SECONDS = 3.0
# A database slower than this to answer `SELECT 1` makes every request slow.
SLOW_ROUND_TRIP_MS = 100.0
STATEMENT_TIMEOUT_MS = 2000

T = TypeVar("T")


def probe_error(error: BaseException) -> str:
    """What went wrong, for people: the exception's class and first line, secrets redacted."""
    lines = str(error).strip().splitlines()
    return text_redact(f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__)[:300]


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


# --- The database ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatabaseStatus:
    ok: bool
    error: str | None = None
    vendor: str = ""
    server_version: str = ""
    connections_in_use: int | None = None  # None: the database has no connections to count (SQLite)
    connections_max: int | None = None
    round_trip_ms: float | None = None
    slow: bool | None = None


def _scalar(cursor: Any, query: str) -> Any:
    cursor.execute(query)
    row = cursor.fetchone()
    return row[-1]  # SHOW STATUS / SHOW VARIABLES answer (name, value)


def _postgresql_stats(cursor: Any) -> tuple[str, int | None, int | None]:
    cursor.execute(f"SET statement_timeout = {STATEMENT_TIMEOUT_MS}")
    version = _scalar(cursor, "SHOW server_version")
    # Client connections only: background workers do not count against max_connections.
    in_use = _scalar(cursor, "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
    return str(version), int(in_use), int(_scalar(cursor, "SHOW max_connections"))


def _mysql_stats(cursor: Any) -> tuple[str, int | None, int | None]:
    version = _scalar(cursor, "SELECT VERSION()")
    in_use = _scalar(cursor, "SHOW STATUS LIKE 'Threads_connected'")
    return str(version), int(in_use), int(_scalar(cursor, "SHOW VARIABLES LIKE 'max_connections'"))


def _sqlite_stats(cursor: Any) -> tuple[str, int | None, int | None]:
    return str(_scalar(cursor, "SELECT sqlite_version()")), None, None


_VENDOR_STATS: dict[str, Callable[[Any], tuple[str, int | None, int | None]]] = {
    "postgresql": _postgresql_stats,
    "mysql": _mysql_stats,
    "sqlite": _sqlite_stats,
}


def database_status(*, connection: BaseDatabaseWrapper | None = None) -> DatabaseStatus:
    """Reachable, server version, connections in use and allowed, and how long ``SELECT 1`` takes."""
    connection = connection or connections["default"]
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            round_trip = _elapsed_ms(started)
            stats = _VENDOR_STATS.get(connection.vendor)
            version, in_use, maximum = stats(cursor) if stats else ("", None, None)
    except DatabaseError as error:
        return DatabaseStatus(ok=False, error=probe_error(error), vendor=connection.vendor)
    return DatabaseStatus(
        ok=True,
        vendor=connection.vendor,
        server_version=version,
        connections_in_use=in_use,
        connections_max=maximum,
        round_trip_ms=round_trip,
        slow=round_trip > SLOW_ROUND_TRIP_MS,
    )


# --- The cache ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CacheStatus:
    ok: bool
    error: str | None = None
    backend: str = ""
    server_version: str = ""
    used_memory_bytes: int | None = None
    max_memory_bytes: int | None = None  # None: no limit set
    keys: int | None = None  # every key of the cache's database (or entries of a local cache)
    round_trip_ms: float | None = None


def _redis_status(cache: RedisCache) -> CacheStatus:
    # Django's Redis backend has no public way to its client; this is the one its methods use.
    client = cache._cache.get_client(write=False)
    started = time.perf_counter()
    client.ping()
    round_trip = _elapsed_ms(started)
    memory, server = client.info("memory"), client.info("server")
    return CacheStatus(
        ok=True,
        backend="redis",
        server_version=str(server.get("redis_version", "")),
        used_memory_bytes=int(memory["used_memory"]),
        max_memory_bytes=int(memory.get("maxmemory") or 0) or None,
        keys=int(client.dbsize()),
        round_trip_ms=round_trip,
    )


def _local_status(cache: Any) -> CacheStatus:
    started = time.perf_counter()
    cache.get("operations:status:probe")
    round_trip = _elapsed_ms(started)
    if isinstance(cache, FileBasedCache):
        backend, keys = "file", len(cache._list_cache_files())
    elif isinstance(cache, LocMemCache):
        backend, keys = "memory", len(cache._cache)
    else:
        backend, keys = type(cache).__name__, None
    return CacheStatus(ok=True, backend=backend, keys=keys, round_trip_ms=round_trip)


def cache_status(*, alias: str = "default") -> CacheStatus:
    """Reachable, memory in use and allowed (Redis), and how many keys it holds."""
    cache = caches[alias]
    try:
        return _redis_status(cache) if isinstance(cache, RedisCache) else _local_status(cache)
    except CACHE_ERRORS as error:
        return CacheStatus(ok=False, error=probe_error(error), backend=type(cache).__name__)


# --- The GitOps remote and the outbox ----------------------------------------------------------


@dataclass(frozen=True)
class OutboxSummary:
    pending_changes: int
    oldest_created_at: datetime | None

    def oldest_age_seconds(self, now: datetime) -> float:
        return max(0.0, (now - self.oldest_created_at).total_seconds()) if self.oldest_created_at else 0.0


def outbox_summary() -> OutboxSummary:
    """How many changes wait for the remote, and since when the oldest (one query)."""
    found = changes_pending().order_by().aggregate(count=Count("id"), oldest=Min("created_at"))
    return OutboxSummary(pending_changes=found["count"], oldest_created_at=found["oldest"])


@dataclass(frozen=True)
class GitopsStatus:
    ok: bool
    error: str | None = None
    remote_configured: bool = False
    last_push_at: datetime | None = None
    last_push_commit: str = ""
    last_failure_at: datetime | None = None
    last_failure_reason: str = ""
    pending_changes: int | None = None
    oldest_pending_at: datetime | None = None
    oldest_pending_age_seconds: float | None = None


def gitops_status() -> GitopsStatus:
    """The last successful push (and failure) to the remote, and what waits in the outbox."""
    configured = bool(settings.GITOPS_REMOTE_URL)
    try:
        remote, outbox = gitops_remote_state(), outbox_summary()
    except DatabaseError as error:
        return GitopsStatus(ok=False, error=probe_error(error), remote_configured=configured)
    failing = bool(  # with no remote configured now, the portal pushes nowhere: nothing fails
        configured
        and remote
        and remote.last_failure_at
        and (not remote.last_push_at or remote.last_failure_at > remote.last_push_at)
    )
    return GitopsStatus(
        # The remote's last answer was a failure: changes wait.
        ok=not failing,
        error=f"the last push to the remote failed ({remote.last_failure_reason or 'see the log'}); changes wait "
        "for the next one"
        if failing
        else None,
        remote_configured=configured,
        last_push_at=remote.last_push_at if remote else None,
        last_push_commit=remote.last_push_commit if remote else "",
        last_failure_at=remote.last_failure_at if remote else None,
        last_failure_reason=remote.last_failure_reason if remote else "",
        pending_changes=outbox.pending_changes,
        oldest_pending_at=outbox.oldest_created_at,
        oldest_pending_age_seconds=round(outbox.oldest_age_seconds(timezone.now()), 1),
    )


# --- Argo CD -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ArgoCDStatus:
    configured: bool
    ok: bool | None = None  # None: not configured, nothing to ask
    error: str | None = None
    clusters_by_state: Mapping[str, int] = field(default_factory=dict)
    # Argo CD answered, but the portal's own count of the states did not end in time (or broke).
    clusters_by_state_error: str | None = None


def argocd_status(*, answered: Callable[[], None] | None = None) -> ArgoCDStatus:
    """Reachable, and clusters by state; ``configured`` False until ARGOCD_URL is set.

    ``answered`` is called once Argo CD has answered: what comes after is the portal's own work
    (which revision holds which change), never counted as Argo CD failing.
    """
    if not argocd_configured():
        return ArgoCDStatus(configured=False)
    heard = threading.Event()

    def told() -> None:
        heard.set()
        if answered is not None:
            answered()

    try:
        summary = deployments_summary(answered=told)
    except Exception as error:  # whatever stopped the portal asking Argo CD, the page shows it
        if heard.is_set():
            counting = f"Argo CD answered; counting the clusters' states failed: {probe_error(error)}"
            return ArgoCDStatus(configured=True, ok=True, clusters_by_state_error=counting)
        return ArgoCDStatus(configured=True, ok=False, error=probe_error(error))
    return ArgoCDStatus(configured=True, ok=True, clusters_by_state=dict(summary))


# --- Signing keys ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKeyStatus:
    kid: str
    signing: bool
    created_at: datetime | None  # None: not known (keys from JWT_PRIVATE_KEYS or JWT_SECRET)
    age_seconds: int | None


@dataclass(frozen=True)
class SigningKeysStatus:
    ok: bool
    error: str | None = None
    algorithm: str = ""
    source: str = ""  # JWT_KEYS_DIR, JWT_PRIVATE_KEYS or JWT_SECRET
    keys: tuple[SigningKeyStatus, ...] = ()


def _key_source() -> str:
    if settings.JWT_ALGORITHM == "HS256":
        return "JWT_SECRET"
    return "JWT_PRIVATE_KEYS" if settings.JWT_PRIVATE_KEYS else "JWT_KEYS_DIR"


def signing_keys_status() -> SigningKeysStatus:
    """The keys of the ring: which one signs, and when each was made (key files' times)."""
    source = _key_source()
    try:
        ring = key_ring(unusable_ok=True)
    except (ImproperlyConfigured, OSError, ValueError) as error:
        return SigningKeysStatus(ok=False, error=probe_error(error), algorithm=settings.JWT_ALGORITHM)
    now, keys = timezone.now(), []
    for kid in ring.verification:
        created = key_file_created(Path(settings.JWT_KEYS_DIR), kid) if source == "JWT_KEYS_DIR" else None
        age = int((now - created).total_seconds()) if created else None
        keys.append(
            SigningKeyStatus(kid=kid, signing=kid == ring.signing.kid, created_at=created, age_seconds=age)
        )
    keys.sort(key=lambda key: (not key.signing, key.kid))
    if ring.problems:  # files in the folder that are not usable keys: the ring does without them
        return SigningKeysStatus(
            ok=False, error=ring.problems, algorithm=ring.algorithm, source=source, keys=tuple(keys)
        )
    return SigningKeysStatus(ok=True, algorithm=ring.algorithm, source=source, keys=tuple(keys))


# --- All of it ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SystemStatus:
    checked_at: datetime
    database: DatabaseStatus
    cache: CacheStatus
    gitops: GitopsStatus
    argocd: ArgoCDStatus
    signing_keys: SigningKeysStatus

    @property
    def ok(self) -> bool:
        probes = (self.database, self.cache, self.gitops, self.signing_keys)
        return all(probe.ok for probe in probes) and self.argocd.ok is not False


def _on_own_connections(probe: Callable[[], T]) -> Callable[[], T]:
    """``probe`` for a thread of its own: the connections it opens there are closed when it ends."""

    def run() -> T:
        try:
            return probe()
        finally:
            connections.close_all()  # this thread's connections only: they are per thread

    return run


def _answer(future: Future, silent: T) -> T:
    """The probe's answer; ``silent`` when it did not answer in time, with the error when it broke."""
    if not future.done():
        return silent
    error = future.exception()
    return future.result() if error is None else replace(silent, error=probe_error(error))


def _argocd_silent(*, answered: bool) -> ArgoCDStatus:
    """The Argo CD probe past the deadline: Argo CD did not answer, or the count after it is not done."""
    if answered:
        counting = (
            f"Argo CD answered; counting the clusters' states took longer than {PROBE_TIMEOUT_SECONDS:g} s"
        )
        return ArgoCDStatus(configured=True, ok=True, clusters_by_state_error=counting)
    return ArgoCDStatus(configured=True, ok=False, error=f"no answer within {PROBE_TIMEOUT_SECONDS:g} s")


def system_status() -> SystemStatus:
    """Every dependency's probe; none takes the page longer than ``PROBE_TIMEOUT_SECONDS``."""
    executor = ThreadPoolExecutor(max_workers=3, thread_name_prefix="status-probe")
    argocd_answered = threading.Event()  # the deadline is Argo CD's answer, not the count after it
    try:
        database = executor.submit(_on_own_connections(database_status))
        cache = executor.submit(_on_own_connections(cache_status))
        argocd = executor.submit(_on_own_connections(partial(argocd_status, answered=argocd_answered.set)))
        wait((database, cache, argocd), timeout=PROBE_TIMEOUT_SECONDS)
    finally:
        executor.shutdown(wait=False, cancel_futures=True)  # a hung probe is left to finish alone
    silent = f"no answer within {PROBE_TIMEOUT_SECONDS:g} s"
    database_answer = _answer(
        database, DatabaseStatus(ok=False, error=silent, vendor=connections["default"].vendor)
    )
    skipped = "not read: the database did not answer"
    return SystemStatus(
        checked_at=timezone.now(),
        database=database_answer,
        cache=_answer(cache, CacheStatus(ok=False, error=silent)),
        gitops=gitops_status() if database_answer.ok else GitopsStatus(ok=False, error=skipped),
        argocd=_answer(argocd, _argocd_silent(answered=argocd_answered.is_set())),
        signing_keys=signing_keys_status(),
    )
