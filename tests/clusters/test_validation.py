"""Every input rule of PATCH: what is accepted, what is refused and where the error goes."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from clusters.models import Cluster, ClusterChange
from clusters.services import cluster_update

# Each request's change is delivered to git once its transaction commits, as in production:
# the test database must really commit.
pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/clients/client1/clusters/main"


@pytest.fixture
def patch(as_user1, cluster1):
    def send(body, **kwargs):
        return as_user1.patch(URL, body, format="json", **kwargs)

    return send


def _unchanged(cluster: Cluster) -> bool:
    current = Cluster.objects.get(pk=cluster.pk)
    return (current.replicas, current.version, current.storage_gi) == (
        cluster.replicas,
        cluster.version,
        cluster.storage_gi,
    ) and not ClusterChange.objects.filter(action="update").exists()


@pytest.mark.parametrize(
    ("replicas", "stored"),
    [(1, 1), (3, 3), (10, 10), ("3", 3), ("10", 10), ("03", 3)],
)
def test_replicas_accepts_integers_and_digit_strings_in_range(patch, cluster1, replicas, stored):
    response = patch({"replicas": replicas, "confirm": True})  # 1 is a scale-down
    assert response.status_code == 200
    assert response.json()["replicas"] == stored
    assert Cluster.objects.get(pk=cluster1.pk).replicas == stored


@pytest.mark.parametrize(
    "replicas",
    [
        "1\nimage: x",  # the seed's YAML injection
        "3\n",
        " 3",
        "3 ",
        "",
        "3.0",
        "+3",
        "-1",
        "0x3",
        "1e1",
        "٣",  # Arabic-Indic digit three: a Unicode digit, not an ASCII one
        "３",  # fullwidth three
        "9" * 5000,
        3.0,
        3.5,
        True,
        False,
        -1,
        0,
        11,
        10**30,
        None,
        [3],
        {"value": 3},
    ],
)
def test_replicas_refuses_anything_but_a_whole_number_in_range(patch, cluster1, replicas):
    response = patch({"replicas": replicas})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    assert list(body["fields"]) == ["replicas"]
    assert _unchanged(cluster1)


def test_replicas_range_follows_the_settings(patch, cluster1, settings):
    settings.REPLICAS_MIN, settings.REPLICAS_MAX = 2, 5
    assert patch({"replicas": 6}).json()["fields"]["replicas"] == ["Ensure this value is between 2 and 5."]
    assert patch({"replicas": 1}).status_code == 400
    assert patch({"replicas": 5}).status_code == 200


def test_an_allowed_version_is_accepted(patch, cluster1, settings):
    Cluster.objects.filter(pk=cluster1.pk).update(version=settings.QDRANT_VERSIONS[-2])
    assert patch({"version": settings.QDRANT_VERSIONS[-1]}).status_code == 200


@pytest.mark.parametrize("version", ["v9.9.9", "", "latest", "v1.15.5\nimage: x", 1, None, ["v1.15.5"]])
def test_version_outside_the_allowed_list_is_refused(patch, cluster1, version):
    response = patch({"version": version})
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["version"]
    assert _unchanged(cluster1)


def test_storage_may_stay_as_it_is(patch, cluster1):
    response = patch({"storageGi": 10})
    assert response.status_code == 200
    assert response.json()["storage"]["state"] == "deployed"


@pytest.mark.parametrize("storage", [11, 1024])
def test_more_storage_up_to_the_maximum_is_a_request_for_an_operator(patch, cluster1, storage):
    response = patch({"storageGi": storage})
    assert response.status_code == 202
    body = response.json()
    assert body["storageGi"] == 10
    assert (body["storage"]["requestedGi"], body["storage"]["state"]) == (storage, "waiting_for_operator")


@pytest.mark.parametrize("storage", [9, 1, 0, -5, 1025, "20", 20.0, True, None])
def test_storage_refuses_shrinking_exceeding_the_maximum_and_non_integers(patch, cluster1, storage):
    response = patch({"storageGi": storage})
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["storageGi"]
    assert _unchanged(cluster1)


def test_shrinking_storage_says_it_only_grows(patch, cluster1):
    patch({"storageGi": 30})  # waits for an operator: the cluster still has 10 GiB
    response = patch({"storageGi": 9})
    assert response.status_code == 400
    assert "only grow" in response.json()["fields"]["storageGi"][0]
    assert Cluster.objects.get(pk=cluster1.pk).storage_gi == 10


def test_unknown_fields_are_refused(patch, cluster1):
    response = patch({"replicas": 3, "image": "evil:latest"})
    assert response.status_code == 400
    assert response.json()["fields"] == {"image": ["Unknown field."]}
    assert _unchanged(cluster1)


@pytest.mark.parametrize("body", [{}, [], [{"replicas": 3}], "3", 3, None])
def test_a_body_without_any_field_is_refused(patch, cluster1, body):
    response = patch(body)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert _unchanged(cluster1)


def test_malformed_json_is_refused(as_user1, cluster1):
    response = as_user1.patch(URL, '{"replicas": 3', content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"
    assert _unchanged(cluster1)


def test_one_bad_field_refuses_the_whole_patch(patch, cluster1):
    response = patch({"replicas": 4, "version": "v0.0.1"})
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["version"]
    assert _unchanged(cluster1)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"replicas": True}, "replicas"),
        ({"replicas": "3"}, "replicas"),
        ({"replicas": 3.0}, "replicas"),
        ({"replicas": 11}, "replicas"),
        ({"version": "v0.0.1"}, "version"),
        ({"storage_gi": 5}, "storage_gi"),
    ],
)
def test_the_service_validates_on_its_own(cluster1, values, field):
    # The admin and any future caller go through the service, not the serializer.
    with pytest.raises(ValidationError) as excinfo:
        cluster_update(cluster=cluster1, actor=None, **values)
    assert list(excinfo.value.message_dict) == [field]
    assert _unchanged(cluster1)
