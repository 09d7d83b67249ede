"""Decommissioning a cluster: its folder leaves git, clients no longer reach it, nothing changes
it afterwards; operators do it from the admin and see whether Argo CD removed it."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import Session
from clusters.models import ClientAuditEvent, Cluster, ClusterChange, StorageExpansion
from clusters.services import (
    cluster_create,
    cluster_credentials_rotate,
    cluster_decommission,
    cluster_keys_reencrypt,
    cluster_update,
)
from config.errors import ClusterDecommissioned
from gitops.repository import branch_tip, commits_list, tree_reader
from tests.clusters.conftest import shown_to
from tests.helpers import hand_commit

pytestmark = pytest.mark.django_db(transaction=True)  # deliveries run once the data is committed

CLUSTER = "/api/clients/client1/clusters/main"
FOLDER = "clients/client1/main"


def _files(repository, prefix: str = "clients/client1") -> list[str]:
    return tree_reader(repository=repository).list(prefix)


def _decommission_page(cluster: Cluster) -> str:
    return f"/admin/clusters/cluster/{cluster.pk}/decommission/"


def test_decommissioning_removes_the_folder_from_the_remote_and_the_cluster_from_the_api(
    git_server, as_user1, as_admin1, operator, cluster1
):
    assert as_user1.get(f"{CLUSTER}/credentials").status_code == 200
    hand_commit(git_server, f"{FOLDER}/notes.md", b"added by hand\n")  # a file the portal did not write

    result = cluster_decommission(cluster=cluster1, actor=operator)

    assert result.change.pushed
    assert _files(git_server) == ["clients/client1/client.yaml"]  # the folder, and only it, is gone
    head = commits_list(repository=git_server)[0]
    assert head.message.startswith("client1/main: decommissioned")
    assert head.author.email == operator.email
    assert as_user1.get("/api/clients/client1/clusters").json() == []
    for path in ("", "/credentials", "/history"):
        response = as_user1.get(CLUSTER + path)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), path
    response = as_user1.patch(CLUSTER, {"replicas": 3}, format="json")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    [event] = [
        e for e in as_admin1.get("/api/clients/client1/audit").json() if e["type"] == "cluster_decommissioned"
    ]
    assert (event["actor"], event["cluster"]) == (operator.email, "main")


def test_nothing_changes_a_decommissioned_cluster_even_a_write_that_read_it_before(operator, user1, cluster1):
    stale = Cluster.objects.get(pk=cluster1.pk)  # read by a request before the decommissioning
    cluster_decommission(cluster=cluster1, actor=operator)

    for write in (
        lambda: cluster_update(cluster=stale, actor=user1, replicas=3),
        lambda: cluster_credentials_rotate(cluster=stale, shown_to=shown_to(user1)),
        lambda: cluster_update(cluster=stale, actor=user1, storage_gi=20),
        lambda: cluster_decommission(cluster=stale, actor=operator),
    ):
        with pytest.raises(ClusterDecommissioned):
            write()
    current = Cluster.objects.get(pk=cluster1.pk)
    assert (current.replicas, current.storage_gi) == (2, 10)
    assert list(current.changes.values_list("action", flat=True)) == ["decommission", "create"]


def test_its_keys_are_erased_and_a_waiting_request_and_a_rotation_end(operator, user1, cluster1):
    cluster_update(cluster=cluster1, actor=user1, storage_gi=20)
    cluster_credentials_rotate(cluster=cluster1, shown_to=shown_to(user1))

    cluster_decommission(cluster=cluster1, actor=operator)

    current = Cluster.objects.get(pk=cluster1.pk)
    assert (
        current.api_key_encrypted,
        current.read_only_api_key_encrypted,
        current.alt_api_key_encrypted,
    ) == (
        "",
        "",
        "",
    )
    assert current.rotation_finishes_at is None and current.decommissioned
    assert StorageExpansion.objects.get().state == StorageExpansion.State.CANCELLED
    assert cluster_keys_reencrypt() == 1  # rotating the field key still works around it


def test_its_name_stays_taken(operator, client1, cluster1):
    cluster_decommission(cluster=cluster1, actor=operator)
    with pytest.raises(ValidationError, match="already exists"):
        cluster_create(client=client1, slug="main", actor=None)


def test_a_removal_the_remote_did_not_take_goes_out_later_and_older_changes_do_not_restore_it(
    tmp_path, settings, git_server, operator, user1, cluster1
):
    remote = settings.GITOPS_REMOTE_URL
    settings.GITOPS_REMOTE_URL = str(tmp_path / "not-there.git")  # the git server is down
    cluster_update(cluster=cluster1, actor=user1, replicas=3)
    result = cluster_decommission(cluster=cluster1, actor=operator)
    assert result.change.pushed is False

    settings.GITOPS_REMOTE_URL = remote
    call_command("gitops_sync", stdout=StringIO())

    assert _files(git_server) == ["clients/client1/client.yaml"]
    assert not ClusterChange.objects.filter(pushed=False).exclude(action__startswith="storage").exists()


def test_gitops_sync_removes_the_folder_again_when_someone_restores_it(git_server, operator, cluster1):
    cluster_decommission(cluster=cluster1, actor=operator)
    hand_commit(git_server, f"{FOLDER}/values.yaml", b"replicaCount: 1\n")

    check = StringIO()
    with pytest.raises(CommandError, match="1 file"):
        call_command("gitops_sync", "--check", stdout=check)
    assert f"{FOLDER}/values.yaml" in check.getvalue()
    call_command("gitops_sync", stdout=StringIO())

    assert _files(git_server) == ["clients/client1/client.yaml"]


# --- The admin ---------------------------------------------------------------------------------


def test_the_admin_decommissions_once_the_name_is_typed_and_then_shows_the_runbook(
    admin_browser, git_server, cluster1
):
    page = admin_browser.get(f"/admin/clusters/cluster/{cluster1.pk}/change/").content.decode()
    assert _decommission_page(cluster1) in page
    page = admin_browser.get(_decommission_page(cluster1)).content.decode()
    assert "cannot be undone" in page and f"{FOLDER}/" in page

    typo = admin_browser.post(_decommission_page(cluster1), {"cluster_name": "client1/mian"})
    assert typo.status_code == 200 and "That is not “client1/main”" in typo.content.decode()
    assert not Cluster.objects.get(pk=cluster1.pk).decommissioned

    done = admin_browser.post(_decommission_page(cluster1), {"cluster_name": "client1/main"}, follow=True)

    page = done.content.decode()
    assert "Decommissioned client1/main: its folder is removed from git." in page
    assert "kubectl -n qdrant-client1 delete sealedsecret qdrant-client1-main-apikey" in page
    assert "qdrant-storage-qdrant-client1-main-[0-9]+" in page
    assert _decommission_page(cluster1) not in page  # nothing more to do here
    assert _files(git_server) == ["clients/client1/client.yaml"]
    # The page is view-only: a save changes nothing.
    edit = admin_browser.post(f"/admin/clusters/cluster/{cluster1.pk}/change/", {"replicas": 5})
    assert edit.status_code == 403
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 2
    again = admin_browser.post(_decommission_page(cluster1), {"cluster_name": "client1/main"}, follow=True)
    assert "Nothing to do: client1/main was decommissioned already." in again.content.decode()
    assert ClusterChange.objects.filter(action="decommission").count() == 1


def test_the_admin_needs_a_recent_sign_in_to_decommission(admin_browser, settings, cluster1):
    long_ago = timezone.now() - settings.REAUTHENTICATION_WINDOW - timedelta(seconds=1)
    Session.objects.update(authenticated_at=long_ago)

    page = admin_browser.post(
        _decommission_page(cluster1), {"cluster_name": "client1/main"}, follow=True
    ).content.decode()

    assert "Nothing was done: this needs a sign-in within the last 5 minutes." in page
    assert f'href="/#/confirm?next={_decommission_page(cluster1)}"' in page  # confirming comes back here
    assert not Cluster.objects.get(pk=cluster1.pk).decommissioned
    assert not ClientAuditEvent.objects.filter(type="cluster_decommissioned").exists()


def test_the_cluster_list_filters_by_service(admin_browser, operator, client1, cluster1):
    other = cluster_create(client=client1, slug="other", actor=None).cluster
    cluster_decommission(cluster=cluster1, actor=operator)

    def listed(service: str) -> list[str]:
        page = admin_browser.get(f"/admin/clusters/cluster/?service={service}")
        return [str(cluster) for cluster in page.context["cl"].result_list]

    assert listed("in_service") == [str(other)]
    assert listed("decommissioned") == ["client1/main"]


def test_a_viewing_operator_cannot_decommission(client, user_factory, cluster1):
    from django.contrib.auth.models import Permission

    viewer = user_factory(email="viewer-op@example.com", is_staff=True, is_operator=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_cluster"))
    client.force_login(viewer)

    page = client.get(f"/admin/clusters/cluster/{cluster1.pk}/change/").content.decode()
    assert "client1/main" in page and _decommission_page(cluster1) not in page  # no link it cannot use
    assert client.post(_decommission_page(cluster1), {"cluster_name": "client1/main"}).status_code == 403
    assert not Cluster.objects.get(pk=cluster1.pk).decommissioned


# --- Whether Argo CD removed it ---------------------------------------------------------------


def test_the_admin_shows_whether_argo_cd_still_has_the_application(
    argocd, git_server, admin_browser, operator, cluster1
):
    from django.core.cache import cache

    argocd.application_put(client="client1", cluster="main", revision=branch_tip(repository=git_server))
    cluster_decommission(cluster=cluster1, actor=operator)
    change_page = f"/admin/clusters/cluster/{cluster1.pk}/change/"
    argocd.wait_for_refresh("qdrant.client1.main")
    cache.delete("argocd:application:qdrant.client1.main")  # what the page saw before

    page = admin_browser.get(change_page).content.decode()
    assert "Argo CD still has the Application" in page

    argocd.application_remove("qdrant.client1.main")
    cache.delete("argocd:application:qdrant.client1.main")  # what the page saw before
    page = admin_browser.get(change_page).content.decode()
    assert "<strong>deployed</strong>: Argo CD removed the Application." in page

    out = StringIO()
    call_command("deployments", stdout=out)  # counts the clusters in service: none left
    assert "client1/main" not in out.getvalue()
