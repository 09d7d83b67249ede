"""Versions move only forwards, one minor at a time; the API offers exactly what it accepts."""

from __future__ import annotations

from io import StringIO

import pytest
import yaml
from django.core.management import call_command

from clusters.models import Cluster, ClusterChange
from clusters.versions import (
    version_parse,
    version_problem,
    version_supports_alt_api_key,
    version_upgrades,
)
from gitops.repository import file_read

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/clients/client1/clusters/main"
OFFERED = ["v1.16.2", "v1.16.3", "v1.17.0", "v1.17.1", "v1.18.3", "v1.19.0"]


@pytest.fixture
def offered(settings):
    settings.QDRANT_VERSIONS = OFFERED
    return OFFERED


def _on(cluster: Cluster, version: str) -> None:
    Cluster.objects.filter(pk=cluster.pk).update(version=version)


@pytest.mark.parametrize(
    ("current", "upgrades"),
    [
        ("v1.16.2", ["v1.16.3", "v1.17.0", "v1.17.1"]),
        ("v1.16.3", ["v1.17.0", "v1.17.1"]),
        ("v1.17.0", ["v1.17.1", "v1.18.3"]),
        ("v1.18.1", ["v1.18.3", "v1.19.0"]),  # a patch release that is not offered any more
        ("v1.15.5", ["v1.16.2", "v1.16.3"]),
        ("v1.19.0", []),
        ("v1.13.6", []),  # its next minor is not offered
    ],
)
def test_the_cluster_lists_its_version_then_where_it_may_go(as_user1, cluster1, offered, current, upgrades):
    _on(cluster1, current)
    assert as_user1.get(URL).json()["allowedVersions"] == [current, *upgrades]


@pytest.mark.parametrize(
    ("current", "target"),
    [("v1.16.2", "v1.16.3"), ("v1.16.3", "v1.17.1"), ("v1.17.0", "v1.17.1"), ("v1.18.3", "v1.19.0")],
)
def test_patch_upgrades_and_the_next_minor_are_committed(
    git_server, as_user1, cluster1, offered, current, target
):
    _on(cluster1, current)
    call_command("gitops_sync", stdout=StringIO())  # git runs that version too, as the portal wrote it
    response = as_user1.patch(URL, {"version": target}, format="json")
    assert response.status_code == 200, response.json()
    values = yaml.safe_load(file_read(repository=git_server, file_path="clients/client1/main/values.yaml"))
    assert values["image"]["tag"] == target
    assert ClusterChange.objects.get(action="update").changes == {"version": [current, target]}


@pytest.mark.parametrize(
    ("current", "target", "says", "allowed"),
    [
        ("v1.18.3", "v1.17.1", "does not support downgrades", "v1.19.0"),
        ("v1.17.1", "v1.16.3", "does not support downgrades", "v1.18.3"),
        ("v1.16.3", "v1.18.3", "one minor version at a time", "v1.17.0, v1.17.1"),
        ("v1.16.2", "v1.19.0", "one minor version at a time", "v1.16.3, v1.17.0, v1.17.1"),
        ("v1.17.0", "v1.17.2", "is not an offered version", "v1.17.1, v1.18.3"),
        ("v1.17.0", "latest", "is not an offered version", "v1.17.1, v1.18.3"),
    ],
)
def test_downgrades_minor_skips_and_unknown_versions_are_refused_naming_the_next_ones(
    git_server, as_user1, cluster1, offered, current, target, says, allowed
):
    _on(cluster1, current)
    response = as_user1.patch(URL, {"version": target}, format="json")

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_request"
    [message] = body["fields"]["version"]
    assert says in message
    assert message.endswith(f"Allowed from {current}: {allowed}.")
    assert Cluster.objects.get(pk=cluster1.pk).version == current
    assert not ClusterChange.objects.filter(action="update").exists()


def test_the_newest_version_says_no_upgrade_is_offered(as_user1, cluster1, offered):
    _on(cluster1, "v1.19.0")
    message = as_user1.patch(URL, {"version": "v1.18.3"}, format="json").json()["fields"]["version"][0]
    assert message.endswith("No upgrade from v1.19.0 is offered yet.")


def test_sending_the_current_version_changes_nothing_even_when_it_is_retired(as_user1, cluster1, offered):
    _on(cluster1, "v1.15.5")
    response = as_user1.patch(URL, {"version": "v1.15.5"}, format="json")
    assert response.status_code == 200
    assert not ClusterChange.objects.filter(action="update").exists()


def test_a_new_cluster_may_start_on_any_offered_version(client1, offered):
    from clusters.services import cluster_create

    assert (
        cluster_create(client=client1, slug="old", actor=None, version="v1.16.2").cluster.version == "v1.16.2"
    )


def test_the_admin_offers_only_the_allowed_versions(client, user_factory, cluster1, offered):
    operator = user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)
    client.force_login(operator)
    _on(cluster1, "v1.17.0")
    form = client.get(f"/admin/clusters/cluster/{cluster1.pk}/change/").context["adminform"].form
    assert [value for value, _ in form.fields["version"].choices] == ["v1.17.0", "v1.17.1", "v1.18.3"]
    response = client.post(
        f"/admin/clusters/cluster/{cluster1.pk}/change/",
        {"replicas": "2", "version": "v1.19.0", "storage_gi": "10"},
    )
    assert response.status_code == 200
    assert Cluster.objects.get(pk=cluster1.pk).version == "v1.17.0"


def test_the_defaults_follow_the_qdrant_chart_1_19_0():
    from django.conf import settings

    assert settings.QDRANT_CHART_VERSION == "1.19.0"
    assert settings.QDRANT_VERSIONS == ["v1.16.3", "v1.17.1", "v1.18.3", "v1.19.0"]
    assert settings.QDRANT_DEFAULT_VERSION == "v1.19.0"


# --- The policy itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "parsed"),
    [("v1.19.0", (1, 19, 0)), ("1.2.3", (1, 2, 3)), ("latest", None), ("v1.19", None), ("v1.19.0-gpu", None)],
)
def test_versions_parse_as_releases_only(version, parsed):
    assert version_parse(version) == parsed


def test_the_policy_functions_agree_with_each_other():
    for current in ["v1.15.5", *OFFERED]:
        upgrades = version_upgrades(current=current, offered=OFFERED)
        for target in OFFERED:
            problem = version_problem(current=current, target=target, offered=OFFERED)
            assert (problem is None) == (target in upgrades or target == current), (current, target)


@pytest.mark.parametrize(
    ("version", "supported"), [("v1.16.3", False), ("v1.17.0", True), ("v1.19.0", True), ("2.0.0", True)]
)
def test_the_alternate_api_key_exists_from_qdrant_v1_17_0(version, supported):
    assert version_supports_alt_api_key(version) is supported
