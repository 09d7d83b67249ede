"""What a Prometheus scrape returns: the processes' metrics and the ones read from the database.

With ``PROMETHEUS_MULTIPROC_DIR`` (gunicorn), every worker writes its values to files in that
directory and a scrape, answered by any one worker, adds them all up (prometheus-client's
multiprocess mode); without it, the process's own registry is the answer. Figures that belong
to the whole deployment rather than to a process (the GitOps outbox, the last push) are read
from the database at scrape time, so every replica reports the same current value, also
when nothing is being delivered: the case an alert is for.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from clusters.deployments import argocd_configured
from clusters.selectors import gitops_remote_state
from config.outages import database_outage
from operations.selectors import argocd_status, outbox_summary


class GitopsOutboxCollector(Collector):
    """The outbox's size and age and the last successful push, from the database at scrape time.

    When the database cannot be asked, these series are left out of the scrape (the request
    metrics still come): an alert on their absence fires, rather than one on a made-up zero.
    """

    def collect(self) -> Iterator[Metric]:
        try:
            outbox, remote = outbox_summary(), gitops_remote_state()
        except DatabaseError as error:
            database_outage.report(error)
            return
        yield GaugeMetricFamily(
            "portal_gitops_outbox_pending_changes",
            "Cluster changes not on the GitOps remote yet.",
            value=outbox.pending_changes,
        )
        yield GaugeMetricFamily(
            "portal_gitops_outbox_oldest_age_seconds",
            "Age of the oldest change not on the GitOps remote yet (0 when none waits).",
            value=outbox.oldest_age_seconds(timezone.now()),
        )
        if remote is not None and remote.last_push_at is not None:
            yield GaugeMetricFamily(
                "portal_gitops_last_push_timestamp_seconds",
                "When a delivery last left the GitOps remote holding every commit (Unix time).",
                value=remote.last_push_at.timestamp(),
            )


class ArgoCDCollector(Collector):
    """Whether this scrape could ask Argo CD: without it, stale deployment states look current."""

    def __init__(self, *, reachable: bool) -> None:
        self.reachable = reachable

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "portal_argocd_up",
            "1 when this scrape could ask Argo CD about the clusters; 0 when it could not "
            "(portal_cluster_deployments then keeps the states it last had).",
            value=1 if self.reachable else 0,
        )


def metrics_exposition() -> bytes:
    """The Prometheus text format of every metric: the processes' and the database's.

    With Argo CD configured, the clusters' deployment states are asked first (cached a few
    seconds, bounded by ARGOCD_TIMEOUT): that sets ``portal_cluster_deployments``; when Argo
    CD cannot be asked the gauge keeps the states it last had, and ``portal_argocd_up`` says 0.
    """
    scrape = CollectorRegistry(auto_describe=False)
    if argocd_configured():
        scrape.register(ArgoCDCollector(reachable=argocd_status().ok is True))
    scrape.register(GitopsOutboxCollector())
    if settings.PROMETHEUS_MULTIPROC_DIR:
        MultiProcessCollector(scrape, path=settings.PROMETHEUS_MULTIPROC_DIR)
        return generate_latest(scrape)
    return generate_latest(REGISTRY) + generate_latest(scrape)
