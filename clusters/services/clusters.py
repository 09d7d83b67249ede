"""Writes for clusters: create one, change its desired state, re-encrypt its keys.

The policy of a cluster's desired state lives here: replicas within the configured range and
a scale-down only when confirmed; versions only forwards, one minor at a time
(``clusters.versions``); storage only grows, and growing it is a request an operator carries
out (``clusters.services.storage``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from clusters.models import SLUG_PATTERN, SPEC_FIELD_NAMES, Client, Cluster, ClusterChange
from clusters.services.changes import (
    MESSAGE_LABELS,
    ChangeSource,
    ClusterChangeResult,
    change_record,
    cluster_locked,
    delivered,
    update_undo,
    value_text,
)
from clusters.services.credentials import api_key_new
from clusters.services.git_folders import git_folder_claim
from clusters.services.storage import storage_expansion_request
from clusters.versions import version_problem
from config.crypto import CLUSTER_API_KEYS, FieldDecryptionError, field_encrypt, field_reencrypt
from config.errors import ConfirmationRequired
from gitops.values import cluster_folder, release_name

# The release name ("qdrant-<client>-<cluster>") is the chart's StatefulSet name. Helm allows
# 53 characters, but Kubernetes labels each pod controller-revision-hash=<statefulset>-<hash of
# up to 10>, and a label value holds 63: at 53 the pods are not created (kubernetes#64023).
RELEASE_NAME_MAX = 52


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
    current: Cluster | None = None,
) -> None:
    """The policy for a cluster's desired state; None means "not given", ``current`` the cluster as it is.

    Raises ValidationError keyed by model field names (``storage_gi``).
    """
    problems = {
        "replicas": _replicas_problem(replicas) if replicas is not None else None,
        "version": (
            version_problem(
                current=current.version if current else None,
                target=version,
                offered=settings.QDRANT_VERSIONS,
            )
            if version is not None
            else None
        ),
        "storage_gi": (
            _storage_problem(storage_gi, current.storage_gi if current else None)
            if storage_gi is not None
            else None
        ),
    }
    errors = {field: [problem] for field, problem in problems.items() if problem}
    if errors:
        raise ValidationError(errors)


API_CONFIRMATION = 'send the change again with "confirm": true'


def scale_down_problem(*, cluster: Cluster, replicas: int, confirm_by: str = API_CONFIRMATION) -> str | None:
    """Why scaling ``cluster`` to ``replicas`` needs a confirmation (None: it does not shrink);
    ``confirm_by``: how the asker confirms, in their own interface's words."""
    if replicas >= cluster.replicas:
        return None
    removed = cluster.replicas - replicas
    peers = (
        "1 Qdrant peer, the highest-numbered pod"
        if removed == 1
        else f"{removed} Qdrant peers, the highest-numbered pods"
    )
    return (
        f"Scaling {cluster} down from {cluster.replicas} replicas to {replicas} removes {peers}. "
        "Qdrant does not move shards off a peer that disappears: a shard whose only copy is on a "
        "removed peer is lost. Nor does it forget the peer: until it is removed from the cluster "
        "(DELETE /cluster/peer/{peer_id}, once it holds no shard) it still votes, and without a "
        "majority of its peers up Qdrant makes no cluster-wide change (creating or deleting a "
        f"collection, moving a shard). Move or replicate those shards, remove those peers, then {confirm_by}. "
        "Nothing was changed."
    )


# --- Clusters -------------------------------------------------------------------------------


DUPLICATE_CLUSTER = "A cluster with this name already exists for this client."


def cluster_slug_check(*, client: Client, slug: str, take_over_git_folder: bool = False) -> bool:
    """What the slug's own validators cannot know: its length with the client's, uniqueness, and
    a folder of that name in git that no cluster owns (``take_over_git_folder``: the new cluster
    is deployed from it; True is then answered). The admin's form asks before it saves;
    ``cluster_create`` again."""
    if not isinstance(slug, str) or not re.fullmatch(SLUG_PATTERN, slug):
        return False  # not a slug at all: the field's own validator says so (a form runs it after this)
    if len(release_name(client=client.slug, cluster=slug)) > RELEASE_NAME_MAX:
        raise ValidationError(
            {
                "slug": [
                    f"Client and cluster names together are too long: qdrant-<client>-<cluster> must fit "
                    f"in {RELEASE_NAME_MAX} characters (Kubernetes names its pods after it)."
                ]
            }
        )
    taken = Cluster.objects.filter(client=client, slug=slug).first()
    if taken is not None:
        retired = " (a decommissioned one: names are never used again)" if taken.decommissioned else ""
        raise ValidationError({"slug": [DUPLICATE_CLUSTER.removesuffix(".") + retired + "."]})
    try:
        return git_folder_claim(
            folder=cluster_folder(client.slug, slug), owner="cluster", take_over=take_over_git_folder
        )
    except ValidationError as error:
        raise ValidationError({"slug": error.error_list}) from error


def cluster_create(
    *,
    client: Client,
    slug: str,
    actor: User | None,
    replicas: int = 1,
    version: str | None = None,
    storage_gi: int | None = None,
    take_over_git_folder: bool = False,
) -> ClusterChangeResult:
    """Create a cluster with fresh API keys and record the creation (``take_over_git_folder``:
    even where git holds a folder of that name already, see ``git_folders``)."""
    version = version if version is not None else settings.QDRANT_DEFAULT_VERSION
    storage_gi = storage_gi if storage_gi is not None else settings.STORAGE_GI_DEFAULT
    cluster_spec_validate(replicas=replicas, version=version, storage_gi=storage_gi)
    cluster = Cluster(
        client=client,
        slug=slug,
        replicas=replicas,
        version=version,
        storage_gi=storage_gi,
        api_key_encrypted=field_encrypt(plaintext=api_key_new(), purpose=CLUSTER_API_KEYS),
        read_only_api_key_encrypted=field_encrypt(plaintext=api_key_new(), purpose=CLUSTER_API_KEYS),
    )
    cluster.full_clean(validate_constraints=False)
    taken_over = cluster_slug_check(client=client, slug=slug, take_over_git_folder=take_over_git_folder)
    cluster.validate_constraints()
    values = {field: getattr(cluster, field) for field in SPEC_FIELD_NAMES}
    summary = ", ".join(f"{MESSAGE_LABELS[f]} {value_text(f, v)}" for f, v in values.items())
    if taken_over:
        summary += ", over the folder git held"
    try:
        with transaction.atomic():
            cluster.save()
            change = change_record(
                cluster=cluster,
                actor=actor,
                action=ClusterChange.Action.CREATE,
                changes={SPEC_FIELD_NAMES[f]: [None, v] for f, v in values.items()},
                message=f"{client.slug}/{slug}: created with {summary}",
            )
    except IntegrityError as exc:
        # Lost a race with another create of the same slug (full_clean checked just before).
        raise ValidationError({"slug": [DUPLICATE_CLUSTER]}) from exc
    return delivered(ClusterChangeResult(cluster=cluster, change=change))


def _update_describe(current: Cluster, diff: dict[str, tuple[Any, Any]]) -> str:
    """``replicas 2 -> 3 (scale up), version v1.18.3 -> v1.19.0``."""
    described = []
    for field, (before, after) in diff.items():
        text = f"{MESSAGE_LABELS[field]} {value_text(field, before)} -> {value_text(field, after)}"
        if field == "replicas":
            text += " (scale up)" if after > before else " (scale down)"
        described.append(text)
    return f"{current}: {', '.join(described)}"


def cluster_update(
    *,
    cluster: Cluster,
    actor: User | None,
    source: ChangeSource | None = None,
    replicas: int | None = None,
    version: str | None = None,
    storage_gi: int | None = None,
    confirm: bool = False,
    check: Callable[[Cluster], None] | None = None,
) -> ClusterChangeResult:
    """Change replicas and/or version, and ask for more storage (None: keep).

    Values equal to the current ones record nothing. A scale-down needs ``confirm`` (409
    ``confirmation_required`` otherwise, nothing changed). A bigger ``storage_gi`` is not
    committed: it becomes a storage request that an operator carries out. ``check`` is given
    the row as locked, before anything is written, to refuse by raising (the admin's page that
    no longer shows the stored cluster).
    """
    requested = {"replicas": replicas, "version": version, "storage_gi": storage_gi}
    requested = {field: value for field, value in requested.items() if value is not None}
    with transaction.atomic():
        current = cluster_locked(cluster=cluster)
        if check is not None:
            check(current)
        cluster_spec_validate(**requested, current=current)
        problem = scale_down_problem(cluster=current, replicas=replicas) if replicas is not None else None
        if problem and not confirm:
            raise ConfirmationRequired(problem)
        expansion, created = (
            storage_expansion_request(cluster=current, actor=actor, source=source, storage_gi=storage_gi)
            if storage_gi is not None
            else (None, False)
        )
        diff = {
            field: (getattr(current, field), value)
            for field, value in requested.items()
            if field != "storage_gi" and getattr(current, field) != value
        }
        result = ClusterChangeResult(
            cluster=current, change=None, storage_expansion=expansion, storage_expansion_created=created
        )
        if not diff:
            return result
        for field, (_, after) in diff.items():
            setattr(current, field, after)
        current.full_clean(exclude=[field.name for field in Cluster._meta.fields if field.name not in diff])
        current.save(update_fields=[*diff, "updated_at"])
        change = change_record(
            cluster=current,
            actor=actor,
            action=ClusterChange.Action.UPDATE,
            changes={SPEC_FIELD_NAMES[f]: [before, after] for f, (before, after) in diff.items()},
            message=_update_describe(current, diff),
            source=source,
        )
    return delivered(replace(result, change=change), undo=update_undo)


def cluster_keys_reencrypt() -> int:
    """Re-encrypt every cluster's stored API keys under the current field key (the keys stay the same)."""
    columns = ("api_key_encrypted", "read_only_api_key_encrypted", "alt_api_key_encrypted")
    count = 0
    for pk in Cluster.objects.values_list("pk", flat=True).iterator():
        with transaction.atomic():
            cluster = Cluster.objects.select_for_update().get(pk=pk)
            try:
                for column in columns:
                    if getattr(cluster, column):  # the alternate key exists only during a rotation
                        ciphertext = getattr(cluster, column)
                        setattr(
                            cluster, column, field_reencrypt(ciphertext=ciphertext, purpose=CLUSTER_API_KEYS)
                        )
            except FieldDecryptionError as error:
                raise FieldDecryptionError(
                    f"The API keys of cluster {cluster} cannot be decrypted."
                ) from error
            cluster.save(update_fields=list(columns))
        count += 1
    return count
