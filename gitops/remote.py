"""The gitops remote: credentials, fetch and push of the one branch, and commit ancestry.

A remote that cannot be reached is not an error here: fetch says it was not reachable and
push says it did not push, so the commits stay local until a later delivery pushes them.
Pushes are never forced: a remote that moved refuses the push, and the caller rebuilds its
changes on the remote's tip instead of overwriting someone else's commit.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pygit2
from pygit2.enums import CredentialType, FetchPrune

from gitops.errors import PushRejected
from gitops.repository import GitopsRepository, branch_tip, repository_handle

_CREDENTIAL_ATTEMPTS = 3
# The URLs libgit2 speaks SSH to: these schemes (any case), or scp-like ``[user@]host:path``.
_SSH_SCHEMES = ("ssh://", "ssh+git://", "git+ssh://")
_SCP_LIKE = re.compile(r"^[^/:]+:")  # git@github.com:org/repo.git, github.com:org/repo.git
# libgit2 waits for the OS defaults (minutes) otherwise, while writers hold the gitops locks.
# A write to a remote that stops answering may wait for a fetch and a push's two exchanges:
# about 45 s, under the 120 s the shipped ingress and gateway wait for an answer.
pygit2.settings.server_connect_timeout = 10_000
pygit2.settings.server_timeout = 15_000
# Failures of the remote or of the way to it, as pygit2 reports them (bad URLs included).
_TRANSPORT_ERRORS = (pygit2.GitError, OSError, ValueError)
# Commits never change, so neither does the history of one: each process keeps those of the few
# revisions Argo CD reports at a time (the branch tip, mostly). A newer tip's walk stops at a
# kept one, so it reads only the commits made since; kept histories share their commit ids.
_HISTORIES_KEPT = 8
_histories: OrderedDict[tuple[str, str], frozenset[str]] = OrderedDict()
_histories_lock = threading.Lock()


@dataclass(frozen=True)
class RemoteConfig:
    """Where to push. ``token`` is for HTTPS; ``ssh_key_path`` for SSH (user from the URL)."""

    url: str
    token: str | None = field(default=None, repr=False)
    username: str = "x-access-token"
    ssh_key_path: Path | None = None
    ssh_public_key_path: Path | None = None
    ssh_passphrase: str | None = field(default=None, repr=False)
    # Told why the remote could not be reached (the caller logs it; a refused push is not a failure).
    on_failure: Callable[[Exception], None] | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class RemoteState:
    """What a fetch found: whether the remote answered, and where its branch is (None: unborn)."""

    reachable: bool
    tip: str | None


class _Callbacks(pygit2.RemoteCallbacks):
    """Credentials from the configuration, and the remote's refusals of a push."""

    def __init__(self, remote: RemoteConfig) -> None:
        super().__init__()
        self._remote = remote
        self._attempts = 0
        self.rejected: dict[str, str] = {}
        self.remote_said: list[str] = []  # what the server's hooks printed ("remote: ..." in git)

    def credentials(self, url, username_from_url, allowed_types):  # noqa: ANN001, ANN201 - pygit2's hook
        # libgit2 asks again after each refusal: stop rather than loop on bad credentials.
        self._attempts += 1
        if self._attempts > _CREDENTIAL_ATTEMPTS:
            raise pygit2.GitError("The gitops remote refused the credentials.")
        remote = self._remote
        if allowed_types & CredentialType.SSH_KEY and remote.ssh_key_path is not None:
            return pygit2.Keypair(
                username_from_url or "git",
                str(remote.ssh_public_key_path) if remote.ssh_public_key_path else None,
                str(remote.ssh_key_path),
                remote.ssh_passphrase or "",
            )
        if allowed_types & CredentialType.USERPASS_PLAINTEXT and remote.token:
            return pygit2.UserPass(username_from_url or remote.username, remote.token)
        raise pygit2.GitError("No credentials configured for the gitops remote.")

    def certificate_check(self, certificate, valid, host):  # noqa: ANN001, ANN201 - pygit2's hook
        # pygit2's default lets any SSH host key through. libgit2 has checked the key against
        # $HOME/.ssh/known_hosts (and a TLS certificate against the trusted CAs): a host not
        # there is refused before the portal's key is offered or a commit is sent to it.
        return bool(valid)

    def sideband_progress(self, string):  # noqa: ANN001, ANN201 - pygit2's hook
        if len(self.remote_said) < 20:  # a hook's reason, not a flood
            self.remote_said.append(string)

    def push_update_reference(self, refname, message):  # noqa: ANN001, ANN201 - pygit2's hook
        # A refusal (a hook, a protected branch) is not an exception in libgit2: only this says so.
        if message:
            self.rejected[refname] = message


def ssh_known_hosts_path(url: str) -> Path | None:
    """For an SSH ``url``: the known_hosts file libgit2 checks host keys against; None for others."""
    scp_like = "://" not in url and _SCP_LIKE.match(url) and not Path(url).exists()  # not a local path
    if not (url.lower().startswith(_SSH_SCHEMES) or scp_like):
        return None
    return Path(pygit2.settings.homedir or "/nonexistent") / ".ssh" / "known_hosts"


def ssh_known_hosts_missing(url: str) -> Path | None:
    """For an SSH ``url``: its known_hosts file when that is absent (every connection would be
    refused). None for other URLs or when it exists."""
    known_hosts = ssh_known_hosts_path(url)
    return None if known_hosts is None or known_hosts.is_file() else known_hosts


def ssh_known_hosts_markers(url: str) -> set[str]:
    """For an SSH ``url``: the markers in its known_hosts (``@revoked``, ``@cert-authority``).

    libgit2 (libssh2) ignores them: a key marked revoked is trusted wherever another line lists it.
    """
    known_hosts = ssh_known_hosts_path(url)
    if known_hosts is None or not known_hosts.is_file():
        return set()
    lines = known_hosts.read_text(errors="replace").splitlines()
    return {line.split()[0] for line in lines if line.strip().startswith("@")}


def remote_tracking_tip(*, repository: GitopsRepository) -> str | None:
    """Where the remote's branch was at the last fetch or successful push (None: never seen)."""
    reference = repository_handle(repository).references.get(repository.remote_ref_name)
    return None if reference is None else str(reference.target)


def _unreachable(remote: RemoteConfig, error: Exception) -> None:
    if remote.on_failure is not None:
        remote.on_failure(error)


def remote_fetch(*, repository: GitopsRepository, remote: RemoteConfig) -> RemoteState:
    """Fetch the branch from the remote. Never raises for a network failure: ``reachable`` says."""
    handle = repository_handle(repository)
    try:
        handle.remotes.create_anonymous(remote.url).fetch(
            [f"+{repository.ref_name}:{repository.remote_ref_name}"],
            callbacks=_Callbacks(remote),
            prune=FetchPrune.PRUNE,  # a branch deleted on the remote is forgotten here
        )
    except _TRANSPORT_ERRORS as error:
        _unreachable(remote, error)
        return RemoteState(reachable=False, tip=None)
    return RemoteState(reachable=True, tip=remote_tracking_tip(repository=repository))


def branch_push(*, repository: GitopsRepository, remote: RemoteConfig) -> tuple[bool, str | None]:
    """Push the branch, never forced: whether the remote took it (False when it refused it or
    could not be reached), and the tip that is about, read before the push.

    The branch may move on during the push (another thread commits): the remote then gets
    that newer tip, which holds the one returned.
    """
    tip = branch_tip(repository=repository)
    if tip is None:
        return True, None  # nothing to push
    handle = repository_handle(repository)
    callbacks = _Callbacks(remote)
    try:
        handle.remotes.create_anonymous(remote.url).push(
            [f"{repository.ref_name}:{repository.ref_name}"], callbacks=callbacks
        )
    except _TRANSPORT_ERRORS as error:
        if not _refused_as_behind(error):
            _unreachable(remote, error)
        return False, tip
    if callbacks.rejected:
        said = " ".join(" ".join(callbacks.remote_said).split())[:200]  # the hook's own words
        refused = "; ".join(f"{ref}: {why}" for ref, why in callbacks.rejected.items())
        _unreachable(remote, PushRejected(f"{refused} ({said})" if said else refused))
        return False, tip
    try:
        handle.references.create(repository.remote_ref_name, pygit2.Oid(hex=tip), force=True)
    except pygit2.GitError:
        pass  # only a record of the remote: the next fetch sets it
    return True, tip


def _refused_as_behind(error: Exception) -> bool:
    """libgit2 refuses a push that is not a fast-forward before sending it, as an error: the
    remote answered (another replica pushed first), it is not an outage to report."""
    return isinstance(error, pygit2.GitError) and "not present locally" in str(error)


def remote_push(*, repository: GitopsRepository, remote: RemoteConfig) -> bool:
    """Push the branch, never forced: False when the remote refused it or could not be reached."""
    return branch_push(repository=repository, remote=remote)[0]


def commit_is_ancestor(*, repository: GitopsRepository, ancestor: str, descendant: str) -> bool:
    """Whether ``descendant``'s history contains ``ancestor`` (a commit is its own ancestor).

    False for a commit this repository does not have.
    """
    if ancestor == descendant:
        return True
    try:
        return repository_handle(repository).descendant_of(
            pygit2.Oid(hex=descendant), pygit2.Oid(hex=ancestor)
        )
    except (KeyError, pygit2.GitError):
        return False


def commit_history(*, repository: GitopsRepository, commit: str) -> frozenset[str]:
    """Every commit in ``commit``'s history, itself included (empty for a commit this repository
    does not have): the history is read once per process, then each question is a set lookup."""
    key = (str(repository.path), commit)
    with _histories_lock:
        kept = _histories.get(key)
        if kept is not None:
            _histories.move_to_end(key)
            return kept
        known = {found: history for (path, found), history in _histories.items() if path == key[0]}
    history, complete = _history_walk(repository_handle(repository), commit, known)
    if complete:
        with _histories_lock:
            _histories[key] = history
            while len(_histories) > _HISTORIES_KEPT:
                _histories.popitem(last=False)
    return history


def _history_walk(
    handle: pygit2.Repository, commit: str, known: Mapping[str, frozenset[str]]
) -> tuple[frozenset[str], bool]:
    """``commit``'s history, taking a ``known`` one whole where the walk meets it; and whether
    every commit of it was there (else it is not kept: a fetch may bring the rest)."""
    found: set[str] = set()
    complete, waiting = True, [commit]
    while waiting:
        current = waiting.pop()
        if current in found:
            continue
        if current in known:
            found |= known[current]
            continue
        try:
            read = handle.get(current)
        except (ValueError, pygit2.GitError):
            read = None
        if not isinstance(read, pygit2.Commit):
            complete = False
            continue
        found.add(current)
        waiting.extend(str(parent) for parent in read.parent_ids)
    return frozenset(found), complete
