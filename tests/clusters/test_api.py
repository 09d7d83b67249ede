"""The clusters API as a client uses it: list, read, scale, history."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from clusters.models import Cluster, ClusterChange
from clusters.services import client_create, cluster_create
from tests.helpers import access_token_made

# Each request's change is delivered to git once its transaction commits, as in production:
# the test database must really commit.
pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/clients/client1/clusters/main"


def test_client_user_lists_only_its_own_clients(as_user1, cluster1, cluster2):
    response = as_user1.get("/api/clients")
    assert response.status_code == 200
    assert response.json() == [{"slug": "client1", "name": "Client One"}]


def test_client_user_lists_its_clusters_with_endpoint_and_creation_commit(as_user1, cluster1, cluster2):
    response = as_user1.get("/api/clients/client1/clusters")
    assert response.status_code == 200
    [cluster] = response.json()
    assert cluster["client"] == "client1"
    assert cluster["name"] == "main"
    assert cluster["replicas"] == 2
    assert cluster["endpoint"] == {
        "rest": "https://main.client1.qdrant.local:6333",
        "grpc": "main.client1.qdrant.local:6334",
    }
    assert len(cluster["revision"]["commit"]) == 40  # the creation was committed to git
    assert cluster["revision"]["pushed"] is True  # no remote configured: the local branch is the source


def test_cluster_detail_has_the_contract_fields_and_form_limits(as_user1, cluster1, settings):
    response = as_user1.get(URL)
    assert response.status_code == 200
    body = response.json()
    assert {"client", "name", "replicas", "version", "storageGi", "endpoint", "revision"} <= set(body)
    assert body["version"] == settings.QDRANT_DEFAULT_VERSION
    assert body["storageGi"] == settings.STORAGE_GI_DEFAULT
    assert body["storage"] == {
        "currentGi": settings.STORAGE_GI_DEFAULT,
        "requestedGi": None,
        "state": "deployed",
        "requestedAt": None,
        "requestedBy": None,
    }
    assert (body["rotation"], body["rotationMode"]) == (None, "two_phase")
    assert body["allowedVersions"] == [settings.QDRANT_DEFAULT_VERSION]  # the newest: nothing to move to
    assert (body["replicasMin"], body["replicasMax"]) == (settings.REPLICAS_MIN, settings.REPLICAS_MAX)
    assert "apiKey" not in body and "api_key_encrypted" not in body


def test_client_user_scales_its_cluster_and_the_change_is_recorded(as_user1, user1, cluster1):
    response = as_user1.patch(URL, {"replicas": 3}, format="json")

    assert response.status_code == 200
    assert response.json()["replicas"] == 3
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 3
    change = ClusterChange.objects.filter(action="update").get()
    assert change.cluster == cluster1
    assert change.actor == user1
    assert change.actor_email == "client1@example.com"
    assert change.changes == {"replicas": [2, 3]}
    assert change.message == "client1/main: replicas 2 -> 3 (scale up)"
    assert len(change.commit) == 40 and change.pushed is True  # delivered to git before the answer


def test_patch_upgrades_the_version_and_asks_for_storage_in_one_request(as_user1, cluster1, settings):
    Cluster.objects.filter(pk=cluster1.pk).update(version="v1.18.3")
    response = as_user1.patch(URL, {"version": "v1.19.0", "storageGi": 20}, format="json")

    assert response.status_code == 202  # the storage waits for an operator
    body = response.json()
    assert (body["version"], body["storageGi"]) == ("v1.19.0", 10)
    assert (body["storage"]["requestedGi"], body["storage"]["state"]) == (20, "waiting_for_operator")
    assert body["revision"]["pushed"] is True
    change = ClusterChange.objects.filter(action="update").get()
    assert change.changes == {"version": ["v1.18.3", "v1.19.0"]}
    assert change.message == "client1/main: version v1.18.3 -> v1.19.0"


@pytest.mark.parametrize("body", [{"replicas": 2}, {"replicas": "2"}, {"storageGi": 10}])
def test_patch_with_unchanged_values_records_no_change(as_user1, cluster1, body):
    before = ClusterChange.objects.count()
    response = as_user1.patch(URL, body, format="json")
    assert response.status_code == 200
    assert response.json()["replicas"] == 2
    assert ClusterChange.objects.count() == before


def test_revision_is_the_latest_committed_change_from_the_database(as_user1, cluster1):
    create = cluster1.changes.get()
    revision = as_user1.get(URL).json()["revision"]
    assert (revision["commit"], revision["author"]) == (create.commit, None)  # created by the system
    assert revision["committedAt"]

    as_user1.patch(URL, {"replicas": 3}, format="json")
    update = ClusterChange.objects.get(action="update")
    revision = as_user1.get(URL).json()["revision"]
    assert (revision["commit"], revision["pushed"], revision["author"]) == (
        update.commit,
        True,
        "client1@example.com",
    )
    listed = as_user1.get("/api/clients/client1/clusters").json()[0]["revision"]
    assert listed["commit"] == update.commit

    # A change still waiting in the outbox is not a revision yet.
    ClusterChange.objects.filter(pk=update.pk).update(commit="", pushed=False)
    assert as_user1.get(URL).json()["revision"]["commit"] == create.commit


def test_history_tells_the_clients_admins_which_credential_asked_and_from_where_but_not_for_an_operator(
    as_user1, client_for, operator_staff, admin1, user1, cluster1
):
    token, secret = access_token_made(user1, name="deploy", clients={"client1": ["view", "configure"]})
    as_user1.patch(URL, {"replicas": 3}, format="json", REMOTE_ADDR="203.0.113.5")
    by_token = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}", REMOTE_ADDR="198.51.100.7")
    assert by_token.patch(URL, {"replicas": 4}, format="json").status_code in (200, 202)
    client_for(operator_staff).patch(URL, {"replicas": 5}, format="json")

    history = client_for(admin1).get(f"{URL}/history").json()
    session = ClusterChange.objects.filter(action="update").earliest("id").credential
    assert re.fullmatch(r"session [0-9a-f-]{36}", session)
    assert [(entry["via"], entry["ip"]) for entry in history] == [
        (None, None),  # an operator's address and session are the operators' own
        (f"personal access token #{token.pk} “deploy”", "198.51.100.7"),
        (session, "203.0.113.5"),
        (None, None),  # created in the admin
    ]
    # Who used what from where is the audit trail's to tell: not to members who may not read it,
    # nor to tokens, whatever their scopes.
    for reader in (as_user1, by_token):
        assert {(entry["via"], entry["ip"]) for entry in reader.get(f"{URL}/history").json()} == {
            (None, None)
        }
    # The operators still see theirs, in the admin.
    by_operator = ClusterChange.objects.filter(action="update").latest("id")
    assert by_operator.by_operator and by_operator.credential.startswith("session ")
    assert by_operator.ip == "127.0.0.1"


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("migrated_back_afterwards")
def test_changes_recorded_before_by_todays_operators_keep_their_details_from_the_client(
    operator_staff, user1, cluster1
):
    then = MigrationExecutor(connection).migrate([("clusters", "0008_clientauditevent_by_operator")])
    for actor in (operator_staff, user1):
        then.apps.get_model("clusters", "ClusterChange").objects.create(
            cluster_id=cluster1.pk, actor_id=actor.pk, action="update", changes={}, message=actor.email
        )
    after = MigrationExecutor(connection).migrate([("clusters", "0009_clusterchange_credential_ip")])

    changes = after.apps.get_model("clusters", "ClusterChange").objects.filter(action="update")
    assert {change.message: change.by_operator for change in changes} == {
        "ops@example.com": True,
        "client1@example.com": False,
    }


def test_every_cluster_the_user_may_see_comes_in_one_request(
    client_for, user1, operator_staff, cluster1, cluster2, django_assert_max_num_queries
):
    """The Clusters page of an operator with hundreds of clients asked once per client."""
    assert [(c["client"], c["name"]) for c in client_for(user1).get("/api/clusters").json()] == [
        ("client1", "main")
    ]

    operator = client_for(operator_staff)
    few = operator.get("/api/clusters")
    assert [(c["client"], c["name"]) for c in few.json()] == [("client1", "main"), ("client2", "main")]
    for number in range(3, 13):
        cluster_create(
            client=client_create(slug=f"client{number}", name=f"C{number}"), slug="main", actor=None
        )
    with django_assert_max_num_queries(12) as counted:  # not one request's worth per client
        many = operator.get("/api/clusters")
    assert len(many.json()) == 12 and many.json()[0] == operator.get(f"{URL}").json()
    assert len(counted.captured_queries) <= 12


def test_a_long_history_comes_a_page_at_a_time_newest_first(as_user1, cluster1, monkeypatch):
    """A cluster changed thousands of times answers its history in pages, not in one growing body."""
    from clusters import selectors

    monkeypatch.setattr(selectors, "HISTORY_PAGE_SIZE", 5)
    ClusterChange.objects.bulk_create(
        ClusterChange(cluster=cluster1, action="update", message=f"change {n}", changes={}) for n in range(11)
    )
    pages, before = [], None
    while True:
        page = as_user1.get(f"{URL}/history" + (f"?before={before}" if before else "")).json()
        pages.append([entry["message"] for entry in page])
        if len(page) < 5:
            break
        before = page[-1]["id"]

    assert [len(page) for page in pages] == [5, 5, 2]  # the eleven, then the cluster's creation
    assert pages[0][0] == "change 10" and pages[2][-1].startswith("client1/main: create")
    refused = as_user1.get(f"{URL}/history?before=a")
    assert (refused.status_code, list(refused.json()["fields"])) == (400, ["before"])


def test_history_shows_who_changed_what_newest_first(as_user1, client_for, operator_staff, cluster1):
    as_user1.patch(URL, {"replicas": 3}, format="json")
    client_for(operator_staff).patch(URL, {"replicas": 4}, format="json")

    response = as_user1.get(f"{URL}/history")
    assert response.status_code == 200
    history = response.json()
    assert [entry["changes"] for entry in history] == [
        {"replicas": [3, 4]},
        {"replicas": [2, 3]},
        {"replicas": [None, 2], "version": [None, cluster1.version], "storageGi": [None, 10]},
    ]
    assert [entry["author"] for entry in history] == ["ops@example.com", "client1@example.com", None]
    newest = history[0]
    assert set(newest) >= {"commit", "author", "at", "message", "changes"}
    assert newest["commit"] == ClusterChange.objects.filter(action="update").latest("id").commit
    assert len(newest["commit"]) == 40
    assert newest["message"] == "client1/main: replicas 3 -> 4 (scale up)"


def test_operator_staff_sees_every_client_and_scales_any_cluster(
    client_for, operator_staff, cluster1, cluster2
):
    api = client_for(operator_staff)
    assert [c["slug"] for c in api.get("/api/clients").json()] == ["client1", "client2"]
    response = api.patch("/api/clients/client2/clusters/main", {"replicas": 5}, format="json")
    assert response.status_code == 200
    assert Cluster.objects.get(pk=cluster2.pk).replicas == 5


def test_client_without_clusters_lists_none(client_for, user_factory, client1):
    from clusters.services import grant_set

    user = user_factory()
    grant_set(user=user, client=client1, role="viewer")
    assert client_for(user).get("/api/clients/client1/clusters").json() == []


def test_anonymous_request_is_refused(api_client, cluster1):
    for url in ["/api/clients", "/api/clients/client1/clusters", URL, f"{URL}/credentials", f"{URL}/history"]:
        response = api_client.get(url)
        assert response.status_code == 403, url
        assert response.json()["code"] == "not_authenticated"
    assert api_client.patch(URL, {"replicas": 3}, format="json").status_code == 403
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 2


def test_browser_session_scales_with_the_csrf_header_and_not_without(auth_client, user1, cluster1):
    browser = auth_client(user1)
    browser.handler.enforce_csrf_checks = True  # as a browser request: the test client skips CSRF by default
    assert browser.patch(URL, {"replicas": 3}, format="json").status_code == 200

    browser.credentials()  # drop the X-CSRFToken header, keep the cookies
    response = browser.patch(URL, {"replicas": 4}, format="json")
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 3


def test_openapi_document_describes_every_clusters_endpoint_with_its_errors(api_client, db):
    document = api_client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = document["paths"]
    cluster = "/api/clients/{client}/clusters/{cluster}"
    expected = {
        ("/api/clients", "get"): {"200", "403"},
        ("/api/clients/{client}/clusters", "get"): {"200", "403"},
        (cluster, "get"): {"200", "403", "404"},
        (cluster, "patch"): {"200", "202", "400", "403", "404"},
        (f"{cluster}/credentials", "get"): {"200", "403", "404"},
        (f"{cluster}/credentials/rotate", "post"): {"200", "403", "404"},
        (f"{cluster}/history", "get"): {"200", "403", "404"},
    }
    expected[(cluster, "patch")] |= {"409"}
    expected[(f"{cluster}/credentials/rotate", "post")] |= {"409"}
    expected[(f"{cluster}/credentials/rotate/finish", "post")] = {"200", "403", "404", "409"}
    expected[(f"{cluster}/storage-request", "delete")] = {"200", "403", "404"}
    for (path, method), statuses in expected.items():
        responses = paths[path][method]["responses"]
        assert statuses <= set(responses), (path, method)
        for status in statuses - {"200", "202"}:
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)
    patch_body = paths[cluster]["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert patch_body["$ref"].endswith("ClusterUpdateInputRequest")
    assert set(paths) >= {path for path, _ in expected}


@pytest.mark.parametrize("name", ["Client1", "client_1", "-client1", "c" * 41])
def test_a_client_or_cluster_name_no_client_can_have_is_404_as_the_schema_says(as_user1, cluster1, name):
    for path in (f"/api/clients/{name}/clusters", f"/api/clients/client1/clusters/{name}"):
        response = as_user1.get(path)
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), path
    assert as_user1.get("/api/clients/client1/clusters/main").status_code == 200


def test_a_cluster_the_client_does_not_have_is_404_naming_what_was_asked_for(
    as_user1, client_for, user2, cluster1
):
    """The member learns which name missed where; an outsider still learns nothing of the client."""
    missing = as_user1.get("/api/clients/client1/clusters/nope")
    assert missing.status_code == 404
    assert missing.json() == {
        "code": "not_found",
        "detail": f"{cluster1.client.name} has no cluster named “nope”.",
    }
    as_user2 = client_for(user2)
    outsider = as_user2.get("/api/clients/client1/clusters/nope")
    assert outsider.status_code == as_user2.get("/api/clients/client1/clusters/main").status_code == 403
