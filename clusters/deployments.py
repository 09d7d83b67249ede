"""How far each cluster's latest change got: committed, pushed, synced by Argo CD, healthy.

The portal knows the first two (``ClusterChange``: the commit, and whether the remote has it);
Argo CD knows the rest. This module asks Argo CD (``gitops.argocd_api``) for the Application
the ApplicationSet generates per cluster and turns both into one ``Deployment`` whose
``state`` is one of :data:`DEPLOYMENT_STATES`.

Reads never wait on Argo CD for long and never fail a page: what Argo CD answered (or why it
could not) is kept in the shared cache for ``ARGOCD_CACHE_TTL``, each request is bounded by
``ARGOCD_TIMEOUT``, a page of clusters costs one request (a client's Applications by label),
and after a failure Argo CD is left alone for a while, longer after each further failure, up
to :data:`BACKOFF_MAX_SECONDS` (every cluster then reads ``unknown`` with the reason). After a
push, :func:`applications_refresh` asks Argo CD to look at git at once, in the background.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from clusters.deployment_states import (
    DEPLOYED,
    DEPLOYMENT_STATES,
    PENDING,
    UNKNOWN,
    status_state,
)
from clusters.models import RECORD_ONLY_ACTIONS, Cluster, ClusterChange
from config import metrics
from config.cache import CACHE_ERRORS
from gitops.argocd import ARGOCD_NAMESPACE, CLIENT_LABEL, application_name
from gitops.argocd_api import ApplicationStatus, ArgoCDConnection, application_get, applications_list
from gitops.errors import ArgoCDUnavailable

logger = logging.getLogger(__name__)

BACKOFF_MAX_SECONDS = 60.0
_APPLICATION_KEY = "argocd:application:"
_BACKOFF_KEY = "argocd:backoff"
_REFRESH_WORKERS = 4


@dataclass(frozen=True)
class Deployment:
    """The latest change's way to the cluster, as the API shows it (``deployment``)."""

    state: str
    application: str
    committed_revision: str | None = None
    deployed_revision: str | None = None
    sync: str | None = None
    health: str | None = None
    message: str = ""
    checked_at: datetime | None = None


@dataclass(frozen=True)
class Observation:
    """What Argo CD answered about one Application (``status``), or why it could not (``failure``)."""

    checked_at: datetime
    status: ApplicationStatus | None = None
    failure: str = ""
    kind: str = ""


# --- Configuration ---------------------------------------------------------------------------


def argocd_configured() -> bool:
    return bool(settings.ARGOCD_URL)


def argocd_connection() -> ArgoCDConnection:
    return ArgoCDConnection(
        url=settings.ARGOCD_URL,
        token=settings.ARGOCD_TOKEN,
        timeout=settings.ARGOCD_TIMEOUT.total_seconds(),
        ca_file=settings.ARGOCD_CA_FILE or None,
        app_namespace=settings.ARGOCD_APP_NAMESPACE,
        project=settings.ARGOCD_PROJECT,
    )


def cluster_application(*, cluster: Cluster) -> str:
    return application_name(client=cluster.client.slug, cluster=cluster.slug)


def application_ui_url(*, cluster: Cluster) -> str:
    """The cluster's Application in Argo CD's web UI (at ARGOCD_UI_URL, which browsers reach)."""
    namespace = settings.ARGOCD_APP_NAMESPACE or ARGOCD_NAMESPACE
    ui = (settings.ARGOCD_UI_URL or settings.ARGOCD_URL).rstrip("/")
    return f"{ui}/applications/{namespace}/{cluster_application(cluster=cluster)}"


# --- The shared cache and the back-off --------------------------------------------------------


def _ttl() -> float:
    return max(settings.ARGOCD_CACHE_TTL.total_seconds(), 1.0)


def _cached(names: Sequence[str]) -> dict[str, Observation]:
    try:
        found = cache.get_many([_APPLICATION_KEY + name for name in names])
    except CACHE_ERRORS:
        return {}
    return {key.removeprefix(_APPLICATION_KEY): value for key, value in found.items()}


def _remember(observations: Mapping[str, Observation]) -> None:
    try:
        cache.set_many({_APPLICATION_KEY + name: seen for name, seen in observations.items()}, _ttl())
    except CACHE_ERRORS:
        logger.warning("Argo CD statuses could not be cached", exc_info=True)


def _forget(names: Iterable[str]) -> None:
    try:
        cache.delete_many([_APPLICATION_KEY + name for name in names])
    except CACHE_ERRORS:
        logger.warning("Cached Argo CD statuses could not be dropped", exc_info=True)


def _source() -> str:
    """Which Argo CD, and as whom, the portal asks (a digest: the token stays out of the cache)."""
    return hashlib.sha256(f"{settings.ARGOCD_URL}\0{settings.ARGOCD_TOKEN}".encode()).hexdigest()[:16]


def _backoff_reason() -> str | None:
    """Why Argo CD is being left alone right now (None: it may be asked)."""
    try:
        backoff = cache.get(_BACKOFF_KEY)
    except CACHE_ERRORS:
        return None
    if not backoff or backoff["until"] <= time.time() or backoff.get("source") != _source():
        return None  # over, or met by another URL or token than an operator has set since
    return f"{backoff['reason']} The portal asks again in {max(1, round(backoff['until'] - time.time()))} s."


def _failure_record(error: ArgoCDUnavailable) -> None:
    """Leave Argo CD alone for a cache period, twice as long after each further failure."""
    try:
        failures = (cache.get(_BACKOFF_KEY) or {}).get("failures", 0) + 1
        pause = min(_ttl() * 2 ** (failures - 1), BACKOFF_MAX_SECONDS)
        backoff = {
            "failures": failures,
            "until": time.time() + pause,
            "reason": error.reason,
            "source": _source(),
        }
        cache.set(_BACKOFF_KEY, backoff, BACKOFF_MAX_SECONDS * 4)
    except CACHE_ERRORS:
        return
    log = logger.warning if failures == 1 else logger.info
    log("Argo CD cannot be asked (%s): %s Next attempt in %.0f s.", error.kind, error.reason, pause)


def _success_record() -> None:
    try:
        if cache.get(_BACKOFF_KEY):
            cache.delete(_BACKOFF_KEY)
            logger.info("Argo CD answers again")
    except CACHE_ERRORS:
        return


# --- Asking Argo CD ---------------------------------------------------------------------------


def _failed(names: Iterable[str], reason: str, kind: str) -> dict[str, Observation]:
    now = timezone.now()
    return {name: Observation(checked_at=now, failure=reason, kind=kind) for name in names}


def _not_found(name: str) -> Observation:
    reason = (
        f"Argo CD has no Application {name} yet: the ApplicationSet creates it when it next reads "
        "the git repository."
    )
    return Observation(checked_at=timezone.now(), failure=reason, kind="not_found")


def _fetch(names: Sequence[str], selector: str) -> dict[str, Observation]:
    """Ask Argo CD about ``names``: one Application by name, several by a label ``selector``."""
    connection = argocd_connection()
    try:
        if len(names) == 1:
            statuses = [application_get(connection=connection, name=names[0])]
        else:
            statuses = applications_list(connection=connection, selector=selector)
    except ArgoCDUnavailable as error:
        if error.kind == "not_found" and len(names) == 1:
            _success_record()  # Argo CD answered: it is the Application that is missing
            return {names[0]: _not_found(names[0])}
        _failure_record(error)
        return _failed(names, error.reason, error.kind)
    _success_record()
    now = timezone.now()
    found = {status.name: Observation(checked_at=now, status=status) for status in statuses}
    return {name: found.get(name) or _not_found(name) for name in names}


def applications_observe(*, names: Sequence[str], selector: str = CLIENT_LABEL) -> dict[str, Observation]:
    """What Argo CD says about each Application: cached, else asked once for all that are not."""
    seen = _cached(names)
    missing = [name for name in dict.fromkeys(names) if name not in seen]
    if not missing:
        return seen
    reason = _backoff_reason()
    if reason is not None:
        return {**seen, **_failed(missing, reason, "backoff")}
    fresh = _fetch(missing, selector)
    _remember(fresh)
    return {**seen, **fresh}


def _removal_state(seen: Observation | None) -> tuple[str, str]:
    """A removed cluster's folder is gone from the remote: has Argo CD dropped its Application?"""
    if seen is not None and seen.kind == "not_found":
        return DEPLOYED, (
            "Argo CD removed the Application. What it deployed, and the volumes, stay until an "
            "operator deletes them (the cluster's admin page shows how)."
        )
    if seen is None or seen.status is None:
        return UNKNOWN, seen.failure if seen is not None else "Argo CD was not asked."
    return PENDING, "Argo CD still has the Application: the ApplicationSet removes it when it next reads git."


def deployment_build(
    *, cluster: Cluster, revision: ClusterChange | None, seen: Observation | None
) -> Deployment:
    """The cluster's deployment from its latest change meant for git and what Argo CD said."""
    status = seen.status if seen is not None else None
    base = Deployment(
        state=UNKNOWN,
        application=cluster_application(cluster=cluster),
        committed_revision=(revision.commit or None) if revision is not None else None,
        deployed_revision=(status.revision or None) if status else None,
        sync=(status.sync_status or None) if status else None,
        health=(status.health_status or None) if status else None,
        checked_at=seen.checked_at if seen is not None else None,
    )
    if revision is None:
        state, message = PENDING, "No change has been committed to git yet."
    elif not revision.commit:  # what git holds is an older change: Argo CD's state is not this one's
        state, message = PENDING, "Not committed to git yet: it goes out with the next delivery."
    elif not revision.pushed:
        state, message = (
            PENDING,
            "Committed, not pushed to the git remote yet: it goes out with the next delivery.",
        )
    elif cluster.removed:
        state, message = _removal_state(seen)
    elif status is None:
        state, message = UNKNOWN, seen.failure if seen is not None else "Argo CD was not asked."
    else:
        state, message = status_state(status, revision, checked_at=base.checked_at or timezone.now())
        if cluster.decommissioned and state == DEPLOYED:
            message = "Stopped: Argo CD scaled the cluster to zero replicas. Its volumes keep the data."
    return replace(base, state=state, message=message)


# --- What the selectors, the admin and the command call ---------------------------------------


def cluster_deployment(*, cluster: Cluster, revision: ClusterChange | None) -> Deployment | None:
    """The cluster's deployment (None: Argo CD is not configured)."""
    if not argocd_configured():
        return None
    name = cluster_application(cluster=cluster)
    seen = applications_observe(names=[name]).get(name)
    return deployment_build(cluster=cluster, revision=revision, seen=seen)


def clusters_deployments(
    *, clusters: Sequence[tuple[Cluster, ClusterChange | None]], selector: str = CLIENT_LABEL
) -> dict[int, Deployment | None]:
    """Each cluster's deployment by id, asking Argo CD at most once (``selector``: whose Applications)."""
    if not argocd_configured():
        return {cluster.pk: None for cluster, _ in clusters}
    seen = applications_observe(
        names=[cluster_application(cluster=c) for c, _ in clusters], selector=selector
    )
    return {
        cluster.pk: deployment_build(
            cluster=cluster, revision=revision, seen=seen.get(cluster_application(cluster=cluster))
        )
        for cluster, revision in clusters
    }


def client_selector(slug: str) -> str:
    """The label selector of one client's Applications."""
    return f"{CLIENT_LABEL}={slug}"


def latest_revisions(clusters: Sequence[Cluster]) -> dict[int, ClusterChange]:
    """Each cluster's latest change meant for git (as ``selectors.cluster_latest_change``), in two queries."""
    latest = (
        ClusterChange.objects.filter(cluster=OuterRef("pk"))
        .exclude(action__in=RECORD_ONLY_ACTIONS)
        .order_by("-created_at", "-id")
        .values("pk")[:1]
    )
    pairs = (
        Cluster.objects.filter(pk__in=[cluster.pk for cluster in clusters])
        .annotate(revision_id=Subquery(latest))
        .values_list("pk", "revision_id")
    )
    revision_ids = dict(pairs)
    changes = ClusterChange.objects.in_bulk([found for found in revision_ids.values() if found is not None])
    return {pk: changes[found] for pk, found in revision_ids.items() if found is not None}


def _everything() -> tuple[list[tuple[Cluster, ClusterChange | None]], dict[str, Observation]]:
    """The clusters Argo CD deploys (not those removed from git), and Argo CD's word about them."""
    clusters = list(
        Cluster.objects.filter(removed_at=None).select_related("client").order_by("client__slug", "slug")
    )
    revisions = latest_revisions(clusters)
    seen = applications_observe(names=[cluster_application(cluster=cluster) for cluster in clusters])
    return [(cluster, revisions.get(cluster.pk)) for cluster in clusters], seen


def all_deployments() -> list[tuple[Cluster, Deployment]]:
    """Every cluster with its deployment (one question to Argo CD for all of them; [] when not configured)."""
    if not argocd_configured():
        return []
    clusters, seen = _everything()
    return [
        (
            cluster,
            deployment_build(
                cluster=cluster, revision=revision, seen=seen.get(cluster_application(cluster=cluster))
            ),
        )
        for cluster, revision in clusters
    ]


def deployments_summary(*, answered: Callable[[], None] | None = None) -> dict[str, int]:
    """How many clusters are in each state, for the operators' status page; it also sets the gauge.

    Raises :class:`ArgoCDUnavailable` when Argo CD could not be asked. ``answered`` is called
    once Argo CD has answered, before the portal's own work of judging each cluster's state.
    """
    clusters, seen = _everything()
    for observation in seen.values():
        if observation.status is None and observation.kind != "not_found":
            raise ArgoCDUnavailable(observation.failure, kind=observation.kind)
    if answered is not None:
        answered()
    summary = dict.fromkeys(DEPLOYMENT_STATES, 0)
    for cluster, revision in clusters:
        observation = seen.get(cluster_application(cluster=cluster))
        summary[deployment_build(cluster=cluster, revision=revision, seen=observation).state] += 1
    metrics.deployment_states_set(clusters_by_state=summary)
    return summary


# --- After a push -----------------------------------------------------------------------------


def _refresh_one(connection: ArgoCDConnection, name: str) -> None:
    try:
        status = application_get(connection=connection, name=name, refresh=True)
    except ArgoCDUnavailable as error:
        # A timeout is expected: Argo CD answers a refresh once it has compared, and it has
        # taken the request by then.
        logger.info("Asked Argo CD to refresh %s; no answer awaited: %s", name, error.reason)
        return
    _remember({name: Observation(checked_at=timezone.now(), status=status)})


def _refresh_all(connection: ArgoCDConnection, names: Sequence[str]) -> None:
    with ThreadPoolExecutor(max_workers=_REFRESH_WORKERS, thread_name_prefix="argocd-refresh") as pool:
        for name in names:
            pool.submit(_refresh_one, connection, name)


def applications_refresh(*, clusters: Iterable[Cluster]) -> threading.Thread | None:
    """Ask Argo CD to compare these clusters' Applications with git now, instead of at its next poll.

    Best effort, in the background: the delivery that pushed never waits for it or fails by it.
    What was cached about them is dropped (it predates the push). Returns the thread (None when
    Argo CD is not configured, nothing was pushed, or Argo CD is being left alone after failures).
    """
    names = sorted({cluster_application(cluster=cluster) for cluster in clusters})
    if not argocd_configured() or not names:
        return None
    _forget(names)
    if _backoff_reason() is not None:
        return None
    thread = threading.Thread(
        target=_refresh_all, args=(argocd_connection(), names), name="argocd-refresh", daemon=False
    )
    try:
        thread.start()
    except RuntimeError:  # no thread to spare: Argo CD finds the change at its next poll
        logger.warning("Argo CD was not asked to refresh %s: no thread could be started", ", ".join(names))
        return None
    return thread
