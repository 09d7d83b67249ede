"""Take a cluster out of service: its folder leaves git, so Argo CD removes its Application.

The row stays: its history, the client's audit trail and its name (a new cluster cannot take
it, so nothing of the old one is ever mistaken for the new one's). Its API keys are erased, a
key rotation in progress ends and a pending storage request is cancelled; nobody can read or
change it afterwards (``Cluster.objects.live()``).

The ApplicationSet keeps an Application's resources when it removes the Application
(``preserveResourcesOnDeletion``: a bad commit never deletes a client's data), so the running
pods and the volumes stay until an operator deletes them; the admin shows the commands
(``gitops.argocd.decommission_runbook_render``).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from clusters.models import ClientAuditEvent, Cluster, ClusterChange, StorageExpansion
from clusters.services.audit import client_audit_record
from clusters.services.changes import ClusterChangeResult, change_record, cluster_locked, delivered
from clusters.services.storage import storage_expansion_cancel


def cluster_decommission(*, cluster: Cluster, actor: User | None) -> ClusterChangeResult:
    """Decommission ``cluster`` and deliver the removal of its folder.

    Raises ``ClusterDecommissioned`` when it was decommissioned already. If the local repository cannot
    be written, the cluster stays decommissioned and the removal stays pending for the next
    delivery or ``gitops_sync`` (it cannot be undone: its keys are gone).
    """
    with transaction.atomic():
        current = cluster_locked(cluster=cluster)
        if StorageExpansion.objects.filter(cluster=current, state=StorageExpansion.State.PENDING).exists():
            storage_expansion_cancel(cluster=current, actor=actor)
        current.decommissioned_at = timezone.now()
        current.api_key_encrypted = current.read_only_api_key_encrypted = current.alt_api_key_encrypted = ""
        current.rotation_started_at = current.rotation_finishes_at = None
        current.save()
        change = change_record(
            cluster=current,
            actor=actor,
            action=ClusterChange.Action.DECOMMISSION,
            changes={"decommissioned": [False, True]},
            message=f"{current}: decommissioned (its folder is removed)",
        )
        client_audit_record(
            client=current.client,
            type=ClientAuditEvent.Type.CLUSTER_DECOMMISSIONED,
            actor=actor,
            cluster=current,
        )
    return delivered(ClusterChangeResult(cluster=current, change=change))
