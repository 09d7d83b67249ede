"""Services: what they record, what they refuse, and what they return for GitOps delivery."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from clusters.models import Client, Cluster, ClusterChange
from clusters.selectors import cluster_credentials, cluster_detail, cluster_revision
from clusters.services import (
    ClusterChangeResult,
    client_create,
    client_update,
    cluster_create,
    cluster_credentials_rotate,
    cluster_update,
)
from tests.clusters.conftest import shown_to


def test_cluster_create_generates_keys_and_records_the_creation(client1, user1, settings):
    result = cluster_create(client=client1, slug="prod", actor=user1, replicas=3)

    assert isinstance(result, ClusterChangeResult) and result.changed
    cluster = Cluster.objects.get(pk=result.cluster.pk)
    assert (cluster.replicas, cluster.version, cluster.storage_gi) == (
        3,
        settings.QDRANT_DEFAULT_VERSION,
        settings.STORAGE_GI_DEFAULT,
    )
    assert result.change.action == "create"
    assert result.change.actor_email == "client1@example.com"
    assert result.change.actor_name == "Client One User"
    assert result.change.changes == {
        "replicas": [None, 3],
        "version": [None, settings.QDRANT_DEFAULT_VERSION],
        "storageGi": [None, settings.STORAGE_GI_DEFAULT],
    }
    assert result.change.message.startswith("client1/prod: created with replicas 3")
    credentials = cluster_credentials(cluster=cluster)
    assert credentials.api_key != credentials.read_only_api_key


@pytest.mark.parametrize(
    ("slug", "field"),
    [("Main", "slug"), ("-main", "slug"), ("a" * 41, "slug"), ("main", "slug")],
)
def test_cluster_create_refuses_bad_or_duplicate_slugs(cluster1, slug, field):
    with pytest.raises(ValidationError) as excinfo:
        cluster_create(client=cluster1.client, slug=slug, actor=None)
    assert list(excinfo.value.message_dict) == [field]
    assert Cluster.objects.count() == 1


def test_the_release_name_leaves_room_for_the_pods_revision_label(cluster1):
    # qdrant-client1-<slug>: 52 characters is the most, so that <statefulset>-<10-character
    # revision hash> still fits a label value's 63.
    assert cluster_create(client=cluster1.client, slug="a" * 37, actor=None).cluster.slug == "a" * 37
    with pytest.raises(ValidationError) as excinfo:
        cluster_create(client=cluster1.client, slug="b" * 38, actor=None)
    assert excinfo.value.message_dict["slug"] == [
        "Client and cluster names together are too long: qdrant-<client>-<cluster> must fit "
        "in 52 characters (Kubernetes names its pods after it)."
    ]


@pytest.mark.django_db(transaction=True)
def test_cluster_update_returns_the_cluster_and_its_change_for_delivery(cluster1, user1):
    result = cluster_update(cluster=cluster1, actor=user1, replicas=3, storage_gi=15)

    assert result.changed
    assert result.cluster.replicas == 3 and result.cluster.storage_gi == 10  # storage waits for an operator
    assert result.change.pk and result.change.cluster_id == cluster1.pk
    assert result.change.changes == {"replicas": [2, 3]}
    assert result.change.message == "client1/main: replicas 2 -> 3 (scale up)"
    assert len(result.change.commit) == 40 and result.change.pushed  # delivered once committed
    assert result.storage_expansion_created
    assert (result.storage_expansion.from_gi, result.storage_expansion.requested_gi) == (10, 15)


def test_cluster_update_with_current_values_returns_no_change(cluster1, user1):
    result = cluster_update(cluster=cluster1, actor=user1, replicas=2, version=cluster1.version)
    assert not result.changed and result.change is None
    assert result.cluster.pk == cluster1.pk
    assert ClusterChange.objects.filter(action="update").count() == 0


def test_cluster_update_reads_the_current_row_not_a_stale_instance(cluster1, user1):
    stale = Cluster.objects.get(pk=cluster1.pk)
    cluster_update(cluster=cluster1, actor=user1, replicas=5)
    result = cluster_update(cluster=stale, actor=user1, replicas=6)
    assert result.change.changes == {"replicas": [5, 6]}


def test_credentials_rotation_records_a_change_without_keys(cluster1, user1):
    before = cluster_credentials(cluster=cluster1)
    result = cluster_credentials_rotate(cluster=cluster1, shown_to=shown_to(user1))
    after = cluster_credentials(cluster=result.cluster)
    assert after.api_key != before.api_key
    assert result.change.action == "credentials_rotate"
    assert after.api_key not in str(result.change.changes) + result.change.message


def test_revision_is_none_until_a_change_is_committed(cluster1):
    ClusterChange.objects.update(commit="", pushed=False)  # still in the outbox
    assert cluster_revision(cluster=cluster1) is None
    assert cluster_detail(cluster=cluster1).revision is None


def test_client_create_validates_the_slug(db):
    with pytest.raises(ValidationError):
        client_create(slug="Not A Slug", name="x")
    assert client_create(slug="acme-2", name="Acme").slug == "acme-2"


def test_no_client_is_named_after_the_portals_own_namespace(db):
    """Its clusters would deploy into qdrant-portal, next to the portal and its secrets."""
    with pytest.raises(ValidationError) as refused:
        client_create(slug="portal", name="Portal")
    assert refused.value.message_dict == {
        "slug": ["“portal” is reserved: its namespace, qdrant-portal, is the portal's own."]
    }
    assert not Client.objects.filter(slug="portal").exists()


def test_a_client_named_before_the_rule_can_still_be_renamed_and_deactivated(db):
    older = Client.objects.create(slug="portal", name="Portal")  # as a row from before migration 0014

    client_update(client=older, name="Portal Ltd", active=False)

    older.refresh_from_db()
    assert (older.name, older.active) == ("Portal Ltd", False)


def test_re_encryption_keeps_the_keys_under_the_new_field_key(cluster1, settings):
    before = cluster_credentials(cluster=cluster1)
    settings.FIELD_ENCRYPTION_KEY = f"brand-new-key,{settings.FIELD_ENCRYPTION_KEY}"

    call_command("field_keys_rotate")

    settings.FIELD_ENCRYPTION_KEY = "brand-new-key"
    assert cluster_credentials(cluster=Cluster.objects.get(pk=cluster1.pk)) == before


def test_re_encryption_after_the_old_secret_was_replaced_says_what_to_do(cluster1, settings):
    settings.FIELD_ENCRYPTION_KEY = "a-completely-different-key"  # replaced instead of prepended
    with pytest.raises(
        CommandError, match="The API keys of cluster client1/main cannot be decrypted.*Put it back"
    ):
        call_command("field_keys_rotate")
