"""Deployment checks (``manage.py check --deploy``): a GitOps remote the portal could never push to,
or whose host keys it would check otherwise than the operator meant; a sealing certificate it
could not seal with."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core import checks

from gitops.remote import ssh_known_hosts_markers, ssh_known_hosts_missing
from gitops.sealing import SealingError, sealing_public_key_load


@checks.register(checks.Tags.security, deploy=True)
def ssh_remote_host_keys_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """An SSH remote's host key must be known: the portal refuses a host it cannot verify."""
    missing = ssh_known_hosts_missing(settings.GITOPS_REMOTE_URL or "")
    if missing is None:
        return []
    return [
        checks.Error(
            f"GITOPS_REMOTE_URL is an SSH remote, but {missing} does not exist: the git host's key "
            "cannot be verified, so every push and fetch would be refused.",
            hint="Put the host's known_hosts line(s) (ssh-keyscan, checked against the host's "
            "published fingerprints) in .ssh/known_hosts under HOME; the README shows the mount.",
            id="clusters.E001",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def ssh_known_hosts_markers_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """libgit2 ignores known_hosts markers: an operator who marked a key revoked must know."""
    markers = ssh_known_hosts_markers(settings.GITOPS_REMOTE_URL or "")
    if not markers:
        return []
    return [
        checks.Error(
            f"The SSH known_hosts has {', '.join(sorted(markers))} lines, which libgit2 ignores: a key "
            "marked @revoked is still trusted wherever another line lists it, and a host signed by a "
            "@cert-authority is refused.",
            hint="Remove the marker lines; to revoke a host key, delete every line that lists it.",
            id="clusters.E002",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def sealing_certificate_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A sealing certificate that cannot be used holds every cluster's key change back: say so
    at deploy time, not at the first creation or rotation."""
    path = settings.GITOPS_SEALING_CERT
    if not path:
        return []
    try:
        sealing_public_key_load(certificate_pem=Path(path).read_bytes())
    except OSError as error:
        problem = f"cannot be read ({error.strerror})"
    except SealingError as error:
        problem = f"cannot be used: {error}"
    else:
        return []
    return [
        checks.Error(
            f"GITOPS_SEALING_CERT {path} {problem}: no cluster's API keys could be sealed, so every "
            "creation and key rotation would wait undelivered.",
            hint="Mount the controller's certificate (kubeseal --fetch-cert) at that path, or leave "
            "GITOPS_SEALING_CERT empty to commit no Secret.",
            id="clusters.E003",
        )
    ]
