"""A new client or cluster never takes over, unasked, a folder git already holds.

Argo CD deploys every cluster folder under ``clients/``, whoever wrote it: one the portal does
not know (``gitops_sync`` reports them) may be a running cluster, restored from a backup,
written by hand or left by a database restored from an older backup. A new cluster of that
name would replace its values and its API keys (its users locked out), and would be given its
volumes, with their data; a new client of that name would share its namespace. So creating one
is refused unless the operator asks to take the folder over.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError

from clusters.remote import gitops_remote
from gitops.errors import RepositoryUnavailable
from gitops.locks import push_lock
from gitops.remote import remote_fetch, remote_tracking_tip
from gitops.repository import GitopsRepository, branch_tip, repository_open, tree_reader

logger = logging.getLogger(__name__)

TAKE_OVER_LABEL = "Take over its folder in git"


def folder_has_files(*, folder: str) -> bool:
    """Whether git holds any file under ``folder``: on the remote's branch, fetched now, when
    there is a remote (what Argo CD deploys; this replica's clone may be behind it, or not made
    yet), else on this clone's branch. A remote that cannot be reached is judged by what this
    clone saw of it last (creations go on while it is down, their commits waiting here), and
    :class:`RepositoryUnavailable` when this clone has seen nothing of it yet."""
    path = Path(settings.GITOPS_REPO_PATH)
    remote = gitops_remote()
    if remote is None:
        if not (path / "HEAD").exists():
            return False  # no repository yet (the first delivery makes it): nothing in it
        repository = GitopsRepository(path=path, branch=settings.GITOPS_BRANCH)
        return bool(tree_reader(repository=repository).list(folder))
    # Made without the branch if missing (as a delivery would, before it fetches).
    repository = repository_open(path=path, branch=settings.GITOPS_BRANCH, bootstrap_files={})
    with push_lock(repo_path=path):
        state = remote_fetch(repository=repository, remote=remote)
    tip = state.tip
    if not state.reachable:
        tip = remote_tracking_tip(repository=repository) or branch_tip(repository=repository)
        if tip is None:
            raise RepositoryUnavailable(
                "The GitOps remote cannot be reached, and this replica has not read it yet."
            )
    return tip is not None and bool(tree_reader(repository=repository, commit=tip).list(folder))


def git_folder_claim(*, folder: str, owner: str, take_over: bool) -> bool:
    """Whether the new ``owner`` ("cluster", "client") takes over ``folder``, which git holds
    (only with ``take_over``; without it, :class:`ValidationError`). False: the folder is free.

    Fails closed for a cluster: a repository that cannot be read refuses its creation too. Not
    for a client: a client folder taken by mistake shares a namespace's name, which the cluster
    folders in it do not make worse (each still needs its own take-over), and a client is
    created while the remote is down, its file committed once it is back.
    """
    try:
        held = folder_has_files(folder=folder)
    except RepositoryUnavailable as error:
        if owner == "client":
            logger.warning("Client created without knowing whether git holds %s/: %s", folder, error)
            return False
        logger.warning("Creating a %s refused: the GitOps repository cannot be read: %s", owner, error)
        raise ValidationError(
            f"The GitOps repository cannot be read now (see the log), so whether git already holds "
            f"{folder}/ is unknown: nothing was created, try again.",
            code="gitops_unavailable",
        ) from error
    if held and not take_over:
        raise ValidationError(
            f"{folder}/ is in git already and no {owner} of the portal owns it: it may be one that "
            f"Argo CD runs. Choose another name, remove the folder from git, or tick “{TAKE_OVER_LABEL}” "
            f"(the new {owner}'s files replace what is there).",
            code="git_folder_held",
        )
    return held
