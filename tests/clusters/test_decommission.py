"""Taking a cluster out of service: decommissioned, it is stopped (zero replicas in git), clients no
longer reach it and nothing changes it; removed, its folder leaves git. Operators take both
steps from the admin and see what Argo CD did."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from accounts.models import Session
from clusters.models import ClientAuditEvent, Cluster, ClusterChange, StorageExpansion
from clusters.services import (
    cluster_create,
    cluster_credentials_reveal,
    cluster_credentials_rotate,
    cluster_decommission,
    cluster_keys_reencrypt,
    cluster_remove,
    cluster_update,
)
from clusters.services.changes import change_record
from config.errors import ClusterDecommissioned, InvalidRequest
from gitops.repository import commits_list, file_read, tree_reader
from tests.clusters.conftest import shown_to
from tests.helpers import hand_commit

pytestmark = pytest.mark.django_db(transaction=True)  # deliveries run once the data is committed

CLUSTER = "/api/clients/client1/clusters/main"
FOLDER = "clients/client1/main"


def _files(repository, prefix: str = "clients/client1") -> list[str]:
    return tree_reader(repository=repository).list(prefix)


def _decommission_page(cluster: Cluster) -> str:
    return f"/admin/clusters/cluster/{cluster.pk}/decommission/"


def _remove_page(cluster: Cluster) -> str:
    return f"/admin/clusters/cluster/{cluster.pk}/remove/"


def _replicas(repository) -> int:
    return yaml.safe_load(file_read(repository=repository, file_path=f"{FOLDER}/values.yaml"))["replicaCount"]


def test_decommissioning_stops_the_cluster_in_git_and_takes_it_from_the_api(
    git_server, as_user1, as_admin1, operator, cluster1
):
    assert as_user1.get(f"{CLUSTER}/credentials").status_code == 200

    result = cluster_decommission(cluster=cluster1, actor=operator)

    assert result.change.pushed
    assert _replicas(git_server) == 0  # Argo CD scales it down; the folder (and the volumes) stay
    head = commits_list(repository=git_server)[0]
    assert head.message.startswith("client1/main: decommissioned, replicas 2 -> 0 (stopped)")
    assert head.author.email == operator.email
    assert as_user1.get("/api/clients/client1/clusters").json() == []
    for path in ("", "/credentials", "/history"):
        response = as_user1.get(CLUSTER + path)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), path
        assert "decommissioned" in response.json()["detail"]  # its own members learn why
    response = as_user1.patch(CLUSTER, {"replicas": 3}, format="json")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
    [event] = [
        e for e in as_admin1.get("/api/clients/client1/audit").json() if e["type"] == "cluster_decommissioned"
    ]
    assert (event["actor"], event["cluster"]) == (operator.email, "main")


def test_removing_it_takes_its_whole_folder_from_git_and_only_it(git_server, operator, cluster1):
    cluster_decommission(cluster=cluster1, actor=operator)
    hand_commit(git_server, f"{FOLDER}/notes.md", b"added by hand\n")  # a file the portal did not write

    result = cluster_remove(cluster=cluster1, actor=operator)

    assert result.change.pushed
    assert _files(git_server) == ["clients/client1/client.yaml"]
    head = commits_list(repository=git_server)[0]
    assert (head.message.splitlines()[0], head.author.email) == (
        "client1/main: removed from git (its folder)",
        operator.email,
    )
    with pytest.raises(ClusterDecommissioned):
        cluster_remove(cluster=cluster1, actor=operator)


def test_a_cluster_in_service_cannot_be_removed_from_git(git_server, operator, cluster1):
    with pytest.raises(InvalidRequest, match="decommission it first"):
        cluster_remove(cluster=cluster1, actor=operator)
    assert _replicas(git_server) == 2


def test_a_change_still_waiting_when_it_is_decommissioned_commits_nothing_of_its_own(
    git_server, operator, user1, cluster1
):
    with transaction.atomic():  # a scale recorded, its delivery not yet run (the race with the operator)
        Cluster.objects.filter(pk=cluster1.pk).update(replicas=3)
        change_record(
            cluster=cluster1,
            actor=user1,
            action="update",
            changes={"replicas": [2, 3]},
            message="client1/main: replicas 2 -> 3 (scale up)",
        )

    cluster_decommission(cluster=cluster1, actor=operator)

    assert _replicas(git_server) == 0
    # No commit of the user's scales the cluster up again, or carries its decommissioning.
    messages = [commit.message.splitlines()[0] for commit in commits_list(repository=git_server)]
    assert "client1/main: replicas 2 -> 3 (scale up)" not in messages
    assert messages[0] == "client1/main: decommissioned, replicas 3 -> 0 (stopped)"
    assert not ClusterChange.objects.filter(pushed=False).exists()


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


def test_a_key_read_that_read_the_cluster_before_gets_no_key(operator, user1, cluster1):
    stale = Cluster.objects.get(pk=cluster1.pk)
    cluster_decommission(cluster=cluster1, actor=operator)

    with pytest.raises(ClusterDecommissioned):
        cluster_credentials_reveal(cluster=stale, shown_to=shown_to(user1))
    assert not ClientAuditEvent.objects.filter(type="credentials_revealed").exists()


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
    event = ClientAuditEvent.objects.get(type="cluster_decommissioned")
    assert event.detail == "its storage request for 20 GiB was cancelled"  # the client is told
    assert cluster_keys_reencrypt() == 1  # rotating the field key still works around it


def test_its_name_stays_taken(operator, client1, cluster1):
    cluster_decommission(cluster=cluster1, actor=operator)
    with pytest.raises(ValidationError, match="a decommissioned one: names are never used again"):
        cluster_create(client=client1, slug="main", actor=None)


def test_gitops_sync_keeps_it_stopped_and_then_keeps_its_folder_gone(git_server, operator, cluster1):
    cluster_decommission(cluster=cluster1, actor=operator)
    hand_commit(git_server, f"{FOLDER}/values.yaml", b"replicaCount: 3\n")  # someone starts it by hand
    call_command("gitops_sync", stdout=StringIO())
    assert _replicas(git_server) == 0

    cluster_remove(cluster=cluster1, actor=operator)
    hand_commit(git_server, f"{FOLDER}/values.yaml", b"replicaCount: 1\n")  # or restores the folder
    check = StringIO()
    with pytest.raises(CommandError, match="1 file"):
        call_command("gitops_sync", "--check", stdout=check)
    assert f"{FOLDER}/values.yaml" in check.getvalue()
    call_command("gitops_sync", stdout=StringIO())

    assert _files(git_server) == ["clients/client1/client.yaml"]


# --- The admin ---------------------------------------------------------------------------------


def test_the_admin_takes_both_steps_once_the_name_is_typed_and_shows_each_runbook(
    admin_browser, git_server, client1, cluster1
):
    cluster_create(client=client1, slug="other", actor=None)  # shares the namespace
    change_page = f"/admin/clusters/cluster/{cluster1.pk}/change/"
    assert _decommission_page(cluster1) in admin_browser.get(change_page).content.decode()
    page = admin_browser.get(_decommission_page(cluster1)).content.decode()
    assert "stops it for good" in page and f"{FOLDER}/values.yaml" in page

    typo = admin_browser.post(_decommission_page(cluster1), {"cluster_name": "client1/mian"})
    assert typo.status_code == 200 and "That is not “client1/main”" in typo.content.decode()
    assert not Cluster.objects.get(pk=cluster1.pk).decommissioned

    page = admin_browser.post(
        _decommission_page(cluster1), {"cluster_name": "client1/main"}, follow=True
    ).content.decode()

    assert "Decommissioned: client1/main; git now has zero replicas for it." in page
    assert "kubectl -n qdrant-client1 get statefulset qdrant-client1-main" in page  # check it stopped
    assert _decommission_page(cluster1) not in page and _remove_page(cluster1) in page
    assert _replicas(git_server) == 0
    # The page is view-only: a save changes nothing, and says why (not "Not allowed").
    saved = admin_browser.post(change_page, {"replicas": 5}, follow=True)
    assert saved.redirect_chain == [(change_page, 302)]
    assert "Cluster client1/main was decommissioned at " in saved.content.decode()
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 2
    assert "0 (stopped; it ran 2)" in admin_browser.get(change_page).content.decode()  # as git says
    listed = admin_browser.get("/admin/clusters/cluster/").content.decode()
    assert "0 (stopped; it ran 2)" in listed
    again = admin_browser.post(_decommission_page(cluster1), {"cluster_name": "client1/main"}, follow=True)
    assert "Nothing to do: client1/main cannot be decommissioned now." in again.content.decode()

    page = admin_browser.post(
        _remove_page(cluster1), {"cluster_name": "client1/main"}, follow=True
    ).content.decode()

    assert "Removed from git: client1/main; its folder is removed from git." in page
    assert "kubectl -n qdrant-client1 delete sealedsecret qdrant-client1-main-apikey" in page
    assert "kubectl -n qdrant-client1 delete secret qdrant-client1-main-apikey" in page  # made by hand too
    assert "delete pvc -l app.kubernetes.io/instance=qdrant-client1-main" in page
    assert "Other clusters of this client run in qdrant-client1: keep the namespace." in page
    assert "delete namespace" not in page
    assert _remove_page(cluster1) not in page  # nothing more to do here
    assert _files(git_server, FOLDER) == []
    assert list(ClusterChange.objects.filter(cluster=cluster1).values_list("action", flat=True)) == [
        "remove",
        "decommission",
        "create",
    ]


def test_the_admin_needs_a_recent_sign_in_to_decommission(admin_browser, settings, cluster1):
    long_ago = timezone.now() - settings.REAUTHENTICATION_WINDOW - timedelta(seconds=1)
    Session.objects.update(authenticated_at=long_ago)
    warned = admin_browser.get(_decommission_page(cluster1)).content.decode()
    assert "this needs a sign-in within the last 5 minutes" in warned  # before the name is typed

    page = admin_browser.post(
        _decommission_page(cluster1), {"cluster_name": "client1/main"}, follow=True
    ).content.decode()

    assert page.count("Nothing was done: this needs a sign-in within the last 5 minutes.") == 1  # said once
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
    assert listed("removed") == []
    page = admin_browser.get("/admin/clusters/cluster/").content.decode()
    assert page.count('<td class="field-service">decommissioned</td>') == 1


@pytest.mark.parametrize(
    "may",
    [("view_cluster",), ("view_cluster", "change_cluster"), ("view_cluster", "decommission_cluster")],
)
def test_an_operator_without_the_decommission_permission_cannot_decommission(
    client, user_factory, cluster1, may
):
    from django.contrib.auth.models import Permission

    viewer = user_factory(email="viewer-op@example.com", is_staff=True, is_operator=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=may))
    client.force_login(viewer)

    page = client.get(f"/admin/clusters/cluster/{cluster1.pk}/change/").content.decode()
    assert "client1/main" in page and _decommission_page(cluster1) not in page  # no link it cannot use
    assert client.post(_decommission_page(cluster1), {"cluster_name": "client1/main"}).status_code == 403
    assert not Cluster.objects.get(pk=cluster1.pk).decommissioned


# --- What Argo CD did ---------------------------------------------------------------------------


def _forget_what_argo_cd_said() -> None:
    """Let a push's background refresh finish, then drop what it (or a page) cached."""
    import threading

    from django.core.cache import cache

    for thread in threading.enumerate():
        if thread.name.startswith("argocd-refresh"):
            thread.join(timeout=5)
    cache.delete("argocd:application:qdrant.client1.main")


def test_the_admin_shows_argo_cd_stopping_it_then_removing_its_application(
    argocd, git_server, admin_browser, operator, cluster1
):
    change_page = f"/admin/clusters/cluster/{cluster1.pk}/change/"
    stopped = cluster_decommission(cluster=cluster1, actor=operator).change.commit
    argocd.application_put(client="client1", cluster="main", revision="0" * 40)  # not at the stop yet
    _forget_what_argo_cd_said()
    with pytest.raises(InvalidRequest, match="Argo CD has not stopped this cluster yet"):
        cluster_remove(cluster=cluster1, actor=operator)  # the Application would go, the pods stay
    argocd.application_put(client="client1", cluster="main", revision=stopped)
    _forget_what_argo_cd_said()
    page = admin_browser.get(change_page).content.decode()
    assert "<strong>deployed</strong>: Stopped: Argo CD scaled the cluster to zero replicas." in page
    out = StringIO()
    call_command("deployments", stdout=out)  # still counted: a stop that fails must alert
    assert "client1/main" in out.getvalue()

    cluster_remove(cluster=cluster1, actor=operator)
    _forget_what_argo_cd_said()
    page = admin_browser.get(change_page).content.decode()
    assert "Argo CD still has the Application" in page

    argocd.application_remove("qdrant.client1.main")
    _forget_what_argo_cd_said()
    page = admin_browser.get(change_page).content.decode()
    assert "<strong>deployed</strong>: Argo CD removed the Application." in page
    out = StringIO()
    call_command("deployments", stdout=out)  # removed from git: nothing of it left to deploy
    assert "client1/main" not in out.getvalue()
