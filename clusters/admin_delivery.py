"""What an admin action tells the operator about its change's way to git, when it did not get
all the way (the API answers 202 or 503 for the same cases)."""

from __future__ import annotations

from clusters.services import ClusterChangeResult


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
