"""Writes for clients, clusters and grants.

Every change to a cluster's desired state is recorded as a ``ClusterChange`` (who, when,
before -> after) in the same transaction: that row is the GitOps outbox, which
``clusters.delivery`` turns into a commit once the transaction has committed.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from accounts.services import user_claims_bump
from clusters import delivery
from clusters.crypto import field_encrypt, field_reencrypt
from clusters.models import SPEC_FIELD_NAMES, Client, Cluster, ClusterChange, Grant
from config.errors import GitopsUnavailable, GitopsValuesConflict
from gitops.errors import RepositoryUnavailable
from gitops.values import release_name

logger = logging.getLogger(__name__)

# How a desired-state field reads in a commit message: "storage 10Gi -> 20Gi".
_MESSAGE_LABELS = {"replicas": "replicas", "version": "version", "storage_gi": "storage"}
_MESSAGE_UNITS = {"storage_gi": "Gi"}
# Helm release names ("qdrant-<client>-<cluster>") are limited to 53 characters.
RELEASE_NAME_MAX = 53


@dataclass(frozen=True)
class ClusterChangeResult:
    """What a cluster write did: the cluster as saved, and the change record (None: nothing changed).

    The change is the GitOps outbox row; delivery (commit, push) reports on it.
    """

    cluster: Cluster
    change: ClusterChange | None

    @property
    def changed(self) -> bool:
        return self.change is not None


# --- Validation -----------------------------------------------------------------------------


def _is_whole_number(value: Any) -> bool:
    # bool is an int subclass: True must not become one replica.
    return isinstance(value, int) and not isinstance(value, bool)


def _replicas_problem(replicas: Any) -> str | None:
    if not _is_whole_number(replicas):
        return "Enter a whole number."
    if not settings.REPLICAS_MIN <= replicas <= settings.REPLICAS_MAX:
        return f"Ensure this value is between {settings.REPLICAS_MIN} and {settings.REPLICAS_MAX}."
    return None


def _storage_problem(storage_gi: Any, current_storage_gi: int | None) -> str | None:
    if not _is_whole_number(storage_gi):
        return "Enter a whole number of GiB."
    if not 1 <= storage_gi <= settings.STORAGE_GI_MAX:
        return f"Ensure this value is between 1 and {settings.STORAGE_GI_MAX} GiB."
    if current_storage_gi is not None and storage_gi < current_storage_gi:
        return f"Storage can only grow: it is {current_storage_gi} GiB, {storage_gi} GiB is smaller."
    return None


def cluster_spec_validate(
    *,
    replicas: int | None = None,
    version: str | None = None,
    storage_gi: int | None = None,
    current_storage_gi: int | None = None,
) -> None:
    """The policy for a cluster's desired state; None means "not given".

    Raises ValidationError keyed by model field names (``storage_gi``).
    """
    problems = {
        "replicas": _replicas_problem(replicas) if replicas is not None else None,
        "version": (
            f"Choose one of: {', '.join(settings.QDRANT_VERSIONS)}."
            if version is not None and version not in settings.QDRANT_VERSIONS
            else None
        ),
        "storage_gi": _storage_problem(storage_gi, current_storage_gi) if storage_gi is not None else None,
    }
    errors = {field: [problem] for field, problem in problems.items() if problem}
    if errors:
        raise ValidationError(errors)


# --- Change records -------------------------------------------------------------------------


def _value_text(field: str, value: Any) -> str:
    return f"{value}{_MESSAGE_UNITS.get(field, '')}"


def _change_record(
    *, cluster: Cluster, actor: User | None, action: str, changes: dict[str, Any], message: str
) -> ClusterChange:
    change = ClusterChange(
        cluster=cluster,
        actor=actor,
        actor_email=actor.email if actor else "",
        actor_name=actor.name if actor else "",
        action=action,
        changes=changes,
        message=message[:500],
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


def _cluster_locked(*, cluster: Cluster) -> Cluster:
    """The cluster's current row, locked until the transaction ends (concurrent edits queue up)."""
    return Cluster.objects.select_for_update(of=("self",)).select_related("client").get(pk=cluster.pk)


def _change_revert(*, change: ClusterChange) -> bool:
    """Undo an update that never reached git, if nothing was stacked on it meanwhile."""
    with transaction.atomic():
        current = _cluster_locked(cluster=change.cluster)
        latest = current.changes.order_by("-id").first()
        if latest is None or latest.pk != change.pk or latest.commit or change.action != change.Action.UPDATE:
            return False
        fields = {api: field for field, api in SPEC_FIELD_NAMES.items()}
        for api_name, (before, _after) in change.changes.items():
            setattr(current, fields[api_name], before)
        current.save(update_fields=[*(fields[name] for name in change.changes), "updated_at"])
        latest.delete()
    return True


def _delivered(result: ClusterChangeResult, *, revert_on_failure: bool = False) -> ClusterChangeResult:
    """Commit and push the recorded change once its transaction is committed; report how far it got.

    A remote that cannot be reached is not a failure: the commit waits locally (``pushed``
    False). When even the local commit fails, an update is undone (``revert_on_failure``) and
    answered 503 ``gitops_unavailable``; when the cluster's values file in git was edited so that
    the change cannot be applied, it is undone and answered 409 ``gitops_values_conflict``.
    Either way, other clusters' changes are not held up.
    """
    change = result.change
    if change is None:
        return result
    try:
        report = delivery.deliver_after_commit()
    except RepositoryUnavailable as error:
        if revert_on_failure and _change_revert(change=change):
            raise GitopsUnavailable() from error
        logger.warning("GitOps delivery failed; %s stays pending for gitops_sync: %s", change, error)
        return result
    if report is None:  # deferred until the open transaction commits
        return result
    problem = report.conflicts.get(change.cluster_id)
    if problem is not None:
        if revert_on_failure and _change_revert(change=change):
            raise GitopsValuesConflict(problem=problem)
        logger.warning("%s stays pending until git is fixed: %s", change, problem)
        return result
    change.refresh_from_db()
    return result


# --- Clusters -------------------------------------------------------------------------------


def _api_key_new() -> str:
    return secrets.token_urlsafe(32)


DUPLICATE_CLUSTER = "A cluster with this name already exists for this client."


def _cluster_slug_check(*, client: Client, slug: str) -> None:
    """What the slug's own validators cannot know: its length with the client's, and uniqueness."""
    if isinstance(slug, str) and len(release_name(client=client.slug, cluster=slug)) > RELEASE_NAME_MAX:
        raise ValidationError(
            {
                "slug": [
                    f"Client and cluster names together are too long for Helm ({RELEASE_NAME_MAX} characters)."
                ]
            }
        )
    if Cluster.objects.filter(client=client, slug=slug).exists():
        raise ValidationError({"slug": [DUPLICATE_CLUSTER]})


def cluster_create(
    *,
    client: Client,
    slug: str,
    actor: User | None,
    replicas: int = 1,
    version: str | None = None,
    storage_gi: int | None = None,
) -> ClusterChangeResult:
    """Create a cluster with fresh API keys and record the creation."""
    version = version if version is not None else settings.QDRANT_DEFAULT_VERSION
    storage_gi = storage_gi if storage_gi is not None else settings.STORAGE_GI_DEFAULT
    cluster_spec_validate(replicas=replicas, version=version, storage_gi=storage_gi)
    cluster = Cluster(
        client=client,
        slug=slug,
        replicas=replicas,
        version=version,
        storage_gi=storage_gi,
        api_key_encrypted=field_encrypt(plaintext=_api_key_new()),
        read_only_api_key_encrypted=field_encrypt(plaintext=_api_key_new()),
    )
    cluster.full_clean(validate_constraints=False)
    _cluster_slug_check(client=client, slug=slug)
    cluster.validate_constraints()
    values = {field: getattr(cluster, field) for field in SPEC_FIELD_NAMES}
    summary = ", ".join(f"{_MESSAGE_LABELS[f]} {_value_text(f, v)}" for f, v in values.items())
    try:
        with transaction.atomic():
            cluster.save()
            change = _change_record(
                cluster=cluster,
                actor=actor,
                action=ClusterChange.Action.CREATE,
                changes={SPEC_FIELD_NAMES[f]: [None, v] for f, v in values.items()},
                message=f"{client.slug}/{slug}: created with {summary}",
            )
    except IntegrityError as exc:
        # Lost a race with another create of the same slug (full_clean checked just before).
        raise ValidationError({"slug": [DUPLICATE_CLUSTER]}) from exc
    return _delivered(ClusterChangeResult(cluster=cluster, change=change))


def cluster_update(
    *,
    cluster: Cluster,
    actor: User | None,
    replicas: int | None = None,
    version: str | None = None,
    storage_gi: int | None = None,
) -> ClusterChangeResult:
    """Change replicas, version and/or storage (None: keep). Values equal to the current ones record nothing."""
    requested = {"replicas": replicas, "version": version, "storage_gi": storage_gi}
    requested = {field: value for field, value in requested.items() if value is not None}
    with transaction.atomic():
        current = _cluster_locked(cluster=cluster)
        cluster_spec_validate(**requested, current_storage_gi=current.storage_gi)
        diff = {
            field: (getattr(current, field), value)
            for field, value in requested.items()
            if getattr(current, field) != value
        }
        if not diff:
            return ClusterChangeResult(cluster=current, change=None)
        for field, (_, after) in diff.items():
            setattr(current, field, after)
        current.full_clean(exclude=[field.name for field in Cluster._meta.fields if field.name not in diff])
        current.save(update_fields=[*diff, "updated_at"])
        described = ", ".join(
            f"{_MESSAGE_LABELS[f]} {_value_text(f, before)} -> {_value_text(f, after)}"
            for f, (before, after) in diff.items()
        )
        change = _change_record(
            cluster=current,
            actor=actor,
            action=ClusterChange.Action.UPDATE,
            changes={SPEC_FIELD_NAMES[f]: [before, after] for f, (before, after) in diff.items()},
            message=f"{current}: {described}",
        )
    return _delivered(ClusterChangeResult(cluster=current, change=change), revert_on_failure=True)


def cluster_credentials_rotate(*, cluster: Cluster, actor: User | None) -> ClusterChangeResult:
    """Replace both API keys; read the new ones with ``selectors.cluster_credentials``."""
    with transaction.atomic():
        current = _cluster_locked(cluster=cluster)
        current.api_key_encrypted = field_encrypt(plaintext=_api_key_new())
        current.read_only_api_key_encrypted = field_encrypt(plaintext=_api_key_new())
        current.full_clean()
        current.save(update_fields=["api_key_encrypted", "read_only_api_key_encrypted", "updated_at"])
        change = _change_record(
            cluster=current,
            actor=actor,
            action=ClusterChange.Action.CREDENTIALS_ROTATE,
            changes={"credentials": "rotated"},
            message=f"{current}: API keys rotated",
        )
    return _delivered(ClusterChangeResult(cluster=current, change=change))


def cluster_keys_reencrypt() -> int:
    """Re-encrypt every cluster's stored API keys under the current field key (the keys stay the same)."""
    count = 0
    for pk in Cluster.objects.values_list("pk", flat=True).iterator():
        with transaction.atomic():
            cluster = Cluster.objects.select_for_update().get(pk=pk)
            cluster.api_key_encrypted = field_reencrypt(ciphertext=cluster.api_key_encrypted)
            cluster.read_only_api_key_encrypted = field_reencrypt(
                ciphertext=cluster.read_only_api_key_encrypted
            )
            cluster.save(update_fields=["api_key_encrypted", "read_only_api_key_encrypted"])
        count += 1
    return count


# --- Clients and grants ---------------------------------------------------------------------


def client_create(*, slug: str, name: str, active: bool = True, actor: User | None = None) -> Client:
    """Create a client; its folder's ``client.yaml`` is committed once the row is."""
    client = Client(slug=slug, name=name, active=active)
    client.full_clean()
    client.save()
    delivery.client_file_deliver_after_commit(
        client=client, actor=actor, summary=f"{client.slug}: client created"
    )
    return client


def _client_changes_describe(*, client: Client, name: str, active: bool) -> str:
    described = []
    if client.name != name:
        described.append(f'name "{" ".join(client.name.split())}" -> "{" ".join(name.split())}"')
    if client.active != active:
        described.append("activated" if active else "deactivated")
    return ", ".join(described)


def client_update(*, client: Client, name: str, active: bool, actor: User | None = None) -> Client:
    """Rename or (de)activate a client; deactivation takes it out of every user's scope.

    Unchanged values write nothing (and commit nothing).
    """
    described = _client_changes_describe(client=client, name=name, active=active)
    if not described:
        return client
    active_changed = client.active != active
    with transaction.atomic():
        client.name, client.active = name, active
        client.full_clean()
        client.save(update_fields=["name", "active"])
        if active_changed:
            for user_id in Grant.objects.filter(client=client).values_list("user_id", flat=True):
                user_claims_bump(user_id=user_id)
    delivery.client_file_deliver_after_commit(
        client=client, actor=actor, summary=f"{client.slug}: {described}"
    )
    return client


@transaction.atomic
def grant_set(*, user: User, client: Client, role: str, actor: User | None = None) -> Grant:
    """Give ``user`` the ``role`` on ``client`` (creating or changing the grant)."""
    grant = Grant.objects.select_for_update().filter(user=user, client=client).first()
    if grant is not None and grant.role == role:
        return grant
    if grant is None:
        grant = Grant(user=user, client=client)
    grant.role = role
    grant.full_clean()
    grant.save()
    user_claims_bump(user_id=user.pk)
    logger.info(
        "grant set",
        extra={
            "user_id": user.pk,
            "client": client.slug,
            "role": role,
            "actor_id": getattr(actor, "pk", None),
        },
    )
    return grant


@transaction.atomic
def grant_remove(*, user: User, client: Client, actor: User | None = None) -> None:
    deleted, _ = Grant.objects.filter(user=user, client=client).delete()
    if deleted:
        user_claims_bump(user_id=user.pk)
        logger.info(
            "grant removed",
            extra={"user_id": user.pk, "client": client.slug, "actor_id": getattr(actor, "pk", None)},
        )
