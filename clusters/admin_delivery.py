"""What an admin page tells the operator about a change: its way to git, when it did not get all
the way (the API answers 202 or 503 for the same cases), and when and by whom one was made."""

from __future__ import annotations

from clusters.models import ClusterChange
from clusters.services import ClusterChangeResult


def change_made(change: ClusterChange) -> str:
    """When and by whom, as a sentence says it: "at 2026-05-04 20:48 UTC by ops@example.com"."""
    return f"at {change.created_at:%Y-%m-%d %H:%M} UTC by {change.actor_email or 'the portal'}"


def delivery_note(result: ClusterChangeResult) -> str:
    """Where the change stopped, as a sentence to append (empty when it was pushed, or made none)."""
    change = result.change
    if change is None or change.pushed:
        return ""
    if not change.commit:  # the local repository failed, and nothing undid the change
        return (
            " It is recorded but not committed to git yet: the local GitOps repository failed (the log"
            " says why). gitops_sync, or Deliver now on System status, commits and pushes it once the"
            " repository works; Argo CD cannot deploy it before."
        )
    return (
        " It is committed to git but not pushed yet: the GitOps remote did not take it (System status"
        " says why; its Deliver now button tries again). Otherwise the next change or gitops_sync pushes"
        " it; Argo CD cannot deploy it before."
    )
