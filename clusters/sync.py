"""``gitops_sync``: make the GitOps repository equal to the database, or say where it is not.

A delivery (``clusters.delivery``) writes what changed; a sync renders every client and cluster
in full on the branch's tip, so git converges on the database whatever happened to it: hand
edits of the files the portal owns, a commit lost with a replica, a client file left local.

A folder under ``clients/`` that no row owns (added by hand, or left after the database was
restored from an older backup) is reported and never deleted: Argo CD deploys every cluster
folder, so it may hold a running cluster's only description, and only a person can tell.

When git holds cluster changes the database does not (``clusters.lost_changes``: it was
restored from an older backup), a sync writes nothing: the database's state would undo them
(downgrade Qdrant, put back replicas and API keys). It says so until an operator reconciles
the two, or runs it with ``database_wins``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from django.conf import settings

from clusters.delivery import outbox_deliver
from clusters.lost_changes import LostChange, lost_changes_accept, lost_changes_find
from clusters.models import Client, Cluster, ClusterChange
from clusters.remote import gitops_remote, remote_failure_forget, remote_resting
from clusters.rendering import (
    client_files_render,
    cluster_files_render,
    cluster_removal_render,
    cluster_stop_render,
)
from clusters.repository import bootstrap_files, commit_message, committer_identity, locked, repository_get
from clusters.selectors import changes_pending
from clusters.services import key_rotations_finish_due
from config.crypto import FieldDecryptionError
from gitops.delivery import PendingCommit, base_choose
from gitops.errors import ContentError, RepositoryUnavailable
from gitops.locks import push_lock
from gitops.remote import RemoteState, remote_fetch, remote_tracking_tip
from gitops.repository import GitopsRepository, branch_tip, repository_compact, repository_handle, tree_reader
from gitops.trees import TreeReader
from gitops.values import SEALED_SECRET_FILE_NAME, VALUES_FILE_NAME, values_owned_changes

UNKNOWN_FOLDERS = "{} folder(s) in git that the database does not know"
_LOST_NAMED = 3  # in a sentence; gitops_sync prints every one
_LOCAL_ONLY = "Delivered {} pending change(s) (no GITOPS_REMOTE_URL: local only)."


@dataclass(frozen=True)
class UnknownFolder:
    """A folder in git that no row owns: a client's (``cluster`` None) or a cluster's, which the
    ApplicationSet's generator (every folder ``clients/*/*``) makes an Application of."""

    client: str
    cluster: str | None = None

    @property
    def path(self) -> str:
        return f"clients/{self.client}/" if self.cluster is None else f"clients/{self.client}/{self.cluster}/"

    def __str__(self) -> str:
        if self.cluster is None:
            return f"{self.path} (no client {self.client} in the database)"
        return f"{self.path} (no cluster {self.client}/{self.cluster} in the database; Argo CD deploys it)"


@dataclass(frozen=True)
class SyncReport:
    """What ``gitops_sync`` found (``check``) or did; ``conflicts`` could not be rendered."""

    drifted_paths: tuple[str, ...]
    commit: str | None
    pushed: bool
    conflicts: tuple[str, ...] = ()
    packed_objects: int = 0
    changes_committed: int = 0  # pending cluster changes committed by this sync
    changes_pushed: int = 0  # pending cluster changes this sync got onto the remote
    remote_reachable: bool = True  # False: the fetch before it failed, so edits there went unseen
    remote_started: bool = False  # the remote had no branch, and this sync pushed it there
    remote_empty: bool = False  # check: the remote has no branch yet, so it lacks every file
    unknown_folders: tuple[UnknownFolder, ...] = ()  # left as they are, by a sync too
    lost_changes: tuple[LostChange, ...] = ()  # changes in git the database lacks: nothing written
    database_wins: bool = False  # ... unless asked to write the database's state over them
    drift_described: Mapping[str, str] = field(default_factory=dict)  # path: what changes in it
    bootstrap_differs: tuple[str, ...] = ()  # Argo CD manifests or README unlike this portal's
    remote_moved_to: str | None = None  # the sync pushed the branch: the remote's new tip
    rotations_finished: tuple[str, ...] = ()  # clusters whose key rotation's grace period was over

    @property
    def held(self) -> bool:
        """Whether the sync wrote nothing, as git holds changes the database lacks."""
        return bool(self.lost_changes) and not self.database_wins


def _everything_render(
    reader: TreeReader, conflicts: dict[int, str], bootstrap: bool = False
) -> dict[str, bytes | None]:
    """Every client's ``client.yaml`` and every cluster's files, where git differs from the database
    (a decommissioned cluster stopped; a removed one's folder gone).

    ``bootstrap``: the Argo CD manifests and README too, as this version of the portal writes them
    (they are otherwise written only into a new repository, and may carry hand edits).
    """
    conflicts.clear()
    files: dict[str, bytes | None] = {}
    if bootstrap:
        files.update({path: data for path, data in bootstrap_files().items() if reader.read(path) != data})
    for client in Client.objects.order_by("slug"):
        files.update(client_files_render(client=client, reader=reader))
    for cluster in Cluster.objects.select_related("client").order_by("client__slug", "slug"):
        if cluster.removed:
            files.update(cluster_removal_render(cluster=cluster, reader=reader))
            continue
        render = cluster_stop_render if cluster.decommissioned else cluster_files_render
        try:
            files.update(render(cluster=cluster, reader=reader))
        except (ContentError, FieldDecryptionError) as error:  # that cluster waits; the others go on
            conflicts[cluster.pk] = str(error)
    return files


def _unknown_folders(reader: TreeReader) -> tuple[UnknownFolder, ...]:
    """The folders under ``clients/`` of ``reader``'s tree that no client or cluster row owns
    (a removed cluster's row owns its folder: it is drift, which the render removes)."""
    clients: set[str] = set()
    clusters: set[tuple[str, str]] = set()
    for path in reader.list("clients"):  # git keeps no empty folder: each one holds a file
        parts = path.split("/")
        clients.update(parts[1:2] if len(parts) > 2 else ())
        clusters.update([(parts[1], parts[2])] if len(parts) > 3 else ())
    known_clients = set(Client.objects.filter(slug__in=clients).values_list("slug", flat=True))
    known_clusters = set(Cluster.objects.filter(client__slug__in=clients).values_list("client__slug", "slug"))
    found = [UnknownFolder(client=slug) for slug in clients - known_clients]
    found += [UnknownFolder(client=client, cluster=slug) for client, slug in clusters - known_clusters]
    return tuple(sorted(found, key=lambda folder: (folder.client, folder.cluster or "")))


def _bootstrap_differs(reader: TreeReader) -> tuple[str, ...]:
    """The Argo CD manifests and README in ``reader``'s tree that differ from what this portal
    writes (settings changed since, as GITOPS_REMOTE_URL; an upgrade; a hand edit). Only
    ``bootstrap`` rewrites them: a hand edit may be meant."""
    return tuple(
        path if reader.read(path) is not None else f"{path} (not in git)"
        for path, data in sorted(bootstrap_files().items())
        if reader.read(path) != data
    )


def _drift_describe(files: Mapping[str, bytes | None], reader: TreeReader) -> dict[str, str]:
    """What writing ``files`` over ``reader``'s tree changes, by path ("": nothing to add): the
    portal's values in a values file (``image.tag v1.19.0 -> v1.18.3``), so that an operator sees
    a downgrade before it happens."""
    described = dict.fromkeys(files, "")
    for path, data in files.items():
        before, name = reader.read(path), path.rpartition("/")[2]
        if data is None or before is None:
            described[path] = "removed" if data is None else "new"
        elif name == VALUES_FILE_NAME:
            changes = values_owned_changes(before=before, after=data)
            described[path] = ", ".join(changes) or "the portal's values are the same, laid out anew"
        elif name == SEALED_SECRET_FILE_NAME:
            described[path] = "sealed again with the database's API keys, which differ from git's"
    return described


def _drift_found(reader: TreeReader, bootstrap: bool) -> SyncReport:
    """What a sync would write over ``reader``'s tree, written nowhere."""
    conflicts: dict[int, str] = {}
    files = _everything_render(reader, conflicts, bootstrap)
    return SyncReport(
        drifted_paths=tuple(sorted(files)),
        commit=None,
        pushed=False,
        conflicts=tuple(conflicts.values()),
        unknown_folders=_unknown_folders(reader),
        drift_described=_drift_describe(files, reader),
        bootstrap_differs=() if bootstrap else _bootstrap_differs(reader),
    )


def _history_tip(repository: GitopsRepository) -> str | None:
    """The commit a sync builds on: the remote's tip as last seen, or this clone's branch when
    it holds that one (commits not pushed yet)."""
    local = branch_tip(repository=repository)
    if gitops_remote() is None:
        return local
    return base_choose(
        repository, local, RemoteState(reachable=True, tip=remote_tracking_tip(repository=repository))
    )


def _drift_check(repository: GitopsRepository, bootstrap: bool = False) -> SyncReport:
    """The paths where git (the remote's tip, when there is a remote: what Argo CD reads) differs
    from the database."""
    tip, remote, remote_empty = branch_tip(repository=repository), gitops_remote(), False
    if remote is not None:
        state = remote_fetch(repository=repository, remote=remote)
        if not state.reachable:
            raise RepositoryUnavailable("The gitops remote cannot be reached.")
        tip, remote_empty = state.tip, state.tip is None
    # A remote without the branch lacks every file, the Argo CD manifests and README included.
    reader = (
        TreeReader(repository_handle(repository), None)
        if remote_empty
        else tree_reader(repository=repository, commit=tip)
    )
    lost = lost_changes_find(repository=repository, tip=_history_tip(repository))
    return replace(
        _drift_found(reader, bootstrap or remote_empty), remote_empty=remote_empty, lost_changes=lost
    )


def _held(
    repository: GitopsRepository,
    tip: str | None,
    lost: tuple[LostChange, ...],
    *,
    bootstrap: bool,
    compact: bool,
) -> SyncReport:
    """A sync that writes nothing, as git holds changes the database lacks: what it would write."""
    held = _drift_found(tree_reader(repository=repository, commit=tip), bootstrap)
    packed = repository_compact(repository=repository) if compact else 0  # housekeeping all the same
    return replace(held, pushed=True, lost_changes=lost, packed_objects=packed)


def _full_sync(
    repository: GitopsRepository,
    bootstrap: bool = False,
    compact: bool = True,
    database_wins: bool = False,
    rotations_finish: bool = False,
) -> SyncReport:
    """Finish the due key rotations (``rotations_finish``); then every pending change as its own
    commit, then one commit for any other drift; then compact.

    Nothing at all while git holds changes the database lacks (unless ``database_wins``): a
    change renders its cluster's whole state too, keys included, from the same rows.
    """
    tip = _history_tip(repository)
    lost = lost_changes_find(repository=repository, tip=tip)
    if lost and not database_wins:
        return _held(repository, tip, lost, bootstrap=bootstrap, compact=compact)
    finished = tuple(str(cluster) for cluster in key_rotations_finish_due()) if rotations_finish else ()
    conflicts: dict[int, str] = {}
    drifted: dict[str, str] = {}
    unknown: list[UnknownFolder] = []
    differs: list[str] = []

    def render(reader: TreeReader) -> dict[str, bytes | None]:
        files = _everything_render(reader, conflicts, bootstrap)
        drifted.clear()
        drifted.update(_drift_describe(files, reader))
        unknown[:], differs[:] = _unknown_folders(reader), () if bootstrap else _bootstrap_differs(reader)
        return files

    sync = PendingCommit(
        key="sync",
        render=render,
        author=committer_identity(),
        message=commit_message(summary="Sync clients and clusters from the portal database"),
    )
    waiting = {pk: not commit for pk, commit in changes_pending().values_list("pk", "commit")}  # uncommitted?
    remote, seen = gitops_remote(), remote_tracking_tip(repository=repository)
    report = outbox_deliver(repository=repository, extra=[sync])
    if lost and tip is not None:  # database_wins: the operator decided on them
        lost_changes_accept(tip=tip)
    commit, done = report.commits.get("sync"), ClusterChange.objects.filter(pk__in=waiting)
    now = remote_tracking_tip(repository=repository)
    return SyncReport(
        drifted_paths=tuple(sorted(drifted)) if commit else (),
        commit=commit,
        pushed=report.pushed,
        conflicts=tuple({**conflicts, **report.conflicts}.values()),
        packed_objects=repository_compact(repository=repository) if compact else 0,
        changes_committed=sum(waiting[pk] for pk in done.exclude(commit="").values_list("pk", flat=True)),
        changes_pushed=done.filter(pushed=True).count(),
        unknown_folders=tuple(unknown),
        lost_changes=lost,
        database_wins=database_wins,
        drift_described=drifted if commit else {},
        bootstrap_differs=tuple(differs),
        remote_moved_to=now if remote is not None and report.pushed and now != seen else None,
        rotations_finished=finished,
    )


def repository_sync(
    *,
    check: bool = False,
    bootstrap: bool = False,
    compact: bool = True,
    database_wins: bool = False,
    rotations_finish: bool = False,
) -> SyncReport:
    """Make git equal to the database and compact the repository (``check``: only report the drift).

    ``bootstrap``: also rewrite the Argo CD manifests and README as this version renders them.
    Not ``compact``: in an operator's request (System status → Deliver now), which packing the
    repository, the CronJob's chore, would hold up under the branch lock for nothing.
    ``database_wins``: write the database's state over git even where git holds changes the
    database lacks (``clusters.lost_changes``), once an operator has reconciled the two.
    ``rotations_finish``: first finish the key rotations whose grace period is over (the
    CronJob's chore), unless git holds such changes.
    """
    remote_failure_forget()
    if check:
        return locked(partial(_drift_check, bootstrap=bootstrap))
    looked = _remote_look()
    sync = partial(
        _full_sync,
        bootstrap=bootstrap,
        compact=compact,
        database_wins=database_wins,
        rotations_finish=rotations_finish,
    )
    report = locked(sync)
    if looked is not None and not looked.reachable:
        return replace(report, remote_reachable=False)
    started = looked is not None and looked.tip is None and report.pushed and not report.held
    return replace(report, remote_started=started)


def _remote_look() -> RemoteState | None:
    """Fetch the remote before a sync renders, so that it sees what people edited there: a
    delivery builds on the tip it last saw and looks again only when a push is refused, and a
    sync may have nothing to push. Under the push lock only, as a background fetch, so that
    writes go on committing meanwhile; not while the remote rests after failures (None)."""
    remote = gitops_remote()
    if remote is None or remote_resting():
        return None
    with push_lock(repo_path=Path(settings.GITOPS_REPO_PATH)):
        return remote_fetch(repository=repository_get(), remote=remote)


def sync_done(report: SyncReport) -> list[str]:
    """What a sync did, one sentence each (none: git was equal to the database already)."""
    done = []
    if report.changes_committed:
        done.append(f"Committed {report.changes_committed} pending change(s), one commit each.")
    if report.changes_pushed:
        said = "Pushed {} pending change(s) to the remote." if settings.GITOPS_REMOTE_URL else _LOCAL_ONLY
        done.append(said.format(report.changes_pushed))
    if report.commit:
        done.append(f"Synced {len(report.drifted_paths)} drifted file(s) in {report.commit[:12]}.")
    if report.remote_started:
        done.append(
            "The GitOps remote had no branch: pushed it, with the Argo CD manifests to apply once "
            "from a clone (argocd/, see its README)."
        )
    elif report.remote_moved_to and not report.changes_pushed:  # e.g. to a remote that was rewound
        done.append(
            f"Pushed the branch to the GitOps remote, which lacked commits of it: now at {report.remote_moved_to[:12]}."
        )
    if report.lost_changes and report.database_wins:
        done.append(
            f"Wrote the database's state over the {len(report.lost_changes)} cluster change(s) in git that "
            "the database does not hold (--database-wins)."
        )
    return done


def lost_changes_problem(report: SyncReport) -> str:
    """The sentence for changes in git that the database lacks, and what to do ("": none)."""
    if not report.held:
        return ""
    named = "; ".join(str(lost) for lost in report.lost_changes[:_LOST_NAMED])
    more = len(report.lost_changes) - _LOST_NAMED
    return (
        f"Git holds {len(report.lost_changes)} cluster change(s) that the database does not (newest first: "
        f"{named}{f'; and {more} more' if more > 0 else ''}): the database is older than git, as after a "
        "restore from a backup, and writing its state would undo them (a Qdrant downgrade, replicas or API "
        "keys from before), so gitops_sync writes nothing. Re-apply those changes in the portal (gitops_sync "
        "--check shows what differs) or restore a newer backup; then, or to put the database's state in git "
        "as it is, run gitops_sync --database-wins (README: Restoring the database from a backup)."
    )


def sync_notes(report: SyncReport) -> list[str]:
    """What a sync found and leaves to an operator, without failing for it."""
    if not report.bootstrap_differs:
        return []
    return [
        f"{', '.join(report.bootstrap_differs)}: not what this portal writes (from GITOPS_REMOTE_URL, "
        "GITOPS_BRANCH, QDRANT_CHART_VERSION and the ARGOCD_ settings), as after one of those changed or a "
        "hand edit, so Argo CD may read another repository, branch or chart. If this portal's are meant, run "
        "gitops_sync --bootstrap (hand edits to them are lost) and apply the manifests again (README: "
        "Cluster operations)."
    ]


def sync_problems(report: SyncReport) -> list[str]:
    """What a sync left undone, one sentence each (``gitops_sync`` then exits with status 1)."""
    problems = []
    if not report.pushed:
        problems.append(
            "Committed locally, not pushed: the GitOps remote did not take the commits (see the log), "
            "so Argo CD cannot deploy them; the next change or gitops_sync pushes them."
        )
    if not report.remote_reachable and report.pushed:
        problems.append(
            "The GitOps remote could not be fetched (see the log): edits made there, if any, were not "
            "seen, so git may still differ from the database."
        )
    if report.held:
        problems.append(lost_changes_problem(report))
    if report.conflicts:
        rest = "Everything else is synced; " if report.pushed and not report.held else ""
        problems.append(
            f"{rest}{len(report.conflicts)} cluster(s) cannot be rendered until what each conflict line "
            "says is fixed (their files in git, or the key their API keys were encrypted with)."
        )
    if report.unknown_folders:
        problems.append(
            f"{UNKNOWN_FOLDERS.format(len(report.unknown_folders))} were left as they are: a sync never "
            "deletes what may be a running cluster (README, GitOps repository, says what to do)."
        )
    return problems
