"""The portal's GitOps repository: where it is, who commits to it and with what message, and
the locks every thread and replica takes before it commits (``gitops.locks``).

``clusters.delivery`` commits and pushes through these; so does a service that must not race a
delivery (:func:`while_no_delivery_runs`).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from email.utils import parseaddr
from pathlib import Path
from typing import TypeVar

from django.conf import settings

from gitops.argocd import (
    APPLICATIONSET_PATH,
    APPPROJECT_PATH,
    ARGOCD_NAMESPACE,
    README_PATH,
    applicationset_render,
    appproject_render,
    repository_readme_render,
)
from gitops.errors import RepositoryUnavailable
from gitops.locks import branch_lock, push_lock
from gitops.repository import GitIdentity, GitopsRepository, repository_open

T = TypeVar("T")


# --- Where, and as whom: the one builder of each identity and message ------------------------


def committer_identity() -> GitIdentity:
    """The committer of every commit (``GITOPS_COMMITTER``); the author of commits nobody asked for."""
    name, email = parseaddr(settings.GITOPS_COMMITTER)
    return GitIdentity(name=name or "Qdrant Portal", email=email or "portal@qdrant-portal.local")


def author_identity(*, email: str, name: str) -> GitIdentity:
    """The person who asked for a change, or the portal when nobody did (``seed_demo``)."""
    if not email:
        return committer_identity()
    return GitIdentity(name=name, email=email)  # an empty name becomes the email


def commit_message(*, summary: str, email: str = "", name: str = "", change_id: int | None = None) -> str:
    """``client1/main: replicas 2 -> 3`` and trailers saying who asked and which change it is."""
    trailers = []
    if email:
        author = author_identity(email=email, name=name)  # a name's newline cannot forge a trailer
        trailers.append(f"Requested-by: {author.name} <{author.email}>")
    if change_id is not None:
        trailers.append(f"Portal-Change-Id: {change_id}")
    return f"{summary}\n\n" + "\n".join(trailers) + "\n" if trailers else f"{summary}\n"


def bootstrap_files() -> dict[str, bytes]:
    """The ApplicationSet, its AppProject and README, rendered only for a repository without the branch."""
    namespace = settings.ARGOCD_APP_NAMESPACE or ARGOCD_NAMESPACE
    repo_url = settings.GITOPS_REMOTE_URL or f"file://{settings.GITOPS_REPO_PATH}"
    return {
        APPLICATIONSET_PATH: applicationset_render(
            repo_url=repo_url,
            branch=settings.GITOPS_BRANCH,
            chart_version=settings.QDRANT_CHART_VERSION,
            project=settings.ARGOCD_PROJECT,
            namespace=namespace,
        ),
        APPPROJECT_PATH: appproject_render(
            repo_url=repo_url, project=settings.ARGOCD_PROJECT, namespace=namespace
        ),
        README_PATH: repository_readme_render(),
    }


def repository_get() -> GitopsRepository:
    """The local repository, created and bootstrapped on first use."""
    return repository_open(
        path=Path(settings.GITOPS_REPO_PATH),
        branch=settings.GITOPS_BRANCH,
        bootstrap_files=bootstrap_files,
        committer=committer_identity(),
    )


def locked(work: Callable[[GitopsRepository], T]) -> T:
    """``work`` with both locks: nothing else commits or pushes meanwhile."""
    with push_lock(repo_path=Path(settings.GITOPS_REPO_PATH)):
        return branch_locked(work)


def branch_locked(work: Callable[[GitopsRepository], T]) -> T:
    with branch_lock(repo_path=Path(settings.GITOPS_REPO_PATH)):
        return work(repository_get())


def while_no_delivery_runs(work: Callable[[], T]) -> T:
    """``work`` under the branch lock: no replica can commit the pending changes meanwhile."""
    with ExitStack() as stack:
        try:
            stack.enter_context(branch_lock(repo_path=Path(settings.GITOPS_REPO_PATH)))
        except RepositoryUnavailable:
            pass  # the lock's own file cannot be made (one host, SQLite): no delivery can run either
        return work()
