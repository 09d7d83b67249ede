"""Change records (the GitOps outbox) and what became of their delivery.

Every change to a cluster's desired state is recorded as a ``ClusterChange`` (who, when,
before -> after) in the same transaction as the change: that row is the outbox, which
``clusters.delivery`` turns into a commit once the transaction has committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from accounts.audit import RequestCredential, RequestOrigin, credential_describe
from accounts.models import User
from clusters import delivery
from clusters.models import (
    RECORD_ONLY_ACTIONS,
    SPEC_FIELD_NAMES,
    Client,
    Cluster,
    ClusterChange,
    StorageExpansion,
)
from clusters.repository import while_no_delivery_runs
from config.crypto import FieldDecryptionError
from config.errors import ClusterDecommissioned, GitopsUnavailable, GitopsValuesConflict, SecretsUnavailable
from gitops.errors import RepositoryUnavailable

logger = logging.getLogger(__name__)

# How a desired-state field reads in a commit message: "storage 10Gi -> 20Gi".
MESSAGE_LABELS = {"replicas": "replicas", "version": "version", "storage_gi": "storage"}
_MESSAGE_UNITS = {"storage_gi": "Gi"}


@dataclass(frozen=True)
class ClusterChangeResult:
    """What a cluster write did: the cluster as saved, and the change record (None: nothing changed).

    The change is the GitOps outbox row; delivery (commit, push) reports on it.
    ``storage_expansion``: the pending storage request this write asked for (it changes nothing
    in git until an operator carries it out); ``storage_expansion_created``: this write made it.
    """

    cluster: Cluster
    change: ClusterChange | None
    storage_expansion: StorageExpansion | None = None
    storage_expansion_created: bool = False

    @property
    def changed(self) -> bool:
        return self.change is not None


def value_text(field: str, value: Any) -> str:
    return f"{value}{_MESSAGE_UNITS.get(field, '')}"


@dataclass(frozen=True)
class ChangeSource:
    """How an API request asked for a change: its credential and its address (the admin and the
    management commands have none)."""

    credential: RequestCredential
    origin: RequestOrigin


def change_record(
    *,
    cluster: Cluster,
    actor: User | None,
    action: str,
    changes: dict[str, Any],
    message: str,
    source: ChangeSource | None = None,
) -> ClusterChange:
    change = ClusterChange(
        cluster=cluster,
        actor=actor,
        actor_email=actor.email if actor else "",
        actor_name=actor.name if actor else "",
        action=action,
        changes=changes,
        message=message[:500],
        credential=credential_describe(credential=source.credential)[:255] if source else "",
        ip=source.origin.ip if source else None,
        by_operator=bool(actor and actor.is_operator),
    )
    # Built entirely here, from validated values: checking its constraints would cost a query
    # each, and the database enforces them anyway.
    change.full_clean(validate_constraints=False)
    change.save()
    logger.info(
        "cluster change recorded",
        extra={
            "cluster": str(cluster),
            "action": action,
            "change_id": change.pk,
            "actor_id": getattr(actor, "pk", None),
        },
    )
    return change


def cluster_locked(*, cluster: Cluster, decommissioned_too: bool = False) -> Cluster:
    """The cluster's current row, locked until the transaction ends (concurrent edits queue up).

    Only the cluster's row: its client is read apart, unlocked, so that edits to a client's
    other clusters do not queue behind this one (MariaDB has no ``FOR UPDATE OF``). A
    decommissioned cluster raises ``ClusterDecommissioned`` (404): no write may change it, even
    one that read it just before it was decommissioned.
    """
    current = Cluster.objects.select_for_update().get(pk=cluster.pk)
    if current.decommissioned and not decommissioned_too:
        raise ClusterDecommissioned()
    current.client = Client.objects.get(pk=current.client_id)
    return current


# Puts the locked row back as it was before the change, and saves it.
Undo = Callable[[Cluster, ClusterChangeResult], None]


def _change_revert(*, result: ClusterChangeResult, undo: Undo) -> bool:
    """Undo a change that never reached git, if nothing was stacked on it meanwhile.

    Under the branch lock: another replica's delivery, which would push the change, either
    finished first (the change has its commit: it stays) or starts once it is gone.
    """
    return while_no_delivery_runs(lambda: _change_revert_locked(result=result, undo=undo))


def _change_revert_locked(*, result: ClusterChangeResult, undo: Undo) -> bool:
    change = result.change
    with transaction.atomic():
        current = cluster_locked(cluster=change.cluster, decommissioned_too=True)
        latest = current.changes.exclude(action__in=RECORD_ONLY_ACTIONS).order_by("-id").first()
        if latest is None or latest.pk != change.pk or latest.commit:
            return False
        undo(current, result)
        latest.delete()
    return True


def update_undo(current: Cluster, result: ClusterChangeResult) -> None:
    """An update's fields back to their values before it. A storage request made by the same
    write is withdrawn with it, so that "nothing was changed" holds for the whole request."""
    fields = {api: field for field, api in SPEC_FIELD_NAMES.items()}
    for api_name, (before, _after) in result.change.changes.items():
        setattr(current, fields[api_name], before)
    current.save(update_fields=[*(fields[name] for name in result.change.changes), "updated_at"])
    if result.storage_expansion_created:
        request = current.changes.filter(action=ClusterChange.Action.STORAGE_REQUEST).order_by("-id")
        request.first().delete()
        result.storage_expansion.delete()


def delivered(result: ClusterChangeResult, *, undo: Undo | None = None) -> ClusterChangeResult:
    """Commit and push the recorded change once its transaction is committed; report how far it got.

    A remote that cannot be reached is not a failure: the commit waits locally (``pushed``
    False). When even the local commit fails, the change is undone (``undo``) and
    answered 503 ``gitops_unavailable``; when the cluster's values file in git was edited so that
    the change cannot be applied, it is undone and answered 409 ``gitops_values_conflict``.
    Either way, other clusters' changes are not held up.
    """
    change = result.change
    if change is None:
        return result
    try:
        report = delivery.deliver_after_commit(awaited=change.pk)
    except (RepositoryUnavailable, FieldDecryptionError) as error:
        if undo is not None and _change_revert(result=result, undo=undo):
            unreadable = isinstance(error, FieldDecryptionError)  # FIELD_ENCRYPTION_KEY lost a secret
            raise (SecretsUnavailable() if unreadable else GitopsUnavailable()) from error
        logger.warning("GitOps delivery failed; %s stays pending for gitops_sync: %s", change, error)
        return result
    if report is None:  # deferred until the open transaction commits
        return result
    problem = report.conflicts.get(change.cluster_id)
    if problem is not None:
        if undo is not None and _change_revert(result=result, undo=undo):
            if change.cluster_id in report.unreadable:  # FIELD_ENCRYPTION_KEY lost its keys
                raise SecretsUnavailable()
            raise GitopsValuesConflict(problem=problem)
        logger.warning("%s stays pending until git is fixed: %s", change, problem)
        return result
    change.refresh_from_db()
    return result
