"""``manage.py check --deploy`` refuses an SSH remote whose host key cannot be verified, and a
sealing certificate the portal could not seal with."""

from __future__ import annotations

import pygit2
import pytest

from clusters.checks import (
    sealing_certificate_check,
    ssh_known_hosts_markers_check,
    ssh_remote_host_keys_check,
)


@pytest.mark.parametrize(
    "url",
    [
        "ssh://git@git.example.com/gitops.git",
        "git@git.example.com:org/gitops.git",
        # libgit2 speaks SSH to these too
        "git+ssh://git@git.example.com/gitops.git",
        "ssh+git://git@git.example.com/gitops.git",
        "SSH://git@git.example.com/gitops.git",
        "git.example.com:org/gitops.git",
    ],
)
def test_an_ssh_remote_without_known_hosts_is_a_deploy_error(settings, tmp_path, monkeypatch, url):
    monkeypatch.setattr(pygit2.settings, "homedir", str(tmp_path))
    settings.GITOPS_REMOTE_URL = url

    problems = ssh_remote_host_keys_check(None)

    assert [problem.id for problem in problems] == ["clusters.E001"]
    assert str(tmp_path / ".ssh" / "known_hosts") in problems[0].msg
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "known_hosts").write_text("git.example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n")
    assert ssh_remote_host_keys_check(None) == []


@pytest.mark.parametrize(
    "url", ["", "https://git.example.com/gitops.git", "/srv/git/gitops.git", "file:///srv/git/gitops.git"]
)
def test_other_remotes_need_no_known_hosts(settings, tmp_path, monkeypatch, url):
    monkeypatch.setattr(pygit2.settings, "homedir", str(tmp_path))
    settings.GITOPS_REMOTE_URL = url
    assert ssh_remote_host_keys_check(None) == []


@pytest.mark.parametrize("marker", ["@revoked", "@cert-authority"])
def test_known_hosts_markers_libgit2_would_ignore_are_a_deploy_error(settings, tmp_path, monkeypatch, marker):
    monkeypatch.setattr(pygit2.settings, "homedir", str(tmp_path))
    settings.GITOPS_REMOTE_URL = "ssh://git@git.example.com/gitops.git"
    (tmp_path / ".ssh").mkdir()
    known_hosts = tmp_path / ".ssh" / "known_hosts"
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA"
    known_hosts.write_text(f"git.example.com {key}\n{marker} * {key}\n")

    problems = ssh_known_hosts_markers_check(None)

    assert [problem.id for problem in problems] == ["clusters.E002"] and marker in problems[0].msg
    known_hosts.write_text(f"git.example.com {key}\n")  # the operator removes the marker line
    assert ssh_known_hosts_markers_check(None) == []


def test_a_sealing_certificate_that_is_missing_or_no_certificate_is_a_deploy_error(settings, tmp_path):
    """A ConfigMap key mounted under another name, or the wrong file: said at deploy time, not
    when the first cluster's keys wait undelivered."""
    settings.GITOPS_SEALING_CERT = str(tmp_path / "renamed" / "cert.pem")
    (missing,) = sealing_certificate_check(None)
    assert missing.id == "clusters.E003" and "cannot be read (No such file or directory)" in missing.msg

    (tmp_path / "cert.pem").write_text("-----BEGIN PRIVATE KEY-----\nnot this\n-----END PRIVATE KEY-----\n")
    settings.GITOPS_SEALING_CERT = str(tmp_path / "cert.pem")
    (wrong,) = sealing_certificate_check(None)
    assert wrong.id == "clusters.E003" and "not a PEM certificate" in wrong.msg


def test_a_usable_sealing_certificate_or_none_passes(settings, sealing_certificate):
    assert sealing_certificate_check(None) == []
    settings.GITOPS_SEALING_CERT = ""
    assert sealing_certificate_check(None) == []
