"""What ``gitops_sync`` (``--check``) tells an operator before and after it writes: what changes in
each values file, the Argo CD manifests that are not this portal's any more, and a push it made."""

from __future__ import annotations

import shutil
from io import StringIO

import pytest
import yaml
from django.core.management import call_command

from gitops.repository import branch_tip, branch_update, file_read
from tests.conftest import portal_repository
from tests.helpers import gitops_sync_run, hand_commit

pytestmark = pytest.mark.django_db(transaction=True)

MAIN_VALUES = "clients/client1/main/values.yaml"
DELIVER_NOW = "/admin/operations/systemstatus/deliver/"
RUN_BOOTSTRAP = "run gitops_sync --bootstrap"


def _values_edited(repository, path: str, edit) -> None:
    values = yaml.safe_load(file_read(repository=repository, file_path=path))
    edit(values)
    hand_commit(repository, path, yaml.safe_dump(values).encode())


def test_check_says_what_a_sync_would_change_of_the_portals_values(git_server, cluster1, cluster2):
    def downgraded(values: dict) -> None:
        values["image"]["tag"] = "v1.17.1"
        values["replicaCount"] = 5
        values["env"] = [entry for entry in values["env"] if entry["name"] != "QDRANT__SERVICE__API_KEY"]

    _values_edited(git_server, MAIN_VALUES, downgraded)
    _values_edited(git_server, "clients/client2/main/values.yaml", lambda values: None)  # laid out by hand
    hand_commit(git_server, "clients/client2/client.yaml", None)

    out, error = gitops_sync_run("--check")

    assert error is not None and "3 file(s) differ" in str(error)
    assert out.splitlines() == [
        "drift: clients/client1/main/values.yaml (image.tag v1.17.1 -> v1.19.0, replicaCount 5 -> 2, "
        "env QDRANT__SERVICE__API_KEY added)",
        "drift: clients/client2/client.yaml (new)",
        "drift: clients/client2/main/values.yaml (the portal's values are the same, laid out anew)",
    ]


def test_check_names_the_argo_cd_manifests_a_new_remote_url_left_behind(
    git_server, cluster1, settings, tmp_path
):
    moved = tmp_path / "moved.git"  # the team moved the gitops repository: the same branch, another URL
    shutil.copytree(git_server.path, moved)
    settings.GITOPS_REMOTE_URL = str(moved)

    out, error = gitops_sync_run("--check")

    assert error is not None and RUN_BOOTSTRAP in str(error) and "GITOPS_REMOTE_URL" in str(error)
    assert "bootstrap file differs: argocd/applicationset.yaml" in out.splitlines()
    assert "bootstrap file differs: argocd/appproject.yaml" in out.splitlines()
    assert "No drift" not in out

    out, error = (
        gitops_sync_run()
    )  # a sync says so too, and leaves them as they are: a hand edit may be meant
    assert error is None and RUN_BOOTSTRAP in out
    applicationset = file_read(repository=portal_repository(settings), file_path="argocd/applicationset.yaml")
    assert str(git_server.path).encode() in applicationset and str(moved).encode() not in applicationset

    gitops_sync_run("--bootstrap")
    assert gitops_sync_run("--check")[1] is None


def test_check_says_when_the_remote_lacks_the_argo_cd_manifests(git_server, cluster1, admin_browser):
    hand_commit(git_server, "argocd/applicationset.yaml", None)  # a remote made again from clients/ only
    hand_commit(git_server, "argocd/appproject.yaml", None)

    out, error = gitops_sync_run("--check")

    assert error is not None and RUN_BOOTSTRAP in str(error)
    assert "bootstrap file differs: argocd/applicationset.yaml (not in git)" in out.splitlines()
    page = admin_browser.post(DELIVER_NOW, follow=True).content.decode()
    assert "Deliver now:" in page and "argocd/appproject.yaml (not in git)" in page


def test_a_sync_that_pushes_to_a_rewound_remote_says_it_pushed(git_server, cluster1, settings):
    before = branch_tip(repository=git_server)
    hand_commit(portal_repository(settings), "notes.txt", b"pushed, then lost on the remote\n")
    call_command("gitops_sync", stdout=StringIO())
    branch_update(repository=git_server, expected_tip=branch_tip(repository=git_server), new_tip=before)

    out, error = gitops_sync_run()

    assert error is None and "Nothing to sync" not in out
    tip = branch_tip(repository=portal_repository(settings))
    assert f"Pushed the branch to the GitOps remote, which lacked commits of it: now at {tip[:12]}." in out
    assert branch_tip(repository=git_server) == tip
