"""Deliver the clusters' desired state from the database to the GitOps repository.

The database is the outbox: every cluster write records a ``ClusterChange`` in the same
transaction, with no commit yet. :func:`pending_changes_deliver` then turns each pending
change, in order, into one commit authored by the user who asked for it, and pushes.
It runs after the request's transaction, under one lock shared by every thread and process
(``gitops.locks``), so concurrent requests and replicas queue up instead of failing. When the
remote cannot be reached the commit stays local (``pushed`` False) and the next delivery or
``manage.py gitops_sync`` pushes it; a remote that moved meanwhile is fetched and the pending
changes are re-rendered on its tip. ``gitops_sync`` also renders every cluster in full, so git
always converges on the database.

Clients have no outbox: a client's ``client.yaml`` is rendered whole from its row, so
:func:`client_file_deliver` just commits the file as the database has it (same lock, same
push rules), and ``gitops_sync`` renders every client's file too, so a delivery that failed
is made good by the next sync.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from functools import cache, partial
from pathlib import Path

import yaml
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from clusters.crypto import field_decrypt
from clusters.models import Client, Cluster, ClusterChange
from gitops.argocd import APPLICATIONSET_PATH, README_PATH, applicationset_render, repository_readme_render
from gitops.locks import branch_lock
from gitops.repository import (
    Delivery,
    GitIdentity,
    GitopsError,
    GitopsRepository,
    GitopsUnavailable,
    RemoteConfig,
    TreeReader,
    changes_deliver,
    repository_open,
    tree_reader,
)
from gitops.sealing import SealingError, sealed_secret_render
from gitops.values import (
    API_KEY_SECRET_KEY,
    READ_ONLY_API_KEY_SECRET_KEY,
    ValuesError,
    apikey_secret_name,
    client_file_path,
    client_file_render,
    namespace_name,
    sealed_secret_path,
    values_path,
)
from gitops.values import (
    values_render as helm_values_render,
)

logger = logging.getLogger(__name__)

# A keyed fingerprint of the API keys, stored on the SealedSecret: sealing is randomized, so
# without it every render would produce a new file (and a commit) for unchanged keys.
KEYS_FINGERPRINT_ANNOTATION = "portal.qdrant.tech/keys-fingerprint"

__all__ = [
    "ClientFileChange",
    "GitopsConflict",
    "GitopsError",
    "GitopsUnavailable",
    "SyncReport",
    "changes_deliver_after_commit",
    "client_file_deliver",
    "client_file_deliver_after_commit",
    "pending_changes_deliver",
    "repository_sync",
]


class GitopsConflict(GitopsError):
    """Files in git, edited by hand, cannot take the portal's keys: people must fix them first.

    Raised after everything else was delivered; ``cluster_ids`` are the clusters left pending.
    """

    code = "gitops_values_conflict"
    status_code = 409

    def __init__(self, problems: Mapping[int, str]) -> None:
        super().__init__(
            "The GitOps repository was edited by hand in a way the change cannot be applied to: "
            + "; ".join(problems.values())
            + ". Fix the file in git, then try again."
        )
        self.cluster_ids = frozenset(problems)


# A values file the portal cannot parse or set its keys in, or a certificate it cannot seal with.
_CONTENT_ERRORS = (ValuesError, SealingError)


@dataclass(frozen=True)
class SyncReport:
    """What ``gitops_sync`` found (``check``) or did; ``conflicts`` could not be rendered."""

    drifted_paths: tuple[str, ...]
    commit: str | None
    pushed: bool
    conflicts: tuple[str, ...] = ()


def _identity_parse(raw: str) -> GitIdentity:
    name, email = parseaddr(raw)
    return GitIdentity(name=name or "Qdrant Portal", email=email or "portal@qdrant-portal.local")


def committer_identity() -> GitIdentity:
    return _identity_parse(settings.GITOPS_COMMITTER)


def _remote() -> RemoteConfig | None:
    if not settings.GITOPS_REMOTE_URL:
        return None
    return RemoteConfig(
        url=settings.GITOPS_REMOTE_URL,
        token=settings.GITOPS_REMOTE_TOKEN or None,
        ssh_key_path=Path(settings.GITOPS_SSH_KEY_PATH) if settings.GITOPS_SSH_KEY_PATH else None,
    )


def repository_get() -> GitopsRepository:
    """The local repository, created and bootstrapped (ApplicationSet, README) on first use."""

    def bootstrap() -> dict[str, bytes]:  # rendered only for a repository without the branch
        return {
            APPLICATIONSET_PATH: applicationset_render(
                repo_url=settings.GITOPS_REMOTE_URL or f"file://{settings.GITOPS_REPO_PATH}",
                branch=settings.GITOPS_BRANCH,
                chart_version=settings.QDRANT_CHART_VERSION,
                project=settings.ARGOCD_PROJECT,
            ),
            README_PATH: repository_readme_render(),
        }

    return repository_open(
        path=Path(settings.GITOPS_REPO_PATH),
        branch=settings.GITOPS_BRANCH,
        bootstrap_files=bootstrap,
        committer=committer_identity(),
    )


@cache
def _sealing_certificate(path: str) -> bytes:
    return Path(path).read_bytes()


def _keys_fingerprint(api_key: str, read_only_api_key: str) -> str:
    secret = hashlib.sha256(("gitops-fingerprint:" + settings.SECRET_KEY).encode()).digest()
    message = f"{api_key}\0{read_only_api_key}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _sealed_secret_fingerprint(existing: bytes | None) -> str | None:
    if not existing:
        return None
    try:
        manifest = yaml.safe_load(existing)
        return manifest["metadata"]["annotations"][KEYS_FINGERPRINT_ANNOTATION]
    except (yaml.YAMLError, KeyError, TypeError):
        return None


def _sealed_secret_file(*, cluster: Cluster, reader: TreeReader) -> dict[str, bytes | None]:
    """The cluster's SealedSecret, re-sealed only when its keys changed; nothing without a certificate."""
    if not settings.GITOPS_SEALING_CERT:
        return {}
    client = cluster.client.slug
    path = sealed_secret_path(client, cluster.slug)
    api_key = field_decrypt(ciphertext=cluster.api_key_encrypted)
    read_only_api_key = field_decrypt(ciphertext=cluster.read_only_api_key_encrypted)
    fingerprint = _keys_fingerprint(api_key, read_only_api_key)
    if _sealed_secret_fingerprint(reader.read(path)) == fingerprint:
        return {}
    manifest = yaml.safe_load(
        sealed_secret_render(
            certificate_pem=_sealing_certificate(settings.GITOPS_SEALING_CERT),
            namespace=namespace_name(client=client),
            name=apikey_secret_name(client=client, cluster=cluster.slug),
            data={API_KEY_SECRET_KEY: api_key, READ_ONLY_API_KEY_SECRET_KEY: read_only_api_key},
        )
    )
    manifest["metadata"]["annotations"] = {KEYS_FINGERPRINT_ANNOTATION: fingerprint}
    return {path: yaml.safe_dump(manifest, sort_keys=True, default_flow_style=False, width=120).encode()}


def cluster_files_render(
    *, cluster: Cluster, reader: TreeReader, overrides: Mapping[str, object] | None = None
) -> dict[str, bytes | None]:
    """The files of one cluster folder for its current state (``overrides``: a change's after-values)."""
    state = {"replicas": cluster.replicas, "version": cluster.version, "storageGi": cluster.storage_gi}
    state.update({key: value for key, value in (overrides or {}).items() if key in state})
    path = values_path(cluster.client.slug, cluster.slug)
    existing = reader.read(path)
    values = helm_values_render(
        existing=existing,
        client=cluster.client.slug,
        cluster=cluster.slug,
        replicas=int(state["replicas"]),
        version=str(state["version"]),
        storage_gi=int(state["storageGi"]),
    )
    files: dict[str, bytes | None] = {path: values} if values != existing else {}
    files.update(_sealed_secret_file(cluster=cluster, reader=reader))  # only when the keys changed
    return files


def _change_message(change: ClusterChange) -> str:
    message = change.message or f"{change.cluster}: {change.action}"
    trailers = [f"Portal-Change-Id: {change.pk}"]
    if change.actor_email:
        trailers.insert(0, f"Requested-by: {change.actor_name or change.actor_email} <{change.actor_email}>")
    return f"{message}\n\n" + "\n".join(trailers) + "\n"


def _change_author(change: ClusterChange) -> GitIdentity:
    if change.actor_email:
        return GitIdentity(name=change.actor_name or change.actor_email, email=change.actor_email)
    return committer_identity()


def _change_deliver(*, repository: GitopsRepository, change: ClusterChange) -> Delivery:
    after_values = {key: pair[1] for key, pair in (change.changes or {}).items() if isinstance(pair, list)}

    def render(reader: TreeReader) -> dict[str, bytes | None]:
        cluster = Cluster.objects.select_related("client").get(pk=change.cluster_id)
        return cluster_files_render(cluster=cluster, reader=reader, overrides=after_values)

    return changes_deliver(
        repository=repository,
        render=render,
        author=_change_author(change),
        committer=committer_identity(),
        message=_change_message(change),
        remote=_remote(),
        push_retries=settings.GITOPS_PUSH_RETRIES,
    )


def _record(*, change: ClusterChange, delivery: Delivery) -> None:
    commit = delivery.commit or delivery.tip or ""
    ClusterChange.objects.filter(pk=change.pk).update(
        commit=commit,
        committed_at=delivery.committed_at or timezone.now(),
        pushed=bool(delivery.pushed and commit),
    )


def _mark_pushed(*, delivery: Delivery) -> None:
    """After a successful push the whole local branch is on the remote: so is every recorded commit."""
    if delivery.superseded:
        # Those commits were dropped for the remote's newer tip; their changes are re-rendered below.
        ClusterChange.objects.filter(commit__in=delivery.superseded).update(commit="", pushed=False)
    if delivery.pushed:
        ClusterChange.objects.filter(pushed=False).exclude(commit="").update(pushed=True)


def pending_changes_deliver() -> None:
    """Commit every change not yet in git, oldest first (one commit each), and push.

    Raises GitopsUnavailable only when even the local repository cannot be written; network
    failures leave commits local and unpushed, to be delivered later.
    """
    with branch_lock(repo_path=Path(settings.GITOPS_REPO_PATH)):
        repository = repository_get()
        resync = False
        conflicts: dict[int, str] = {}
        while True:
            change = (
                ClusterChange.objects.filter(commit="")
                .exclude(cluster_id__in=conflicts)
                .select_related("cluster__client")
                .order_by("id")
                .first()
            )
            if change is None:
                break
            try:
                delivery = _change_deliver(repository=repository, change=change)
            except _CONTENT_ERRORS as error:
                # This cluster's changes wait for the file to be fixed; other clusters go on.
                conflicts[change.cluster_id] = str(error)
                continue
            _record(change=change, delivery=delivery)
            _mark_pushed(delivery=delivery)
            resync = resync or bool(delivery.superseded)
        if resync:
            # Changes re-applied after the remote moved may have landed out of order: converge.
            _full_sync(repository=repository, check=False)
        elif ClusterChange.objects.filter(pushed=False).exclude(commit="").exists() and _remote():
            delivery = changes_deliver(
                repository=repository,
                render=lambda reader: {},
                author=committer_identity(),
                committer=committer_identity(),
                message="Deliver pending changes\n",
                remote=_remote(),
                push_retries=settings.GITOPS_PUSH_RETRIES,
            )
            _mark_pushed(delivery=delivery)
    if conflicts:
        raise GitopsConflict(conflicts)


def _pending_changes_deliver_logged() -> None:
    try:
        pending_changes_deliver()
    except GitopsError:
        logger.exception("GitOps delivery failed; the changes stay pending for gitops_sync")


def _in_transaction() -> bool:
    """Whether an atomic block is open; the test runner's wrapping one (``_from_testcase``) does not count."""
    return any(not block._from_testcase for block in transaction.get_connection().atomic_blocks)


def changes_deliver_after_commit() -> bool:
    """Deliver pending changes once the data is committed: now, or when the open transaction commits.

    Returns True when delivery ran now (so the caller can report its outcome). Inside an outer
    transaction (the admin wraps its views in one) delivery is deferred to ``on_commit``, so git
    never carries a change the database rolled back.
    """
    if _in_transaction():
        transaction.on_commit(_pending_changes_deliver_logged, robust=True)
        return False
    pending_changes_deliver()
    return True


def client_files_render(*, client: Client, reader: TreeReader) -> dict[str, bytes | None]:
    """The client's ``client.yaml`` for its current row, when git differs from it."""
    path = client_file_path(client.slug)
    content = client_file_render(client=client.slug, name=client.name, active=client.active)
    return {path: content} if content != reader.read(path) else {}


@dataclass(frozen=True)
class ClientFileChange:
    """What to say about a client file commit: the subject line and who asked (empty: nobody known)."""

    client_id: int
    summary: str
    actor_name: str = ""
    actor_email: str = ""

    @property
    def author(self) -> GitIdentity:
        if self.actor_email:
            return GitIdentity(name=self.actor_name or self.actor_email, email=self.actor_email)
        return committer_identity()

    @property
    def message(self) -> str:
        if not self.actor_email:
            return f"{self.summary}\n"
        return f"{self.summary}\n\nRequested-by: {self.author.name} <{self.actor_email}>\n"


def client_file_deliver(*, change: ClientFileChange) -> Delivery:
    """Commit the client's ``client.yaml`` as the database has it now, and push (no commit if unchanged).

    Raises GitopsUnavailable only when not even the local repository can be written; an
    unreachable remote leaves the commit local for the next delivery or ``gitops_sync`` to push.
    """

    def render(reader: TreeReader) -> dict[str, bytes | None]:
        client = Client.objects.filter(pk=change.client_id).first()
        return client_files_render(client=client, reader=reader) if client is not None else {}

    with branch_lock(repo_path=Path(settings.GITOPS_REPO_PATH)):
        repository = repository_get()
        delivery = changes_deliver(
            repository=repository,
            render=render,
            author=change.author,
            committer=committer_identity(),
            message=change.message,
            remote=_remote(),
            push_retries=settings.GITOPS_PUSH_RETRIES,
        )
        _mark_pushed(delivery=delivery)
        if delivery.superseded:
            # Unpushed cluster commits were dropped for the remote's newer tip: render them again.
            _full_sync(repository=repository, check=False)
    return delivery


def _client_file_deliver_logged(change: ClientFileChange) -> None:
    try:
        client_file_deliver(change=change)
    except GitopsError:
        logger.exception("GitOps delivery failed; %s is left for gitops_sync", change.summary)


def client_file_deliver_after_commit(*, change: ClientFileChange) -> Delivery | None:
    """:func:`client_file_deliver` now, or when the open transaction commits (None is returned then)."""
    if _in_transaction():
        transaction.on_commit(partial(_client_file_deliver_logged, change), robust=True)
        return None
    return client_file_deliver(change=change)


def _all_clusters_render(reader: TreeReader, conflicts: dict[int, str]) -> dict[str, bytes | None]:
    """Every client's ``client.yaml`` and every cluster's files, where git differs from the database.

    A cluster whose files cannot be rendered is left out and described in ``conflicts``.
    """
    files: dict[str, bytes | None] = {}
    for client in Client.objects.order_by("slug"):
        files.update(client_files_render(client=client, reader=reader))
    for cluster in Cluster.objects.select_related("client").order_by("client__slug", "slug"):
        try:
            files.update(cluster_files_render(cluster=cluster, reader=reader))
        except _CONTENT_ERRORS as error:
            conflicts[cluster.pk] = str(error)
    return files


def _full_sync(*, repository: GitopsRepository, check: bool) -> SyncReport:
    """Render everything from the database; raises :class:`GitopsConflict` after committing the rest."""
    conflicts: dict[int, str] = {}
    if check:
        reader = tree_reader(repository=repository, remote=_remote())
        drifted = tuple(sorted(_all_clusters_render(reader, conflicts)))
        return SyncReport(
            drifted_paths=drifted, commit=None, pushed=False, conflicts=tuple(conflicts.values())
        )

    drifted_seen: list[str] = []

    def render(reader: TreeReader) -> dict[str, bytes | None]:
        conflicts.clear()
        files = _all_clusters_render(reader, conflicts)
        drifted_seen[:] = sorted(files)
        return files

    delivery = changes_deliver(
        repository=repository,
        render=render,
        author=committer_identity(),
        committer=committer_identity(),
        message="Sync clients and clusters from the portal database\n",
        remote=_remote(),
        push_retries=settings.GITOPS_PUSH_RETRIES,
    )
    _mark_pushed(delivery=delivery)
    if delivery.commit:
        ClusterChange.objects.filter(commit="").exclude(cluster_id__in=conflicts).update(
            commit=delivery.commit, committed_at=delivery.committed_at, pushed=delivery.pushed
        )
    if conflicts:
        raise GitopsConflict(conflicts)
    return SyncReport(drifted_paths=tuple(drifted_seen), commit=delivery.commit, pushed=delivery.pushed)


def repository_sync(*, check: bool = False) -> SyncReport:
    """Make git equal to the database (``check``: only report the paths that differ)."""
    with branch_lock(repo_path=Path(settings.GITOPS_REPO_PATH)):
        repository = repository_get()
        if check:
            return _full_sync(repository=repository, check=True)
    pending_changes_deliver()
    with branch_lock(repo_path=Path(settings.GITOPS_REPO_PATH)):
        return _full_sync(repository=repository_get(), check=False)
