"""Cluster changes that git holds and the database does not: the database is older than git.

Every commit of a cluster change ends with the trailer ``Portal-Change-Id: <pk>``
(``clusters.repository.commit_message``). After the database is restored from an older
backup, the commits of the changes made since the backup are still in git, and the rows are
gone; the ids restart where the backup left them, so a row of the same id may be a new change
(its summary line tells them apart). A sync would then write the backup's values over git:
a Qdrant downgrade, replicas nobody confirmed, API keys from before a finished rotation.

Commits of a database made again over an existing repository (``seed_demo`` over ``var/``)
are not lost changes: every unknown commit lies below the first commit that database
recorded. So a commit is lost only when it is newer than the oldest commit, in the window
looked at, that the database records as a change's (``ClusterChange.commit``): the database
was there when it was made. A change made through the API after the restore records its
commit above the lost ones, which changes nothing: the backup's own commits lie below them.
A history rewritten by a rebase keeps the messages: its commits are known by their trailers.

Once an operator has decided (``gitops_sync --database-wins``), the tip looked at is recorded
(:func:`lost_changes_accept`), and only commits above it count from then on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from clusters.delivery import change_summary
from clusters.models import ClusterChange, GitopsRemoteState
from gitops.repository import CommitInfo, GitopsRepository, commits_list

HISTORY_WINDOW = 1000  # first-parent commits looked at, newest first: a few milliseconds each hundred
_CHANGE_ID = re.compile(r"^Portal-Change-Id: ([0-9]{1,18})$", re.MULTILINE)


@dataclass(frozen=True)
class LostChange:
    """A commit of a cluster change that the database does not hold."""

    commit: str
    summary: str

    def __str__(self) -> str:
        return f"{self.commit[:12]} {self.summary}"


def _change_carried(info: CommitInfo) -> tuple[int, str] | None:
    """The id in the commit's trailers (its last paragraph) and its summary; None: no change's commit."""
    summary, _, trailers = info.message.rstrip("\n").rpartition("\n\n")
    found = _CHANGE_ID.findall(trailers) if summary else []
    return (int(found[-1]), summary.strip()) if found else None


def lost_changes_find(*, repository: GitopsRepository, tip: str | None) -> tuple[LostChange, ...]:
    """The cluster changes in the last ``HISTORY_WINDOW`` first-parent commits of ``tip`` that the
    database does not hold (no row of that id, or one whose summary differs), newest first."""
    history = commits_list(repository=repository, commit=tip, limit=HISTORY_WINDOW) if tip else []
    state = GitopsRemoteState.objects.filter(pk=GitopsRemoteState.SINGLETON_ID).first()
    commits = [info.id for info in history]
    if state is not None and state.changes_accepted_commit in commits:  # decided on, up to there
        history = history[: commits.index(state.changes_accepted_commit)]
    carried = {info.id: found for info in history if (found := _change_carried(info)) is not None}
    rows = ClusterChange.objects.filter(pk__in={pk for pk, _ in carried.values()})
    held = {row.pk: change_summary(row).strip() for row in rows.select_related("cluster__client")}
    unknown = {commit for commit, (pk, summary) in carried.items() if held.get(pk) != summary}
    if not unknown:
        return ()
    commits = [info.id for info in history]
    recorded = set(ClusterChange.objects.filter(commit__in=commits).values_list("commit", flat=True))
    since = [index for index, commit in enumerate(commits) if commit in recorded]
    if since:
        history = history[: since[-1]]  # below its oldest recorded commit, the database was not there
    elif not ClusterChange.objects.exclude(commit="").exists():
        return ()  # a new database that delivered nothing yet: none of git's changes were its own
    return tuple(
        LostChange(commit=info.id, summary=carried[info.id][1]) for info in history if info.id in unknown
    )


def lost_changes_accept(*, tip: str) -> None:
    """The changes in ``tip``'s history that the database lacks are decided on: the database's
    state was written over them (``gitops_sync --database-wins``)."""
    GitopsRemoteState.objects.update_or_create(
        pk=GitopsRemoteState.SINGLETON_ID, defaults={"changes_accepted_commit": tip}
    )
