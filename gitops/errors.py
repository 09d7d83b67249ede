"""The gitops library's exceptions.

Library exceptions only: they say what went wrong with git, files or configuration, and
carry no HTTP status or API code. The Django side maps them to its API errors.
"""

from __future__ import annotations


class GitopsError(Exception):
    """Base of every failure the gitops library raises on purpose."""


class RepositoryUnavailable(GitopsError):
    """Not even a local commit could be made: nothing was changed.

    The repository cannot be opened or created, an object or reference cannot be written,
    or the lock file cannot be created.
    """


class BranchMoved(GitopsError):
    """The branch no longer points at the commit the change was built on."""


class PushRejected(GitopsError):
    """The remote answered and refused the push (a hook, a protected branch): reported to the
    remote's ``on_failure`` like an outage, since retrying alone does not help."""


class InvalidPath(GitopsError, ValueError):
    """A repository path that could escape its folder or name no file."""


class ContentError(GitopsError):
    """Files in git or configuration the portal cannot render.

    A values file edited by hand into something that is not a mapping, a value that would
    not be a valid Helm value, a sealing certificate that is not usable: people must fix
    them, retrying does not help.
    """


class ArgoCDUnavailable(GitopsError):
    """Argo CD could not be asked, or did not answer as its API says it does.

    ``kind`` is a stable word for code (``unreachable``, ``timeout``, ``tls``, ``unauthorized``,
    ``forbidden``, ``not_found``, ``bad_answer``); ``reason`` is a sentence for people. Neither
    ever carries the token.
    """

    def __init__(self, reason: str, *, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
