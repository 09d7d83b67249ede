"""More storage is a request an operator carries out: git changes only when the volumes have grown.

Kubernetes refuses a new ``volumeClaimTemplates`` on an existing StatefulSet, so a bigger
``storageGi`` must never reach ``persistence.size`` of a running cluster by itself.
"""

from __future__ import annotations

import pytest
import yaml

from clusters.models import Cluster, ClusterChange, StorageExpansion
from clusters.services import storage_expansion_complete
from gitops.repository import GitIdentity, GitopsRepository, branch_tip, commits_list, file_read, files_commit
from tests.conftest import portal_repository

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/clients/client1/clusters/main"
VALUES = "clients/client1/main/values.yaml"


def _size(repository: GitopsRepository) -> str:
    return yaml.safe_load(file_read(repository=repository, file_path=VALUES))["persistence"]["size"]


def test_a_bigger_size_commits_nothing_and_shows_the_request(git_server, as_user1, user1, cluster1):
    tip = branch_tip(repository=git_server)

    response = as_user1.patch(URL, {"storageGi": 20}, format="json")

    assert response.status_code == 202
    body = response.json()
    assert body["storageGi"] == 10
    assert body["storage"]["currentGi"] == 10
    assert (body["storage"]["requestedGi"], body["storage"]["state"]) == (20, "waiting_for_operator")
    assert body["storage"]["requestedBy"] == "client1@example.com" and body["storage"]["requestedAt"]
    assert branch_tip(repository=git_server) == tip  # no commit at all
    assert _size(git_server) == "10Gi"
    expansion = StorageExpansion.objects.get()
    assert (expansion.state, expansion.from_gi, expansion.requested_gi, expansion.requested_by) == (
        "pending",
        10,
        20,
        user1,
    )
    assert as_user1.get(URL).json()["storage"] == body["storage"]
    assert as_user1.get("/api/clients/client1/clusters").json()[0]["storage"]["requestedGi"] == 20
    [entry] = [e for e in as_user1.get(f"{URL}/history").json() if e["action"] == "storage_request"]
    assert entry["commit"] is None and entry["changes"] == {"storageRequestGi": [None, 20]}
    assert entry["pushed"] is None  # nothing to push: not "waiting for the git remote" either
    assert entry["message"] == "client1/main: storage 10Gi -> 20Gi requested, waiting for an operator"


def test_asking_again_for_the_same_size_is_idempotent_and_another_size_is_refused(as_user1, cluster1):
    as_user1.patch(URL, {"storageGi": 20}, format="json")

    again = as_user1.patch(URL, {"storageGi": 20}, format="json")
    other = as_user1.patch(URL, {"storageGi": 30}, format="json")

    assert again.status_code == 202
    assert other.status_code == 409
    assert other.json()["code"] == "storage_expansion_pending"
    assert list(StorageExpansion.objects.values_list("requested_gi", flat=True)) == [20]
    assert ClusterChange.objects.filter(action="storage_request").count() == 1


def test_a_scale_with_a_storage_request_commits_only_the_scale(git_server, as_user1, cluster1):
    response = as_user1.patch(URL, {"replicas": 3, "storageGi": 40}, format="json")

    assert response.status_code == 202
    values = yaml.safe_load(file_read(repository=git_server, file_path=VALUES))
    assert (values["replicaCount"], values["persistence"]["size"]) == (3, "10Gi")
    assert response.json()["revision"]["message"] == "client1/main: replicas 2 -> 3 (scale up)"


def test_the_user_cancels_a_request_and_git_never_changes(git_server, as_user1, cluster1):
    tip = branch_tip(repository=git_server)
    as_user1.patch(URL, {"storageGi": 20}, format="json")

    response = as_user1.delete(f"{URL}/storage-request")

    assert response.status_code == 200
    assert response.json()["storage"]["state"] == "deployed"
    assert StorageExpansion.objects.get().state == "cancelled"
    assert branch_tip(repository=git_server) == tip
    assert as_user1.delete(f"{URL}/storage-request").json()["code"] == "not_found"
    assert as_user1.patch(URL, {"storageGi": 30}, format="json").status_code == 202  # a new one may follow


def test_a_viewer_may_not_ask_for_storage_or_cancel(client_for, viewer1, as_user1, cluster1):
    viewer = client_for(viewer1)
    assert viewer.patch(URL, {"storageGi": 20}, format="json").status_code == 403
    as_user1.patch(URL, {"storageGi": 20}, format="json")
    assert viewer.delete(f"{URL}/storage-request").status_code == 403
    assert StorageExpansion.objects.get().state == "pending"


def test_the_admin_lists_pending_requests_with_the_runbook(admin_browser, as_user1, cluster1):
    as_user1.patch(URL, {"storageGi": 20}, format="json")
    expansion = StorageExpansion.objects.get()

    listing = admin_browser.get("/admin/clusters/storageexpansion/?state__exact=pending")
    page = admin_browser.get(f"/admin/clusters/storageexpansion/{expansion.pk}/change/")
    cluster_page = admin_browser.get(f"/admin/clusters/cluster/{cluster1.pk}/change/")

    assert listing.status_code == 200 and "client1/main" in listing.content.decode()
    text = page.content.decode()
    assert (
        "kubectl -n qdrant-client1 get pvc -o name | grep -E &#x27;/qdrant-storage-qdrant-client1-main-[0-9]+$&#x27;"
        in text
    )
    assert "delete statefulset qdrant-client1-main --cascade=orphan" in text
    assert "&quot;storage&quot;:&quot;20Gi&quot;" in text
    assert "10 GiB → 20 GiB, waiting for an operator" in cluster_page.content.decode()


def test_an_operator_marks_it_done_and_the_new_size_is_committed_with_its_history(
    git_server, admin_browser, operator, as_user1, cluster1
):
    as_user1.patch(URL, {"storageGi": 20}, format="json")
    expansion = StorageExpansion.objects.get()
    chosen = {"action": "mark_done", "_selected_action": [expansion.pk]}
    asked = admin_browser.post("/admin/clusters/storageexpansion/", chosen)  # it can never shrink again
    assert asked.status_code == 200 and "can never shrink" in asked.content.decode()
    assert StorageExpansion.objects.get().state == "pending"

    response = admin_browser.post("/admin/clusters/storageexpansion/", {**chosen, "post": "yes"})

    assert response.status_code == 302
    expansion.refresh_from_db()
    assert (expansion.state, expansion.resolved_by) == ("done", operator)
    assert Cluster.objects.get(pk=cluster1.pk).storage_gi == 20
    assert _size(git_server) == "20Gi"
    head = commits_list(repository=git_server)[0]
    assert (
        head.message.splitlines()[0] == "client1/main: storage 10Gi -> 20Gi, volumes expanded by an operator"
    )
    assert head.author.email == "root@example.com"
    body = as_user1.get(URL).json()
    assert (body["storageGi"], body["storage"]["state"], body["revision"]["commit"]) == (
        20,
        "deployed",
        head.id,
    )
    actions = [entry["action"] for entry in as_user1.get(f"{URL}/history").json()]
    assert actions[:2] == ["storage_expand", "storage_request"]


def test_a_request_is_done_only_once(as_user1, cluster1, operator_staff):
    as_user1.patch(URL, {"storageGi": 20}, format="json")
    expansion = StorageExpansion.objects.get()
    storage_expansion_complete(expansion=expansion, actor=operator_staff)

    from config.errors import StorageExpansionNotFound

    with pytest.raises(StorageExpansionNotFound):
        storage_expansion_complete(expansion=expansion, actor=operator_staff)
    assert ClusterChange.objects.filter(action="storage_expand").count() == 1


def test_the_admin_cancels_a_request(admin_browser, as_user1, cluster1):
    as_user1.patch(URL, {"storageGi": 20}, format="json")
    expansion = StorageExpansion.objects.get()

    admin_browser.post(
        "/admin/clusters/storageexpansion/", {"action": "cancel", "_selected_action": [expansion.pk]}
    )

    expansion.refresh_from_db()
    assert (expansion.state, expansion.resolved_by_email) == ("cancelled", "root@example.com")
    assert Cluster.objects.get(pk=cluster1.pk).storage_gi == 10


def test_requests_are_read_only_in_the_admin(admin_browser, as_user1, cluster1):
    as_user1.patch(URL, {"storageGi": 20}, format="json")
    expansion = StorageExpansion.objects.get()
    assert admin_browser.get("/admin/clusters/storageexpansion/add/").status_code == 403
    admin_browser.post(f"/admin/clusters/storageexpansion/{expansion.pk}/change/", {"requested_gi": "99"})
    assert StorageExpansion.objects.get().requested_gi == 20


def test_a_bigger_size_in_the_cluster_admin_becomes_a_request_too(git_server, admin_browser, cluster1):
    response = admin_browser.post(
        f"/admin/clusters/cluster/{cluster1.pk}/change/",
        {"replicas": "2", "version": cluster1.version, "storage_gi": "50"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Cluster.objects.get(pk=cluster1.pk).storage_gi == 10
    assert StorageExpansion.objects.get().requested_gi == 50
    assert _size(git_server) == "10Gi"


def test_a_database_constraint_keeps_one_pending_request_per_cluster(cluster1):
    from django.db import IntegrityError, transaction

    StorageExpansion.objects.create(cluster=cluster1, from_gi=10, requested_gi=20)
    with pytest.raises(IntegrityError), transaction.atomic():
        StorageExpansion.objects.create(cluster=cluster1, from_gi=10, requested_gi=30)


def test_a_change_refused_by_git_withdraws_its_storage_request_too(settings, as_user1, cluster1):
    local = portal_repository(settings)
    files_commit(
        repository=local,
        changes={VALUES: b"replicaCount: 2\nimage: nginx\n"},  # no room for image.tag
        author=GitIdentity("Ops", "ops@example.com"),
        committer=GitIdentity("Ops", "ops@example.com"),
        message="hand edit",
        expected_tip=branch_tip(repository=local),
    )

    response = as_user1.patch(URL, {"replicas": 3, "storageGi": 20}, format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "gitops_values_conflict"
    assert not StorageExpansion.objects.exists()
    assert not ClusterChange.objects.filter(action__in=["update", "storage_request"]).exists()
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 2
