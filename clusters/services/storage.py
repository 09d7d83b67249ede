"""Storage expansions: more storage is a request that an operator carries out.

``persistence.size`` becomes the StatefulSet's ``volumeClaimTemplates``, which Kubernetes
refuses to change on an existing StatefulSet. So a user's bigger size commits nothing: it is
recorded as a pending ``StorageExpansion`` (and in the history) and shown as "waiting for an
operator". The operator grows the volumes, marks the request done (which records the new size
and commits ``persistence.size``), then re-creates the StatefulSet (README: "Cluster
operations"). A request can be cancelled while it waits.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from clusters.models import Cluster, ClusterChange, StorageExpansion
from clusters.services.changes import (
    ChangeSource,
    ClusterChangeResult,
    change_record,
    cluster_locked,
    delivered,
)
from config.errors import StorageExpansionNotFound, StorageExpansionPending


def _waiting(*, cluster: Cluster, lock: bool = False) -> StorageExpansion | None:
    """The cluster's pending request (``lock``: held until the caller's transaction ends)."""
    pending = StorageExpansion.objects.filter(cluster=cluster, state=StorageExpansion.State.PENDING)
    return (pending.select_for_update() if lock else pending).first()


def storage_expansion_check(
    *, cluster: Cluster, storage_gi: int, lock: bool = False
) -> StorageExpansion | None:
    """The request pending for ``cluster`` (None: none); another size while one is pending is
    409 ``storage_expansion_pending``. The admin's form asks before it saves;
    ``storage_expansion_request`` again, holding the row (``lock``)."""
    waiting = _waiting(cluster=cluster, lock=lock)
    if waiting is not None and storage_gi not in (cluster.storage_gi, waiting.requested_gi):
        raise StorageExpansionPending()
    return waiting


def storage_expansion_request(
    *, cluster: Cluster, actor: User | None, storage_gi: int, source: ChangeSource | None = None
) -> tuple[StorageExpansion | None, bool]:
    """Ask for ``storage_gi`` (validated, not smaller) on ``cluster``, locked by the caller's transaction.

    Returns the pending request for that size (None when the size is the current one) and
    whether this call made it. Another size while one is pending: 409 ``storage_expansion_pending``.
    """
    if storage_gi == cluster.storage_gi:
        return None, False
    pending = storage_expansion_check(cluster=cluster, storage_gi=storage_gi, lock=True)
    if pending is not None:
        return pending, False
    expansion = StorageExpansion(
        cluster=cluster,
        from_gi=cluster.storage_gi,
        requested_gi=storage_gi,
        requested_by=actor,
        requested_by_email=actor.email if actor else "",
    )
    expansion.full_clean(validate_constraints=False)  # one pending per cluster: checked just above
    expansion.save()
    change_record(
        cluster=cluster,
        actor=actor,
        action=ClusterChange.Action.STORAGE_REQUEST,
        changes={"storageRequestGi": [None, storage_gi]},
        message=f"{cluster}: storage {cluster.storage_gi}Gi -> {storage_gi}Gi requested, waiting for an operator",
        source=source,
    )
    return expansion, True


def _resolve(expansion: StorageExpansion, state: str, actor: User | None) -> None:
    expansion.state = state
    expansion.resolved_by = actor
    expansion.resolved_by_email = actor.email if actor else ""
    expansion.resolved_at = timezone.now()
    expansion.full_clean(validate_constraints=False)
    expansion.save()


def storage_expansion_cancel(
    *, cluster: Cluster, actor: User | None, source: ChangeSource | None = None
) -> Cluster:
    """Withdraw the cluster's pending request (404 ``not_found`` when none waits); nothing reaches git."""
    with transaction.atomic():
        current = cluster_locked(cluster=cluster)
        pending = _waiting(cluster=current, lock=True)
        if pending is None:
            raise StorageExpansionNotFound()
        _resolve(pending, StorageExpansion.State.CANCELLED, actor)
        change_record(
            cluster=current,
            actor=actor,
            action=ClusterChange.Action.STORAGE_REQUEST_CANCEL,
            changes={"storageRequestGi": [pending.requested_gi, None]},
            message=f"{current}: storage request for {pending.requested_gi}Gi cancelled",
            source=source,
        )
    return current


def storage_expansion_complete(*, expansion: StorageExpansion, actor: User | None) -> ClusterChangeResult:
    """An operator has grown the volumes: record the new size and commit ``persistence.size``.

    Argo CD ignores ``volumeClaimTemplates`` on the live StatefulSet, so this commit syncs;
    the operator then re-creates the StatefulSet (``--cascade=orphan``) to take the new template.
    """
    with transaction.atomic():
        current = cluster_locked(cluster=expansion.cluster)
        pending = _waiting(cluster=current, lock=True)
        if pending is None or pending.pk != expansion.pk:
            raise StorageExpansionNotFound()
        before, after = current.storage_gi, pending.requested_gi
        current.storage_gi = after
        current.full_clean(
            exclude=[field.name for field in Cluster._meta.fields if field.name != "storage_gi"]
        )
        current.save(update_fields=["storage_gi", "updated_at"])
        _resolve(pending, StorageExpansion.State.DONE, actor)
        change = change_record(
            cluster=current,
            actor=actor,
            action=ClusterChange.Action.STORAGE_EXPAND,
            changes={"storageGi": [before, after], "storageRequestGi": [after, None]},
            message=f"{current}: storage {before}Gi -> {after}Gi, volumes expanded by an operator",
        )
    return delivered(ClusterChangeResult(cluster=current, change=change))
