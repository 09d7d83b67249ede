"""Take a cluster out of service, in two steps an operator takes apart.

1. **Decommission** (:func:`cluster_decommission`): the cluster is stopped. Its values file gets
   zero replicas, so Argo CD scales the StatefulSet down and nothing answers with its keys any
   more; its volumes keep the data. Its API keys are erased, a key rotation in progress ends
   and a pending storage request is cancelled; nobody can read or change it afterwards
   (``selectors.cluster_access`` answers 404; ``cluster_locked`` refuses it).
2. **Remove** (:func:`cluster_remove`), once the data may go: its folder leaves git, so the
   ApplicationSet removes its Application. It keeps what the Application deployed
   (``preserveResourcesOnDeletion``: a bad commit never deletes a client's data), so the
   operator deletes the rest and the volumes with the commands the admin shows
   (``gitops.argocd.retirement_runbook_render``).

The row stays throughout: its history, the client's audit trail and its name (a new cluster
cannot take it, so nothing of the old one is ever mistaken for the new one's).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from clusters.deployment_states import DEPLOYED
from clusters.deployments import cluster_deployment
from clusters.models import ClientAuditEvent, Cluster, ClusterChange, StorageExpansion
from clusters.selectors import cluster_latest_change
from clusters.services.audit import client_audit_record
from clusters.services.changes import ClusterChangeResult, change_record, cluster_locked, delivered
from clusters.services.storage import storage_expansion_cancel
from config.errors import ClusterDecommissioned, InvalidRequest


def cluster_decommission(*, cluster: Cluster, actor: User | None) -> ClusterChangeResult:
    """Stop ``cluster`` for good and deliver its zero replicas.

    Raises ``ClusterDecommissioned`` when it was decommissioned already. If the local
    repository cannot be written, it stays decommissioned and the change stays pending for the
    next delivery or ``gitops_sync`` (it cannot be undone: its keys are gone).
    """
    with transaction.atomic():
        current = cluster_locked(cluster=cluster)
        waiting = StorageExpansion.objects.filter(
            cluster=current, state=StorageExpansion.State.PENDING
        ).first()
        if waiting is not None:
            storage_expansion_cancel(cluster=current, actor=actor)
        current.decommissioned_at = timezone.now()
        current.api_key_encrypted = current.read_only_api_key_encrypted = current.alt_api_key_encrypted = ""
        current.rotation_started_at = current.rotation_finishes_at = None
        current.save()
        change = change_record(
            cluster=current,
            actor=actor,
            action=ClusterChange.Action.DECOMMISSION,
            changes={"replicas": [current.replicas, 0]},
            message=f"{current}: decommissioned, replicas {current.replicas} -> 0 (stopped)",
        )
        client_audit_record(
            client=current.client,
            type=ClientAuditEvent.Type.CLUSTER_DECOMMISSIONED,
            actor=actor,
            cluster=current,
            detail=f"its storage request for {waiting.requested_gi} GiB was cancelled" if waiting else "",
        )
    return delivered(ClusterChangeResult(cluster=current, change=change))


def _stop_check(cluster: Cluster) -> None:
    """Removing the folder removes the Application, and Argo CD scales nothing down after that:
    with Argo CD configured, the stop must be deployed first (without, the runbook checks it)."""
    stop = cluster_latest_change(cluster=cluster)
    found = cluster_deployment(cluster=cluster, revision=stop)
    if found is not None and found.state != DEPLOYED:
        raise InvalidRequest(
            f"Argo CD has not stopped this cluster yet ({found.state}: {found.message}) Remove it from "
            "git once its page says it is stopped, or it keeps running without an Application."
        )


def cluster_remove(*, cluster: Cluster, actor: User | None) -> ClusterChangeResult:
    """Remove a decommissioned cluster's folder from git (every file in it, a hand-added one too).

    Raises ``InvalidRequest`` for a cluster in service (decommission it first) or one Argo CD has
    not stopped yet, and ``ClusterDecommissioned`` when it was removed already.
    """
    stored = Cluster.objects.select_related("client").get(pk=cluster.pk)
    if stored.decommissioned and not stored.removed:
        _stop_check(stored)  # asks Argo CD: before the row lock, never while holding it
    with transaction.atomic():
        current = cluster_locked(cluster=cluster, decommissioned_too=True)
        if not current.decommissioned:
            raise InvalidRequest("This cluster is in service: decommission it first.")
        if current.removed:
            raise ClusterDecommissioned("This cluster was removed from git already.")
        current.removed_at = timezone.now()
        current.save(update_fields=["removed_at", "updated_at"])
        change = change_record(
            cluster=current,
            actor=actor,
            action=ClusterChange.Action.REMOVE,
            changes={"folder": ["present", "removed"]},
            message=f"{current}: removed from git (its folder)",
        )
    return delivered(ClusterChangeResult(cluster=current, change=change))
