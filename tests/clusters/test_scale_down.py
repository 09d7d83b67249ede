"""A scale-down needs an explicit confirmation: Qdrant does not move shards off a peer that disappears."""

from __future__ import annotations

import pytest
import yaml

from clusters.models import Cluster, ClusterChange
from gitops.repository import branch_tip, commits_list, file_read
from tests.conftest import portal_repository
from tests.helpers import hand_commit

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/clients/client1/clusters/main"
VALUES = "clients/client1/main/values.yaml"


def _replica_count(repository) -> int:
    return yaml.safe_load(file_read(repository=repository, file_path="clients/client1/main/values.yaml"))[
        "replicaCount"
    ]


@pytest.mark.parametrize("body", [{"replicas": 1}, {"replicas": 1, "confirm": False}, {"replicas": "1"}])
def test_a_scale_down_without_confirmation_is_409_and_changes_nothing(git_server, as_user1, cluster1, body):
    tip = branch_tip(repository=git_server)

    response = as_user1.patch(URL, body, format="json")

    assert response.status_code == 409
    error = response.json()
    assert error["code"] == "confirmation_required"
    assert "from 2 replicas to 1 removes 1 Qdrant peer, the highest-numbered pod." in error["detail"]
    assert "does not move shards" in error["detail"] and '"confirm": true' in error["detail"]
    # A peer gone but not removed still votes: too many of them and Qdrant changes nothing cluster-wide.
    assert "DELETE /cluster/peer/{peer_id}" in error["detail"]
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 2
    assert not ClusterChange.objects.filter(action="update").exists()
    assert branch_tip(repository=git_server) == tip


def test_a_refused_scale_down_takes_the_rest_of_the_patch_with_it(as_user1, cluster1, settings):
    Cluster.objects.filter(pk=cluster1.pk).update(version="v1.18.3", replicas=3)
    response = as_user1.patch(URL, {"replicas": 1, "version": "v1.19.0", "storageGi": 20}, format="json")
    assert response.status_code == 409
    assert (
        "from 3 replicas to 1 removes 2 Qdrant peers, the highest-numbered pods." in response.json()["detail"]
    )
    cluster = Cluster.objects.get(pk=cluster1.pk)
    assert (cluster.replicas, cluster.version, cluster.storage_expansions.count()) == (3, "v1.18.3", 0)


def test_a_confirmed_scale_down_is_committed_and_recorded_as_such(git_server, as_user1, user1, cluster1):
    response = as_user1.patch(URL, {"replicas": 1, "confirm": True}, format="json")

    assert response.status_code == 200
    assert response.json()["replicas"] == 1
    assert _replica_count(git_server) == 1
    head = commits_list(repository=git_server)[0]
    assert head.message.splitlines()[0] == "client1/main: replicas 2 -> 1 (scale down)"
    entry = as_user1.get(f"{URL}/history").json()[0]
    assert (entry["message"], entry["changes"]) == (
        "client1/main: replicas 2 -> 1 (scale down)",
        {"replicas": [2, 1]},
    )


def test_scale_up_needs_no_confirmation_and_says_so_in_history(git_server, as_user1, cluster1):
    assert as_user1.patch(URL, {"replicas": 4}, format="json").status_code == 200
    assert as_user1.get(f"{URL}/history").json()[0]["message"] == "client1/main: replicas 2 -> 4 (scale up)"


@pytest.mark.parametrize("confirm", ["maybe", 1.5, [True], {"a": 1}, "yes", "true", "1", 1, "on"])
def test_confirm_must_be_a_json_boolean(as_user1, cluster1, confirm):
    """The one flag that makes a destructive change explicit is sent as the schema says."""
    response = as_user1.patch(URL, {"replicas": 1, "confirm": confirm}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"] == {"confirm": ["Must be true or false."]}
    assert as_user1.get(URL).json()["replicas"] == 2


def test_confirm_alone_is_not_a_change(as_user1, cluster1):
    response = as_user1.patch(URL, {"confirm": True}, format="json")
    assert response.status_code == 400


def test_the_admin_asks_for_the_confirmation_too(client, user_factory, cluster1):
    operator = user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)
    client.force_login(operator)
    change_url = f"/admin/clusters/cluster/{cluster1.pk}/change/"
    data = {"replicas": "1", "version": cluster1.version, "storage_gi": "10"}

    refused = client.post(change_url, data)
    assert refused.status_code == 200
    said = str(refused.context["adminform"].form.errors["confirm_scale_down"])
    assert "does not move shards" in said and "Confirm scale-down" in said and '"confirm"' not in said
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 2

    assert client.post(change_url, {**data, "confirm_scale_down": "on"}).status_code == 302
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 1
    assert ClusterChange.objects.get(action="update").message == "client1/main: replicas 2 -> 1 (scale down)"


# --- Values edited by hand in git -----------------------------------------------------------------


def _hand_edit(repository, *, replicas: int | None = None, version: str | None = None) -> str:
    """Someone edits the cluster's values file in git, around the portal; the new tip."""
    values = yaml.safe_load(file_read(repository=repository, file_path=VALUES))
    values["resources"] = {"requests": {"cpu": "2"}}
    if replicas is not None:
        values["replicaCount"] = replicas
    if version is not None:
        values["image"]["tag"] = version
    return hand_commit(repository, VALUES, yaml.safe_dump(values).encode())


@pytest.mark.parametrize(
    ("edit", "patch", "said"),
    [
        # "2 -> 3 (scale up)" would commit 4 -> 3: a peer removed that nobody confirmed removing.
        ({"replicas": 4}, {"replicas": 3}, "replicaCount is 4 in git where the portal has 2"),
        (
            {"replicas": 4},
            {"replicas": 1, "confirm": True},
            "replicaCount is 4 in git where the portal has 2",
        ),
        # "v1.18.3 -> v1.19.0" would commit v1.19.1 -> v1.19.0: a downgrade, which Qdrant does not support.
        (
            {"version": "v1.19.1"},
            {"version": "v1.19.0"},
            "image.tag is v1.19.1 in git where the portal has v1.18.3",
        ),
    ],
)
def test_a_change_to_a_value_edited_by_hand_in_git_is_refused_not_applied_as_another_change(
    git_server, settings, as_user1, cluster1, edit, patch, said
):
    Cluster.objects.filter(pk=cluster1.pk).update(version="v1.18.3")
    local = portal_repository(settings)
    tip = _hand_edit(local, **edit)

    response = as_user1.patch(URL, patch, format="json")

    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["code"] == "gitops_values_conflict"
    assert VALUES in body["detail"] and said in body["detail"], body["detail"]
    cluster = Cluster.objects.get(pk=cluster1.pk)
    assert (cluster.replicas, cluster.version) == (2, "v1.18.3")  # nothing was changed
    assert not ClusterChange.objects.filter(action="update").exists()
    assert branch_tip(repository=local) == tip  # nor committed


def test_taking_gits_value_first_lets_the_scale_down_from_it_be_confirmed_and_said(
    git_server, settings, as_user1, cluster1
):
    local = portal_repository(settings)
    _hand_edit(local, replicas=4)

    taken = as_user1.patch(URL, {"replicas": 4}, format="json")  # what git holds already
    unconfirmed = as_user1.patch(URL, {"replicas": 3}, format="json")
    confirmed = as_user1.patch(URL, {"replicas": 3, "confirm": True}, format="json")

    assert taken.status_code == 200, taken.json()
    assert unconfirmed.status_code == 409 and unconfirmed.json()["code"] == "confirmation_required"
    assert confirmed.status_code == 200, confirmed.json()
    assert _replica_count(git_server) == 3
    head = commits_list(repository=git_server)[0]
    assert head.message.splitlines()[0] == "client1/main: replicas 4 -> 3 (scale down)"
    values = yaml.safe_load(file_read(repository=git_server, file_path=VALUES))
    assert values["resources"] == {"requests": {"cpu": "2"}}  # the rest of the hand edit is kept


def test_the_admins_scale_up_over_more_replicas_in_git_is_refused_on_the_page(
    git_server, settings, client, user_factory, cluster1
):
    """The operator's "1 -> 2 (scale up)" must not commit 4 -> 2 unasked, described as a scale-up."""
    operator = user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)
    client.force_login(operator)
    Cluster.objects.filter(pk=cluster1.pk).update(replicas=1)
    local = portal_repository(settings)
    tip = _hand_edit(local, replicas=4)
    data = {"replicas": "2", "version": cluster1.version, "storage_gi": "10"}

    response = client.post(f"/admin/clusters/cluster/{cluster1.pk}/change/", data)

    assert response.status_code == 200
    error = response.context["adminform"].form.non_field_errors()[0]
    assert error.startswith("Nothing was saved: ") and VALUES in error
    assert "replicaCount is 4 in git where the portal has 1" in error
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 1
    assert branch_tip(repository=local) == tip
