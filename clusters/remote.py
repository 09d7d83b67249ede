"""The portal's git remote, from settings, and the fetch a deployment read asks for.

A web replica fetches only when its own push is refused, so a commit made elsewhere (by another
replica, the ``gitops_sync`` job or a person) is not in its clone, and a cluster Argo CD synced to
that commit could not be told deployed. A read that meets such a revision asks for a fetch: in the
background, under the push lock (a delivery's own fetch or push is never raced), at most once a
cache period per clone and process. The next read, a cache period later, judges the revision.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from clusters.models import GitopsRemoteState
from config.logging import text_redact
from config.outages import gitops_remote_outage
from gitops.errors import PushRejected
from gitops.locks import push_lock
from gitops.remote import RemoteConfig, remote_fetch
from gitops.repository import GitopsRepository

logger = logging.getLogger(__name__)

_fetch_lock = threading.Lock()
_failure_seen = threading.local()  # .reason: why the remote last failed this thread's delivery
_fetched_at: dict[str, float] = {}  # clone path -> when a fetch was last asked for (monotonic)

# Longer than a push to an unresponsive remote takes (libgit2's timeouts: about a minute over
# HTTP), so a retry still waiting is not started twice; short enough that one lost with its
# replica does not keep the remote untried for long.
RETRY_CLAIM_TTL = timedelta(minutes=2)


def gitops_remote() -> RemoteConfig | None:
    """The remote the portal pushes to (None: a local repository only)."""
    if not settings.GITOPS_REMOTE_URL:
        return None
    return RemoteConfig(
        url=settings.GITOPS_REMOTE_URL,
        token=settings.GITOPS_REMOTE_TOKEN or None,
        ssh_key_path=Path(settings.GITOPS_SSH_KEY_PATH) if settings.GITOPS_SSH_KEY_PATH else None,
        on_failure=_remote_failure_report,
    )


def _remote_failure_report(error: Exception) -> None:
    """Why the remote failed: in the log (a refusal each time; an outage once a minute while it
    lasts), and kept for this thread's delivery to record with its outcome (the status page's)."""
    if isinstance(error, PushRejected):
        logger.warning("The gitops remote refused the push: %s", error)
    else:
        gitops_remote_outage.report(error)
    said = text_redact(str(error).splitlines()[0]) if str(error) else ""  # a URL's credentials, as in logs
    _failure_seen.reason = f"{type(error).__name__}: {said}"


def remote_resting() -> bool:
    """Whether a write should skip the push: the remote failed and has taken nothing since.

    For GITOPS_REMOTE_RETRY_AFTER after a failure, each write commits locally and answers 202 at
    once, instead of every writer waiting out the remote's timeouts in turn behind the push
    lock. Then the first write claims the retry (one row update, atomic on every database);
    the writes that arrive while it waits on the remote keep skipping, unless the claim is older
    than RETRY_CLAIM_TTL (its replica died mid-push). ``gitops_sync`` always tries.
    """
    state, now = _failing_state(), timezone.now()
    if state is None:
        return False
    if _pausing(state, now):
        return True
    unclaimed = Q(retry_claimed_at__isnull=True) | Q(retry_claimed_at__lte=F("last_failure_at"))
    claimable = GitopsRemoteState.objects.filter(unclaimed | Q(retry_claimed_at__lt=now - RETRY_CLAIM_TTL))
    # Claimed only against the failure this request read: a push in between ended the outage.
    claimed = claimable.filter(pk=state.pk, last_failure_at=state.last_failure_at).update(
        retry_claimed_at=now
    )
    return claimed == 0


def remote_failed_recently() -> bool:
    """Whether the remote failed less than GITOPS_REMOTE_RETRY_AFTER ago and took nothing since."""
    state = _failing_state()
    return state is not None and _pausing(state, timezone.now())


def _pausing(state: GitopsRemoteState, now: datetime) -> bool:
    return now - state.last_failure_at < settings.GITOPS_REMOTE_RETRY_AFTER


def _failing_state() -> GitopsRemoteState | None:
    state = GitopsRemoteState.objects.filter(pk=GitopsRemoteState.SINGLETON_ID).first()
    if state is None or state.last_failure_at is None:
        return None
    if state.last_push_at is not None and state.last_push_at > state.last_failure_at:
        return None
    return state


def remote_failure_forget() -> None:
    """A delivery starts: a failure this thread met before (a fetch whose outcome was not
    recorded) is not why this one fails."""
    _failure_seen.reason = ""


def remote_state_record(*, pushed: bool, tip: str | None) -> None:
    """When the remote last took every commit, or last did not and why (the operators' status
    page): the failure this thread's delivery met, not one of a fetch elsewhere meanwhile."""
    now, reason = timezone.now(), getattr(_failure_seen, "reason", "")
    _failure_seen.reason = ""
    if pushed:
        fields = {"last_push_at": now, "last_push_commit": tip or ""}
    else:
        reason = reason or "The remote refused the push: it had moved on at every try."
        max_length = GitopsRemoteState._meta.get_field("last_failure_reason").max_length
        fields = {"last_failure_at": now, "last_failure_reason": reason[:max_length]}
    GitopsRemoteState.objects.update_or_create(pk=GitopsRemoteState.SINGLETON_ID, defaults=fields)


def branch_fetch_soon(*, repository: GitopsRepository) -> threading.Thread | None:
    """Fetch the branch into ``repository`` in the background, unless one was asked for less
    than a cache period ago; the thread (None when nothing was started)."""
    remote = gitops_remote()
    if remote is None:
        return None
    now, period = time.monotonic(), max(settings.ARGOCD_CACHE_TTL.total_seconds(), 1.0)
    with _fetch_lock:
        if now - _fetched_at.get(str(repository.path), float("-inf")) < period:
            return None
        _fetched_at[str(repository.path)] = now
    thread = threading.Thread(target=_fetch, args=(repository, remote), name="gitops-fetch", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no thread to spare: the next read asks again
        return None
    return thread


def _fetch(repository: GitopsRepository, remote: RemoteConfig) -> None:
    try:
        with push_lock(repo_path=repository.path):
            remote_fetch(repository=repository, remote=remote)  # an unreachable remote is reported there
    except Exception:  # a background thread: said in the log, never raised into nothing
        logger.warning("The gitops branch could not be fetched to judge Argo CD's revision", exc_info=True)
    finally:
        connection.close()  # this thread's own (the push lock's, on PostgreSQL and MariaDB)
