"""From what Argo CD reports about an Application to a cluster deployment's state.

``clusters.deployments`` asks Argo CD and builds the ``Deployment``; this module holds the
states and the one rule of each: which revision holds a change, and what sync, operation and
health mean for the latest change.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db.models import Q

from clusters.models import ClusterChange
from clusters.remote import branch_fetch_soon
from clusters.rendering import cluster_files_render, cluster_stop_render
from config.crypto import FieldDecryptionError
from gitops.argocd_api import ApplicationStatus
from gitops.errors import ContentError, RepositoryUnavailable
from gitops.remote import commit_history, remote_tracking_tip
from gitops.repository import GitopsRepository, branch_tip, commit_exists, tree_reader

PENDING = "pending"
SYNCING = "syncing"
DEPLOYED = "deployed"
DEGRADED = "degraded"
FAILED = "failed"
UNKNOWN = "unknown"
DEPLOYMENT_STATES = (PENDING, SYNCING, DEPLOYED, DEGRADED, FAILED, UNKNOWN)
# States a monitor alerts on (``manage.py deployments`` exits non-zero).
ALERTING_STATES = frozenset({FAILED, DEGRADED})
_GIT_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


# --- From an Application's status to a deployment state --------------------------------------


def _repository() -> GitopsRepository:
    return GitopsRepository(path=Path(settings.GITOPS_REPO_PATH), branch=settings.GITOPS_BRANCH)


def _portal_order_contains(deployed: str, change: ClusterChange) -> bool:
    """Whether ``deployed`` is a commit the portal delivered after ``change`` (by the database)."""
    later = Q(committed_at__gt=change.committed_at) | Q(committed_at=change.committed_at, pk__gt=change.pk)
    return ClusterChange.objects.filter(later, commit=deployed, pushed=True).exists()


def revision_contains(*, deployed: str, change: ClusterChange) -> bool:
    """Whether the git revision Argo CD deployed holds ``change``'s commit (is it or comes after it).

    From this replica's repository when it has both commits. Otherwise (another replica
    delivered them and this one has not fetched yet) the database's record of the portal's own
    commits decides. A revision neither knows holds nothing: Argo CD may follow another branch
    or repository, and counting it as newer would show ``deployed`` for a change that is not.
    Every Application reports much the same revision: its history is read once (per process)
    for all of them, not walked back to each cluster's change.
    """
    if not deployed or not _GIT_COMMIT.fullmatch(deployed):
        return False
    if deployed == change.commit:
        return True
    repository = _repository()
    try:
        history = commit_history(repository=repository, commit=deployed)
        if change.commit in history:
            return True
        if not history:
            branch_fetch_soon(repository=repository)  # a commit made elsewhere: judged at a next look
        elif commit_exists(repository=repository, commit=change.commit):
            return _rewritten_away(repository, change) and _deployed_as_rendered(repository, deployed, change)
    except RepositoryUnavailable:
        pass
    return _portal_order_contains(deployed, change)


def _rewritten_away(repository: GitopsRepository, change: ClusterChange) -> bool:
    """Whether the branch no longer holds the change's commit: its history was rewritten (a
    force-push, to squash it or to purge something), so no revision ever will."""
    # The remote's branch as last fetched (what Argo CD reads), else this clone's own.
    tip = remote_tracking_tip(repository=repository) or branch_tip(repository=repository)
    return tip is not None and change.commit not in commit_history(repository=repository, commit=tip)


def _deployed_as_rendered(repository: GitopsRepository, deployed: str, change: ClusterChange) -> bool:
    """Whether the cluster's files at ``deployed`` are what the database renders now: then that
    revision holds the change, whatever commit carries it (else it would read pending for ever)."""
    cluster = change.cluster
    if cluster.removed:
        return False
    render = cluster_stop_render if cluster.decommissioned else cluster_files_render
    try:
        return not render(cluster=cluster, reader=tree_reader(repository=repository, commit=deployed))
    except (ContentError, FieldDecryptionError):
        return False


def revision_known(*, revision: str) -> bool:
    """Whether ``revision`` is a commit of the portal's gitops repository (or one the portal made)."""
    try:
        if commit_exists(repository=_repository(), commit=revision):
            return True
    except RepositoryUnavailable:
        pass
    return ClusterChange.objects.filter(commit=revision).exists()


def _not_picked_up(revision: str) -> str:
    """Why a pushed change is still ``pending``, from the revision Argo CD is at."""
    if not revision:
        return "Pushed; Argo CD has not picked up this commit yet."
    if _GIT_COMMIT.fullmatch(revision) and not revision_known(revision=revision):
        # Still pending, not unknown: Argo CD answered, and a revision the portal has not
        # fetched yet may be a later commit; but when it stays, Argo CD follows something else.
        return (
            f"Pushed; Argo CD is at {revision[:7]}, a revision the portal's git repository does not "
            "have: Argo CD may follow another branch or repository than the portal pushes to."
        )
    return f"Pushed; Argo CD has not picked up this commit yet (it is at {revision[:7]})."


def _error_condition(status: ApplicationStatus) -> str:
    """The message of a condition saying Argo CD cannot render or compare the Application."""
    errors = [c.message or c.type for c in status.conditions if c.type.endswith("Error")]
    return " ".join(errors)


def _synced_state(status: ApplicationStatus, checked_at: datetime) -> tuple[str, str]:
    """The state of an Application synced to the latest change: its health decides."""
    health, message = status.health_status, status.health_message
    if health == "Healthy":
        return DEPLOYED, "Argo CD applied the latest change and the cluster is healthy."
    if health == "Progressing":
        # Argo CD never calls a StatefulSet whose pods cannot start (a bad image, a crash loop)
        # anything but Progressing: past the deadline, that is a degraded cluster.
        # Since the later of the health's last change and the end of the last sync.
        since = max(filter(None, (status.health_since, status.operation_finished_at)), default=None)
        if since is not None and checked_at - since > settings.DEPLOYMENT_PROGRESS_DEADLINE:
            minutes = max(1, int((checked_at - since).total_seconds() // 60))
            return DEGRADED, (
                f"The cluster's pods have not become ready in {minutes} minutes since Argo CD "
                f"applied the latest change{': ' + message if message else '.'}"
            )
        return SYNCING, message or "Argo CD applied the latest change; the cluster's pods are starting."
    if health in {"Degraded", "Missing", "Suspended"}:
        return DEGRADED, message or f"Argo CD applied the latest change but the cluster is {health.lower()}."
    return UNKNOWN, "Argo CD does not know the cluster's health yet."


def _running_state(status: ApplicationStatus, checked_at: datetime) -> tuple[str, str]:
    """A sync under way; past the deadline, one that waits for ever (a wave whose resource never
    becomes healthy, such as a SealedSecret the controller cannot unseal) is a degraded cluster."""
    message = status.operation_message
    started = status.operation_started_at
    if started is not None and checked_at - started > settings.DEPLOYMENT_PROGRESS_DEADLINE:
        minutes = max(1, int((checked_at - started).total_seconds() // 60))
        return DEGRADED, (
            f"Argo CD has been applying the latest change for {minutes} minutes without finishing"
            f"{': ' + message if message else '.'}"
        )
    if status.operation_phase == "Terminating":
        return SYNCING, message or "Argo CD is stopping a sync of the latest change."
    return SYNCING, message or "Argo CD is applying the latest change."


def _unapplied_state(
    status: ApplicationStatus, change: ClusterChange, checked_at: datetime
) -> tuple[str, str]:
    """Seen, not applied, no sync running: automated sync starts one at once; past the deadline
    since the change (or the last sync), none will: automated sync off, a sync window that denies
    it, or the live cluster changed by hand with self-heal off. Only an operator can see to it."""
    since = max(filter(None, (change.committed_at, status.operation_finished_at)), default=None)
    if since is not None and checked_at - since > settings.DEPLOYMENT_PROGRESS_DEADLINE:
        return DEGRADED, (
            f"Argo CD has seen the latest change but is not applying it ({status.sync_status}, no sync "
            "running): is automated sync off for this Application, or a sync window closed?"
        )
    return SYNCING, f"Argo CD has seen the latest change and is about to apply it ({status.sync_status})."


def status_state(
    status: ApplicationStatus, change: ClusterChange, *, checked_at: datetime
) -> tuple[str, str]:
    """(state, message) for a pushed ``change`` and what Argo CD reported at ``checked_at``."""
    condition = _error_condition(status) if status.sync_status != "Synced" else ""
    if condition and not status.revision:  # Argo CD could not even resolve what to compare
        return FAILED, condition
    if not revision_contains(deployed=status.revision, change=change):
        return PENDING, _not_picked_up(status.revision)
    operation_current = not status.operation_revision or revision_contains(
        deployed=status.operation_revision, change=change
    )
    if status.operation_failed and operation_current:
        return FAILED, status.operation_message or f"Argo CD's sync ended in {status.operation_phase}."
    if condition:
        return FAILED, condition
    if status.operation_running:
        return _running_state(status, checked_at)
    if status.sync_status != "Synced":
        return _unapplied_state(status, change, checked_at)
    return _synced_state(status, checked_at)
