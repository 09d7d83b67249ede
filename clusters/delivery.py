"""Deliver the clusters' desired state from the database to the GitOps repository.

The database is the outbox: every cluster write records a ``ClusterChange`` in the same
transaction, not yet pushed. :func:`pending_changes_deliver` delivers every change not yet on
the remote in two halves, each under a lock shared by every thread and replica
(``gitops.locks``): under the branch lock, one commit per change not yet committed, authored by
the user who asked; then, under the push lock, one push of the branch for all of them. A
request that waited for a lock usually finds its change already committed, or pushed, by the
one before it (group commit), so concurrent changes cost one push; and while one group is being
pushed, the next group is committed.

When the remote cannot be reached the commits stay local (``pushed`` False) and the next
delivery or ``manage.py gitops_sync`` pushes them; when it moved meanwhile, every unpushed
change is rendered again on its tip, each still its own commit by its own author.

Whatever push gets the branch onto the remote (a cluster change's, a client save's, a sync's)
marks every pending change whose commit it carried pushed: :func:`_delivered_record`, where
every delivery ends.

Clients have no outbox: a client's ``client.yaml`` is rendered whole from its row and goes
out with the next delivery. ``gitops_sync`` (``clusters.sync``) renders every client and
cluster in full, so git always converges on the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from clusters.deployments import applications_refresh
from clusters.models import KEY_ACTIONS, Client, Cluster, ClusterChange
from clusters.remote import (
    gitops_remote,
    remote_failed_recently,
    remote_failure_forget,
    remote_resting,
    remote_state_record,
)
from clusters.rendering import (
    KeysUnreadable,
    client_files_render,
    cluster_files_render,
    cluster_removal_render,
    cluster_stop_render,
)
from clusters.repository import (
    author_identity,
    branch_locked,
    commit_message,
    committer_identity,
    locked,
    repository_get,
)
from clusters.selectors import changes_pending
from config import metrics
from config.crypto import FieldDecryptionError
from gitops.delivery import GroupDelivery, PendingCommit, branch_deliver, commits_deliver, commits_make
from gitops.errors import GitopsError
from gitops.locks import push_lock
from gitops.remote import commit_is_ancestor
from gitops.repository import GitopsRepository, branch_tip
from gitops.trees import TreeReader

logger = logging.getLogger(__name__)

# --- The outbox ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryReport:
    """``conflicts``: clusters whose files in git cannot take their change (id -> what is wrong);
    ``commits``: the commit of each extra item handed to the delivery (None: nothing changed)."""

    conflicts: Mapping[int, str]
    pushed: bool
    commits: Mapping[object, str | None] = field(default_factory=dict)
    unreadable: frozenset[int] = frozenset()  # of the conflicts: clusters whose keys cannot be decrypted


def _change_render(change: ClusterChange, reader: TreeReader) -> dict[str, bytes | None]:
    if change.cluster.decommissioned:
        return _retired_render(change, reader)
    keys_changed = change.action in KEY_ACTIONS
    try:
        return cluster_files_render(
            cluster=change.cluster, reader=reader, changes=change.changes, keys_changed=keys_changed
        )
    except FieldDecryptionError as error:  # that cluster's change waits; another client's do not
        raise KeysUnreadable(str(error)) from error


def _retired_render(change: ClusterChange, reader: TreeReader) -> dict[str, bytes | None]:
    """A decommissioned cluster's changes: its decommissioning stops it, its removal removes its
    folder; an older change still pending renders nothing (its values never apply any more)."""
    if change.action == ClusterChange.Action.DECOMMISSION:
        return cluster_stop_render(cluster=change.cluster, reader=reader)
    if change.action == ClusterChange.Action.REMOVE:
        return cluster_removal_render(cluster=change.cluster, reader=reader)
    return {}


def change_summary(change: ClusterChange) -> str:
    """The summary line of ``change``'s commit (its trailers name the change: ``clusters.lost_changes``)."""
    return change.message or f"{change.cluster}: {change.action}"


def _change_pending(change: ClusterChange) -> PendingCommit:
    return PendingCommit(
        key=change.pk,
        render=partial(_change_render, change),
        author=author_identity(email=change.actor_email, name=change.actor_name),
        message=commit_message(
            summary=change_summary(change),
            email=change.actor_email,
            name=change.actor_name,
            change_id=change.pk,
        ),
        committed=change.commit or None,
    )


def _client_render(client_id: int, reader: TreeReader) -> dict[str, bytes | None]:
    client = Client.objects.filter(pk=client_id).first()
    return client_files_render(client=client, reader=reader) if client is not None else {}


def client_file_pending(*, client: Client, actor: User | None, summary: str) -> PendingCommit:
    """The commit of a client's ``client.yaml`` as its row is when delivered."""
    email, name = (actor.email, actor.name) if actor else ("", "")
    return PendingCommit(
        key=("client", client.pk),
        render=partial(_client_render, client.pk),
        author=author_identity(email=email, name=name),
        message=commit_message(summary=summary, email=email, name=name),
    )


def _change_commit_record(
    repository: GitopsRepository, change: ClusterChange, commit: str | None, delivery: GroupDelivery
) -> None:
    """Record the commit that carries ``change`` (whether the remote has it: :func:`_delivered_record`)."""
    if commit is None:
        # No commit of its own: git is in this state already. Its earlier commit stands while the
        # branch holds it (not when it was made in another replica's clone, or replaced).
        kept = change.commit and delivery.tip and _is_ancestor(repository, change.commit, delivery.tip)
        commit = change.commit if kept else delivery.tip or ""
    if commit == change.commit:
        return  # nothing new
    # A push since this delivery read the row may have carried its commit: that one stays.
    ClusterChange.objects.filter(pk=change.pk, pushed=False).update(
        commit=commit, committed_at=delivery.committed_at or timezone.now()
    )


def _is_ancestor(repository: GitopsRepository, commit: str, tip: str) -> bool:
    return commit_is_ancestor(repository=repository, ancestor=commit, descendant=tip)


def _committed_here(repository: GitopsRepository, change: ClusterChange) -> bool:
    """Whether this clone's branch holds the change's commit (not another replica's clone)."""
    tip = branch_tip(repository=repository)
    return bool(change.commit and tip) and _is_ancestor(repository, change.commit, tip)


def _changes_to_deliver(
    *, with_changes: bool, awaited: int | None, push: bool, resting: bool = False
) -> tuple[dict[int, ClusterChange], DeliveryReport | None]:
    """The pending changes a delivery takes, or its answer when ``awaited`` needs nothing of it."""
    pending_rows = changes_pending().select_related("cluster__client") if with_changes else []
    changes = {change.pk: change for change in pending_rows}
    if awaited is not None and awaited not in changes:
        return changes, DeliveryReport(conflicts={}, pushed=True)
    if not push:
        if awaited is not None and changes[awaited].commit:
            return changes, DeliveryReport(conflicts={}, pushed=False)
        changes = {pk: change for pk, change in changes.items() if not change.commit}
    if resting and awaited is not None:
        # Its own change, and its cluster's older ones (committed after it, they would put the
        # older values back): another may be the retry's, which must then push it from its own
        # clone, not rebuild it under the branch lock while every resting write waits for that.
        cluster_id = changes[awaited].cluster_id
        changes = {pk: c for pk, c in changes.items() if pk <= awaited and c.cluster_id == cluster_id}
    return changes, None


def _deliver(
    repository: GitopsRepository,
    extra: Sequence[PendingCommit],
    *,
    with_changes: bool = True,
    awaited: int | None = None,
    push: bool = True,
    resting: bool = False,
) -> DeliveryReport:
    """Commit the pending cluster changes (``with_changes``), then ``extra``, and push once
    (``push``; else the commits wait for :func:`_push_half`; ``resting``: nor fetch, see
    :func:`gitops.delivery.commits_make`).

    ``awaited``: the change the caller waits for; if it is on the remote already (or, without
    ``push``, committed by anyone), nothing is done. Without ``push`` only changes nobody has
    committed are: one committed in another replica's clone is that replica's to push (or, if
    it cannot, a delivery's under both locks, which renders it again on the remote's tip).
    """
    changes, answer = _changes_to_deliver(
        with_changes=with_changes, awaited=awaited, push=push, resting=resting
    )
    if answer is not None:
        return answer
    pending = [_change_pending(change) for change in changes.values()] + list(extra)
    if not pending:
        return DeliveryReport(conflicts={}, pushed=True)
    remote = gitops_remote()
    committer = committer_identity()
    if push:
        delivery = commits_deliver(
            repository=repository,
            pending=pending,
            committer=committer,
            remote=remote,
            push_retries=settings.GITOPS_PUSH_RETRIES,
        )
    else:
        delivery = commits_make(
            repository=repository, pending=pending, committer=committer, remote=remote, fetch=not resting
        )
    pushed = delivery.pushed if remote is not None and push else None  # None: no push tried
    metrics.gitops_delivery_record(commits=delivery.commits_made, pushed=pushed)
    with transaction.atomic():  # one database commit for the whole batch, not one per change
        report = _outcomes_record(repository, delivery, changes)
        delivered = _delivered_record(repository, delivered=delivery.pushed, pushed=pushed, tip=delivery.tip)
    if pushed:  # Argo CD looks at the remote: ask it to look now rather than at its next poll
        applications_refresh(clusters=delivered)
    return report


def _outcomes_record(
    repository: GitopsRepository, delivery: GroupDelivery, changes: Mapping[int, ClusterChange]
) -> DeliveryReport:
    """Each change's commit recorded; what could not be rendered, and the extra items' commits."""
    conflicts: dict[int, str] = {}
    unreadable: set[int] = set()
    commits: dict[object, str | None] = {}
    for outcome in delivery.outcomes:
        change = changes.get(outcome.key)  # type: ignore[call-overload]
        if change is None:
            commits[outcome.key] = outcome.commit
        elif outcome.error is not None:
            conflicts[change.cluster_id] = str(outcome.error)
            if isinstance(outcome.error, KeysUnreadable):
                unreadable.add(change.cluster_id)
        else:
            _change_commit_record(repository, change, outcome.commit, delivery)
    return DeliveryReport(
        conflicts=conflicts, pushed=delivery.pushed, commits=commits, unreadable=frozenset(unreadable)
    )


def outbox_deliver(*, repository: GitopsRepository, extra: Sequence[PendingCommit]) -> DeliveryReport:
    """Every pending change, then ``extra``, pushed at once, the remote tried whether or not it
    rests (``gitops_sync``). The caller holds both locks."""
    return _deliver(repository, extra)


def pending_changes_deliver(
    *, extra: Sequence[PendingCommit] = (), awaited: int | None = None
) -> DeliveryReport:
    """Commit every change not yet on the remote, oldest first (one commit each), and push once.

    ``awaited``: the change a request waits for. Its delivery is pipelined: under the branch
    lock every pending change not yet committed is committed, unless ``awaited`` already is;
    then, under the push lock, the branch is pushed unless a push since carried ``awaited``.
    So the next group's commits are made while this group's push is in flight, and a request
    whose change another request delivered answers at once: the changes made since are pushed
    by their own requests (otherwise, behind a lock that is not first-come-first-served,
    ``flock``, it could wait out several later pushes). Without ``awaited`` (or a remote),
    everything happens under both locks.

    Raises ``RepositoryUnavailable`` only when not even the local repository can be written;
    network failures leave commits local and unpushed, to be delivered later.
    """
    remote_failure_forget()
    remote = gitops_remote()
    resting = remote is not None and remote_resting()
    if awaited is None or extra or remote is None:
        return locked(lambda repo: _deliver(repo, extra, awaited=awaited, push=not resting, resting=resting))
    # A resting write takes the branch lock only (a retry in flight holds the push lock), and
    # commits its own change and its cluster's older ones only (_changes_to_deliver).
    committed = branch_locked(lambda repo: _deliver(repo, (), awaited=awaited, push=False, resting=resting))
    if committed.pushed or resting:
        return committed  # on the remote already, or left for the retry to carry
    if ClusterChange.objects.filter(pk=awaited, cluster_id__in=committed.conflicts).exists():
        # Git cannot take it here; it may be fixed on the remote: the full delivery looks there.
        return locked(lambda repository: _deliver(repository, (), awaited=awaited))
    with push_lock(repo_path=Path(settings.GITOPS_REPO_PATH)):
        return _push_half(repository_get(), committed, awaited=awaited)


def _push_half(repository: GitopsRepository, committed: DeliveryReport, *, awaited: int) -> DeliveryReport:
    """Under the push lock: push the branch, unless an earlier push carried ``awaited``.

    When the remote moved, or ``awaited`` was committed in another replica's clone (which has
    not pushed it yet), every unpushed change is rendered again on the remote's tip and pushed,
    as a delivery under both locks does.
    """
    change = changes_pending().filter(pk=awaited).first()
    if change is None or remote_failed_recently():  # pushed meanwhile; or the push before failed just now
        return replace(committed, pushed=change is None)
    if not _committed_here(repository, change):  # committed in another replica's clone
        return branch_locked(lambda repository: _deliver(repository, (), awaited=awaited))
    pushed, tip, moved = branch_deliver(repository=repository, remote=gitops_remote())
    if moved:
        return branch_locked(lambda repository: _deliver(repository, (), awaited=awaited))
    metrics.gitops_delivery_record(commits=0, pushed=pushed)
    with transaction.atomic():
        delivered = _delivered_record(repository, delivered=pushed, pushed=pushed, tip=tip)
    if delivered:
        applications_refresh(clusters=delivered)
    return replace(committed, pushed=pushed)


def _delivered_record(
    repository: GitopsRepository, *, delivered: bool, pushed: bool | None, tip: str | None
) -> list[Cluster]:
    """Where every delivery ends, in its transaction; the clusters whose changes went out.

    ``delivered``: the remote now has ``tip`` (or, without a remote, the branch is there): every
    pending change whose commit ``tip``'s history holds is marked pushed, whichever push carried
    it (a client save's, a sync's, another change's) and whoever committed it. ``pushed``: the
    remote's answer, recorded for the status page (None: no push was tried).
    """
    carried = []
    if delivered and tip:
        pending = changes_pending().exclude(commit="").select_related("cluster__client")
        carried = [change for change in pending if _is_ancestor(repository, change.commit, tip)]
        ClusterChange.objects.filter(pk__in=[change.pk for change in carried]).update(pushed=True)
    if pushed is not None:
        remote_state_record(pushed=pushed, tip=tip)
    return [change.cluster for change in carried]


def _after_commit(deliver: Callable[[], DeliveryReport]) -> DeliveryReport | None:
    """``deliver()`` once the data is committed: now, or when the open transaction commits.

    Run now (no transaction open), its result is returned and its errors propagate, so the
    request can answer with the outcome. Deferred (the admin wraps its views in a transaction),
    None is returned and a failure is only logged: git never carries a change the database
    rolled back, and the change stays pending for the next delivery or ``gitops_sync``.
    """
    ran: list[DeliveryReport] = []
    registering = True

    def callback() -> None:
        if registering:
            ran.append(deliver())
            return
        try:
            report = deliver()
        except (GitopsError, FieldDecryptionError):
            logger.exception("GitOps delivery failed; the changes stay pending for gitops_sync")
            return
        for problem in report.conflicts.values():  # nobody waits for the answer: the log says it
            logger.warning("A change stays pending until git is fixed: %s", problem)

    transaction.on_commit(callback)
    registering = False
    return ran[0] if ran else None


def deliver_after_commit(*, awaited: int) -> DeliveryReport | None:
    """Deliver pending cluster changes, ``awaited`` among them, once the open transaction (if any) commits."""
    return _after_commit(partial(pending_changes_deliver, awaited=awaited))


def client_file_deliver_after_commit(*, client: Client, actor: User | None, summary: str) -> None:
    """Commit the client's ``client.yaml`` once its row is committed (failures logged, left for sync).

    Only that file: cluster changes made in the same transaction are delivered by their own
    callbacks, after it, so a client created with its clusters (``seed_demo``, a script) has its
    folder in git before its clusters.
    """
    pending = client_file_pending(client=client, actor=actor, summary=summary)
    try:
        _after_commit(partial(_client_file_deliver, pending))
    except (GitopsError, FieldDecryptionError):
        logger.exception("GitOps delivery failed; %s is left for gitops_sync", summary)


def _client_file_deliver(pending: PendingCommit) -> DeliveryReport:
    remote_failure_forget()
    push = gitops_remote() is None or not remote_resting()
    under = locked if push else branch_locked  # as a resting cluster change: no wait on a retry
    return under(lambda repo: _deliver(repo, [pending], with_changes=False, push=push, resting=not push))
