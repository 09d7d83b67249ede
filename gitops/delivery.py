"""Group commit: each pending change becomes its own commit, and one push carries them all.

A push to a git server costs tens to hundreds of milliseconds (a round trip, the server's
hooks); a local commit costs about one. Requests that arrive while a push is in flight wait
for the branch lock; the next holder then commits every change still pending, one commit
each with its own author and message, and pushes once. So fifty concurrent changes cost two
pushes rather than fifty, and the history still says who asked for what.

A round builds on where the remote was last seen and pushes at once: a fetch first would cost
a round trip every time to learn what is nearly always known. When the push is refused because
the remote is ahead of the local branch, or has diverged from it (another portal replica or a
person pushed), the branch is fetched and the changes are rendered again on the remote's tip: a render function gets the tree its change is built on and returns the
files to write, so it can be called once per attempt. Local commits that already carry a
change (``PendingCommit.committed``) are kept when the branch being built on contains them,
and replaced by new commits on the remote's tip otherwise. A remote that cannot be reached
leaves the commits local (``pushed`` False) for a later delivery to push.

Pipelined, the two halves run under two locks (``gitops.locks``): :func:`commits_make` under
the branch lock, then :func:`branch_deliver` under the push lock, so that the next group's
commits are made while this group's push is in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from gitops.errors import BranchMoved, ContentError, RepositoryUnavailable
from gitops.remote import (
    RemoteConfig,
    RemoteState,
    branch_push,
    commit_is_ancestor,
    remote_fetch,
    remote_push,
    remote_tracking_tip,
)
from gitops.repository import (
    GitIdentity,
    GitopsRepository,
    branch_tip,
    branch_update,
    commit_create,
    repository_handle,
)
from gitops.trees import TreeReader

# Callers hold the branch lock, so the branch moves under a delivery only when something
# outside the portal writes it: a few rebuilds, then give up.
_LOCAL_ATTEMPTS = 5

Render = Callable[[TreeReader], Mapping[str, bytes | None]]


@dataclass(frozen=True)
class PendingCommit:
    """One change waiting to reach git: ``render`` returns its files (None deletes) for a tree."""

    key: Hashable  # the caller's id for it (an outbox row id)
    render: Render
    author: GitIdentity
    message: str
    # Its commit, when an earlier delivery committed it locally but did not push it.
    committed: str | None = None


@dataclass(frozen=True)
class CommitOutcome:
    """What became of one pending change: ``commit`` None means nothing to change, or ``error``."""

    key: Hashable
    commit: str | None
    error: ContentError | None = None  # its render failed: it was skipped, the others went on


@dataclass(frozen=True)
class GroupDelivery:
    """``pushed``: the branch tip, every outcome included, is on the remote (True without a remote)."""

    outcomes: tuple[CommitOutcome, ...]
    pushed: bool
    tip: str | None
    committed_at: datetime | None  # when this delivery's new commits were made (None: it made none)
    commits_made: int = 0  # new commits (commits kept from an earlier delivery are not counted)


@dataclass(frozen=True)
class _Built:
    outcomes: tuple[CommitOutcome, ...]
    tip: str | None
    committed_at: datetime | None
    commits_made: int = 0


def _contains(repository: GitopsRepository, tip: str | None, commit: str | None) -> bool:
    """Whether the history of ``tip`` holds ``commit`` (never when either is missing)."""
    if tip is None or commit is None:
        return False
    return commit_is_ancestor(repository=repository, ancestor=commit, descendant=tip)


def base_choose(repository: GitopsRepository, local_tip: str | None, state: RemoteState | None) -> str | None:
    """The commit to build on: the local tip unless the remote is ahead of it or has diverged."""
    if state is None or not state.reachable or state.tip is None:
        return local_tip
    if _contains(repository, local_tip, state.tip):
        return local_tip  # the same, or local commits not pushed yet: they go out with this push
    return state.tip


def _commits_build(
    repository: GitopsRepository, pending: Sequence[PendingCommit], committer: GitIdentity, base: str | None
) -> _Built:
    """One commit per pending change, in order, each on the one before; moves no branch."""
    when = datetime.now(tz=UTC).replace(microsecond=0)  # what git records: whole seconds
    tip, made, outcomes = base, 0, []
    for item in pending:
        if _contains(repository, base, item.committed):
            outcomes.append(CommitOutcome(key=item.key, commit=item.committed))
            continue
        try:
            changes = item.render(TreeReader(repository_handle(repository), tip))
        except ContentError as error:
            outcomes.append(CommitOutcome(key=item.key, commit=None, error=error))
            continue
        commit = commit_create(
            repository=repository,
            base=tip,
            changes=changes,
            author=item.author,
            committer=committer,
            message=item.message,
            when=when,
        )
        if commit is not None:
            tip, made = commit, made + 1
        outcomes.append(CommitOutcome(key=item.key, commit=commit))
    return _Built(outcomes=tuple(outcomes), tip=tip, committed_at=when if made else None, commits_made=made)


def _group_commit(
    repository: GitopsRepository,
    pending: Sequence[PendingCommit],
    committer: GitIdentity,
    state: RemoteState | None,
) -> _Built:
    """Commit every pending change on the right base and move the local branch to the last one."""
    for _ in range(_LOCAL_ATTEMPTS):
        local_tip = branch_tip(repository=repository)
        built = _commits_build(repository, pending, committer, base_choose(repository, local_tip, state))
        if built.tip is None or built.tip == local_tip:
            return built
        try:
            branch_update(repository=repository, expected_tip=local_tip, new_tip=built.tip)
        except BranchMoved:
            continue
        return built
    raise RepositoryUnavailable("The gitops branch kept moving: the changes were not committed.")


def _on_remote(repository: GitopsRepository, tip: str | None, state: RemoteState) -> bool:
    return state.reachable and (tip is None or _contains(repository, state.tip, tip))


def _remote_moved(repository: GitopsRepository, tip: str | None, state: RemoteState) -> bool:
    """Whether the remote holds commits ``tip`` lacks: rebuilding on it can then succeed."""
    return state.reachable and state.tip is not None and not _contains(repository, tip, state.tip)


def _delivery(built: _Built, *, pushed: bool) -> GroupDelivery:
    return GroupDelivery(
        outcomes=built.outcomes,
        pushed=pushed,
        tip=built.tip,
        committed_at=built.committed_at,
        commits_made=built.commits_made,
    )


def _remote_last_seen(
    repository: GitopsRepository, remote: RemoteConfig, *, fetch: bool = True
) -> RemoteState | None:
    """Where the remote's branch was at the last fetch or push, else a fetch now (``fetch``)
    or None (never seen: build on the local branch).

    Building on it and pushing straight away saves a round trip per delivery; when the remote
    moved meanwhile the push is refused, and the loop below fetches and builds again.
    """
    tip = remote_tracking_tip(repository=repository)
    if tip is None:
        return remote_fetch(repository=repository, remote=remote) if fetch else None
    return RemoteState(reachable=True, tip=tip)


def commits_deliver(
    *,
    repository: GitopsRepository,
    pending: Sequence[PendingCommit],
    committer: GitIdentity,
    remote: RemoteConfig | None,
    push_retries: int = 5,
) -> GroupDelivery:
    """Commit every pending change, in order, one commit each, then push them all at once.

    Render functions may be called several times: once per attempt, each time on a newer
    tip. A push refused because the remote moved is retried on the fetched tip, at most
    ``push_retries`` times; after that, or when the remote cannot be reached, the commits
    stay local and ``pushed`` is False. A render raising :class:`ContentError` skips that
    change only; any other exception from a render propagates before the branch moves, so
    nothing is committed. Raises :class:`RepositoryUnavailable` only when not even a local
    commit can be made. Callers hold the push lock and the branch lock (``gitops.locks``).
    """
    state = None if remote is None else _remote_last_seen(repository, remote)
    attempt, looked_again = 0, False
    while True:
        attempt += 1
        built = _group_commit(repository, pending, committer, state)
        if remote is None or state is None:
            return _delivery(built, pushed=True)
        if not looked_again and any(outcome.error is not None for outcome in built.outcomes):
            # A file git cannot take may be fixed on the remote already (a person edits git
            # there, and nothing else made this clone fetch): look once, build again if it moved.
            looked_again, state = True, remote_fetch(repository=repository, remote=remote)
            if _remote_moved(repository, built.tip, state):
                continue
        if not state.reachable:
            return _delivery(built, pushed=False)
        if _on_remote(repository, built.tip, state) or remote_push(repository=repository, remote=remote):
            return _delivery(built, pushed=True)
        state = remote_fetch(repository=repository, remote=remote)
        if _on_remote(repository, built.tip, state):
            return _delivery(built, pushed=True)  # refused, yet the remote has it all (a lost answer)
        if attempt > push_retries or not _remote_moved(repository, built.tip, state):
            return _delivery(built, pushed=False)


def commits_make(
    *,
    repository: GitopsRepository,
    pending: Sequence[PendingCommit],
    committer: GitIdentity,
    remote: RemoteConfig | None,
    fetch: bool = True,
) -> GroupDelivery:
    """Commit every pending change as :func:`commits_deliver` does, and push nothing (``pushed`` False).

    Builds on the local branch, or on the remote's tip as last seen when that is not in it.
    A clone that has never seen the remote fetches it first, unless not ``fetch`` (the remote is
    known to be failing: a fetch would only wait out its timeout under the branch lock; a push
    that finds the remote moved renders the changes again on its tip). Callers hold the branch lock.
    """
    state = None if remote is None else _remote_last_seen(repository, remote, fetch=fetch)
    return _delivery(_group_commit(repository, pending, committer, state), pushed=False)


def branch_deliver(*, repository: GitopsRepository, remote: RemoteConfig) -> tuple[bool, str | None, bool]:
    """Push the local branch unless the remote, as last seen, has it.

    Returns whether the remote has it, the tip that is about, and, when it does not, whether
    it moved meanwhile (a fetch tells): then the changes are to be rendered again on its tip,
    which :func:`commits_deliver` does under both locks. Callers hold the push lock.
    """
    tip = branch_tip(repository=repository)
    if tip is None or _contains(repository, remote_tracking_tip(repository=repository), tip):
        return True, tip, False
    pushed, tip = branch_push(repository=repository, remote=remote)
    if pushed:
        return True, tip, False
    state = remote_fetch(repository=repository, remote=remote)
    if _on_remote(repository, tip, state):
        return True, tip, False  # refused, yet the remote has it all (a lost answer)
    return False, tip, _remote_moved(repository, tip, state)
