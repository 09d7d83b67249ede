"""Reading a cluster's API keys (always on the record) and rotating them: new keys that the cluster
really takes, without refused requests where possible.

Pods read their keys from the Secret when they start, so every key change also changes a
fingerprint on the pod template (``clusters.rendering``) and the StatefulSet rolls its pods.

From Qdrant v1.17.0 on (``alt_api_key``) a rotation has two phases. Start: the new key is
deployed as the alternate key, next to the old one, and the API already hands it out; clients
switch at their pace. Finish (the user, or ``gitops_sync`` once ``KEY_ROTATION_GRACE`` has
passed): the new key becomes the only one. Qdrant has no alternate read-only key, so the
read-only key is replaced at the start, in one step. Older versions take both new keys in one
step, and connections using the old keys fail as the pods restart.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from accounts.audit import RequestCredential, RequestOrigin, credential_describe
from accounts.models import User
from clusters.models import ClientAuditEvent, Cluster, ClusterChange
from clusters.selectors import ClusterCredentials, changes_pending, cluster_credentials
from clusters.services.audit import client_audit_record
from clusters.services.changes import (
    ChangeSource,
    ClusterChangeResult,
    Undo,
    change_record,
    cluster_locked,
    delivered,
)
from clusters.versions import version_supports_alt_api_key
from config.crypto import CLUSTER_API_KEYS, field_encrypt
from config.errors import AuditUnavailable, NoRotationInProgress, RotationInProgress

logger = logging.getLogger(__name__)

_KEY_COLUMNS = (
    "api_key_encrypted",
    "read_only_api_key_encrypted",
    "alt_api_key_encrypted",
    "rotation_started_at",
    "rotation_finishes_at",
    "updated_at",
)


@dataclass(frozen=True)
class KeysShownTo:
    """Who is handed a cluster's keys, as the audit trail records it."""

    actor: User
    credential: RequestCredential
    origin: RequestOrigin

    @property
    def source(self) -> ChangeSource | None:
        """How the change was asked for; None in the admin (no API credential): its changes
        record who, not from where."""
        if self.credential == RequestCredential():
            return None
        return ChangeSource(credential=self.credential, origin=self.origin)


def _reveal_record(cluster: Cluster, shown_to: KeysShownTo) -> ClientAuditEvent:
    """The trail's record of a reveal, in the caller's transaction; 503 ``audit_unavailable`` (and
    the transaction rolls back) when it cannot be written: no key goes out unrecorded."""
    try:
        return client_audit_record(
            client=cluster.client,
            type=ClientAuditEvent.Type.CREDENTIALS_REVEALED,
            actor=shown_to.actor,
            cluster=cluster,
            origin=shown_to.origin,
            detail=credential_describe(credential=shown_to.credential),
        )
    except DatabaseError as error:
        logger.error(
            "The reveal of %s's API keys could not be audited (%s): no key was sent.",
            cluster,
            type(error).__name__,
        )
        raise AuditUnavailable() from error


def cluster_credentials_reveal(*, cluster: Cluster, shown_to: KeysShownTo) -> ClusterCredentials:
    """The cluster's keys, recorded in its client's audit trail (who, with which credential, from
    where) in the same transaction. Fails closed: a reveal that cannot be recorded reveals nothing
    (503 ``audit_unavailable``), and keys that cannot be decrypted leave no record."""
    with transaction.atomic():
        current = cluster_locked(cluster=cluster)  # not the keys of one decommissioned meanwhile
        _reveal_record(current, shown_to)
        return cluster_credentials(cluster=current)


def api_key_new() -> str:
    return secrets.token_urlsafe(32)


# What the history records of a rotation, [before, after] like every other change (no key is
# ever written there): which API keys Qdrant accepts.
KEYS_OLD, KEYS_BOTH, KEYS_NEW = "old key", "old and new keys", "new key"
ROTATED_IN_ONE_STEP = {"credentials": [KEYS_OLD, KEYS_NEW]}
ROTATION_STARTED = {"credentials": [KEYS_OLD, KEYS_BOTH]}
ROTATION_FINISHED = {"credentials": [KEYS_BOTH, KEYS_NEW]}


def _rotate(current: Cluster) -> tuple[dict[str, list[str]], str]:
    """Set the new keys on the locked row; returns the history entry's changes and message."""
    current.read_only_api_key_encrypted = field_encrypt(plaintext=api_key_new(), purpose=CLUSTER_API_KEYS)
    if not version_supports_alt_api_key(current.version):
        current.api_key_encrypted = field_encrypt(plaintext=api_key_new(), purpose=CLUSTER_API_KEYS)
        return ROTATED_IN_ONE_STEP, f"{current}: API keys rotated in one step"
    now = timezone.now()
    current.alt_api_key_encrypted = field_encrypt(plaintext=api_key_new(), purpose=CLUSTER_API_KEYS)
    current.rotation_started_at, current.rotation_finishes_at = now, now + settings.KEY_ROTATION_GRACE
    return (
        ROTATION_STARTED,
        f"{current}: API key rotation started, the new key is accepted next to the old one",
    )


def _keys_put_back(before: dict[str, object], reveal: ClientAuditEvent | None = None) -> Undo:
    """The undo of a key change that never reached git: the keys the cluster still runs with,
    and no record of a reveal (``reveal``) of keys that nobody was given."""

    def undo(current: Cluster, _result: ClusterChangeResult) -> None:
        for column, value in before.items():
            setattr(current, column, value)
        current.save(update_fields=list(_KEY_COLUMNS))
        if reveal is not None:
            ClientAuditEvent.objects.filter(pk=reveal.pk).delete()

    return undo


def _keys_of(current: Cluster) -> dict[str, object]:
    return {column: getattr(current, column) for column in _KEY_COLUMNS}


def cluster_credentials_rotate(
    *, cluster: Cluster, shown_to: KeysShownTo, check: Callable[[Cluster], None] | None = None
) -> ClusterChangeResult:
    """New keys, for ``shown_to`` (read them with ``selectors.cluster_credentials``: the reveal is
    recorded with the rotation, or neither happens). 409 while a rotation is in progress.
    ``check`` is given the row as locked, before anything is written, to refuse by raising (the
    admin's confirmation, given for keys the cluster no longer has).

    When not even a local commit can be made, the old keys stay and 503 ``gitops_unavailable``
    says so: handing out keys that may never reach the cluster would break the user's apps.
    """
    with transaction.atomic():
        current = cluster_locked(cluster=cluster)
        if check is not None:
            check(current)
        if current.rotation_in_progress:
            raise RotationInProgress()
        before = _keys_of(current)
        changes, message = _rotate(current)
        current.full_clean()
        current.save(update_fields=list(_KEY_COLUMNS))
        change = change_record(
            cluster=current,
            actor=shown_to.actor,
            action=ClusterChange.Action.CREDENTIALS_ROTATE,
            changes=changes,
            message=message,
            source=shown_to.source,
        )
        reveal = _reveal_record(current, shown_to)
    return delivered(ClusterChangeResult(cluster=current, change=change), undo=_keys_put_back(before, reveal))


def _finish(current: Cluster, actor: User | None, source: ChangeSource | None = None) -> ClusterChange:
    """Promote the alternate key on the locked row and record it."""
    current.api_key_encrypted = current.alt_api_key_encrypted
    current.alt_api_key_encrypted = ""
    current.rotation_started_at = current.rotation_finishes_at = None
    current.full_clean()
    current.save(update_fields=list(_KEY_COLUMNS))
    how = "" if actor is not None else " after the grace period"
    return change_record(
        cluster=current,
        actor=actor,
        action=ClusterChange.Action.CREDENTIALS_ROTATE_FINISH,
        changes=ROTATION_FINISHED,
        message=f"{current}: API key rotation finished{how}, the old key is removed",
        source=source,
    )


def cluster_credentials_rotation_finish(
    *, cluster: Cluster, actor: User, shown_to: KeysShownTo | None
) -> ClusterChangeResult:
    """Make the new key the only one; ``shown_to``: who is handed the keys (recorded with it), if
    anyone. 409 ``no_rotation_in_progress`` when there is nothing to finish."""
    with transaction.atomic():
        current = cluster_locked(cluster=cluster)
        if not current.rotation_in_progress:
            raise NoRotationInProgress()
        before = _keys_of(current)
        change = _finish(current, actor, shown_to.source if shown_to else None)
        reveal = _reveal_record(current, shown_to) if shown_to is not None else None
    return delivered(ClusterChangeResult(cluster=current, change=change), undo=_keys_put_back(before, reveal))


def key_rotations_finish_due(*, now: datetime | None = None) -> list[Cluster]:
    """Finish every rotation whose grace period is over; the caller delivers the changes.

    A cluster whose start is not on the git remote yet is left for a later run: its clients
    may not have had the alternate key at all.
    """
    now = now or timezone.now()
    due = (
        Cluster.objects.filter(rotation_finishes_at__lte=now)
        .exclude(alt_api_key_encrypted="")
        .exclude(pk__in=changes_pending().values("cluster_id"))
    )
    finished = []
    for pk in due.values_list("pk", flat=True):
        with transaction.atomic():
            current = cluster_locked(cluster=Cluster(pk=pk), decommissioned_too=True)  # checked below
            if current.rotation_in_progress and current.rotation_finishes_at <= now:
                _finish(current, None)
                finished.append(current)
    return finished
