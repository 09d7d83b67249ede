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

from django.core.exceptions import ValidationError

from clusters.repository import folder_has_files
from gitops.errors import RepositoryUnavailable

logger = logging.getLogger(__name__)

TAKE_OVER_LABEL = "Take over its folder in git"


def git_folder_claim(*, folder: str, owner: str, take_over: bool) -> bool:
    """Whether the new ``owner`` ("cluster", "client") takes over ``folder``, which git holds
    (only with ``take_over``; without it, :class:`ValidationError`). False: the folder is free.

    Fails closed: a repository that cannot be read refuses the creation too.
    """
    try:
        held = folder_has_files(folder=folder)
    except RepositoryUnavailable as error:
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
