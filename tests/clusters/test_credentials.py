"""API keys: generated, encrypted at rest, served uncached, rotated, never logged."""

from __future__ import annotations

import logging
import re

import pytest
from django.db import connection

from clusters.models import Cluster, ClusterChange
from clusters.selectors import cluster_credentials, cluster_endpoint
from config.crypto import CLUSTER_API_KEYS, field_decrypt

URL = "/api/clients/client1/clusters/main"
TOKEN_URLSAFE_32 = re.compile(r"[A-Za-z0-9_-]{43}")


def _raw_key_columns(cluster: Cluster) -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key_encrypted, read_only_api_key_encrypted FROM clusters_cluster WHERE id = %s",
            [cluster.pk],
        )
        return cursor.fetchone()


def test_operator_reads_endpoint_and_keys_uncached(as_user1, cluster1):
    response = as_user1.get(f"{URL}/credentials")

    assert response.status_code == 200
    body = response.json()
    assert body["endpoint"] == {
        "rest": "https://main.client1.qdrant.local:6333",
        "grpc": "main.client1.qdrant.local:6334",
    }
    assert TOKEN_URLSAFE_32.fullmatch(body["apiKey"])
    assert TOKEN_URLSAFE_32.fullmatch(body["readOnlyApiKey"])
    assert body["apiKey"] != body["readOnlyApiKey"]
    assert "no-store" in response["Cache-Control"]


def test_refused_credentials_requests_are_not_cached_either(client_for, viewer1, cluster1):
    response = client_for(viewer1).get(f"{URL}/credentials")
    assert response.status_code == 403
    assert "no-store" in response["Cache-Control"]


def test_each_cluster_gets_its_own_keys(cluster1, cluster2):
    first, second = cluster_credentials(cluster=cluster1), cluster_credentials(cluster=cluster2)
    assert len({first.api_key, first.read_only_api_key, second.api_key, second.read_only_api_key}) == 4


def test_keys_are_encrypted_in_the_database(as_user1, cluster1):
    keys = as_user1.get(f"{URL}/credentials").json()
    raw_api_key, raw_read_only = _raw_key_columns(cluster1)

    for raw in (raw_api_key, raw_read_only):
        assert raw
        assert keys["apiKey"] not in raw
        assert keys["readOnlyApiKey"] not in raw
    assert field_decrypt(ciphertext=raw_api_key, purpose=CLUSTER_API_KEYS) == keys["apiKey"]


@pytest.mark.django_db(transaction=True)  # delivered once the change's transaction commits, as in production
def test_one_step_rotation_replaces_both_keys_returns_them_once_and_records_a_change(
    as_user1, user1, cluster1
):
    Cluster.objects.filter(pk=cluster1.pk).update(version="v1.16.3")  # before Qdrant's alt_api_key
    old = as_user1.get(f"{URL}/credentials").json()
    raw_before = _raw_key_columns(cluster1)

    response = as_user1.post(f"{URL}/credentials/rotate")

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    new = response.json()
    assert new["apiKey"] != old["apiKey"]
    assert new["readOnlyApiKey"] != old["readOnlyApiKey"]
    assert new["endpoint"] == old["endpoint"]
    assert (new["rotationMode"], new["rotation"]) == ("one_step", None)
    assert as_user1.get(f"{URL}/credentials").json() == new
    assert all(a != b for a, b in zip(_raw_key_columns(cluster1), raw_before, strict=True))

    change = ClusterChange.objects.get(action="credentials_rotate")
    assert change.actor == user1
    assert change.message == "client1/main: API keys rotated in one step"
    for key in (*old.values(), new["apiKey"], new["readOnlyApiKey"]):
        if isinstance(key, str):
            assert key not in str(change.changes)
            assert key not in change.message


def test_rotation_appears_in_history_without_keys(as_user1, cluster1):
    keys = as_user1.post(f"{URL}/credentials/rotate").json()
    history = as_user1.get(f"{URL}/history")
    assert history.json()[0]["changes"] == {"credentials": ["old key", "old and new keys"]}
    assert keys["apiKey"] not in history.content.decode()


def test_keys_never_reach_the_logs(as_user1, cluster1, caplog):
    caplog.set_level(logging.DEBUG)
    first = as_user1.get(f"{URL}/credentials").json()
    second = as_user1.post(f"{URL}/credentials/rotate").json()
    logged = caplog.text + "".join(str(record.__dict__) for record in caplog.records)
    for key in (first["apiKey"], first["readOnlyApiKey"], second["apiKey"], second["readOnlyApiKey"]):
        assert key not in logged


def test_endpoint_follows_the_template_setting(settings):
    settings.QDRANT_ENDPOINT_TEMPLATE = "https://{client}-{cluster}.vectors.example.com/ignored/path"
    endpoint = cluster_endpoint(client_slug="acme", cluster_slug="prod")
    assert endpoint.rest == "https://acme-prod.vectors.example.com:6333"
    assert endpoint.grpc == "acme-prod.vectors.example.com:6334"


def test_keys_no_configured_secret_decrypts_answer_503_not_500(as_user1, cluster1, settings):
    settings.FIELD_ENCRYPTION_KEY = "a-key-the-keys-were-never-encrypted-with"
    response = as_user1.get(f"{URL}/credentials")
    assert (response.status_code, response.json()["code"]) == (503, "secrets_unavailable")


@pytest.mark.django_db(transaction=True)  # delivered once the change's transaction commits, as in production
def test_a_change_whose_keys_cannot_be_decrypted_is_undone_and_answered_503(
    as_user1, cluster1, settings, caplog
):
    settings.FIELD_ENCRYPTION_KEY = "a-key-the-keys-were-never-encrypted-with"
    response = as_user1.patch(URL, {"replicas": cluster1.replicas + 1}, format="json")
    assert (response.status_code, response.json()["code"]) == (503, "secrets_unavailable")
    assert "FIELD_ENCRYPTION_KEY" in caplog.text  # operators are told what to restore
    assert Cluster.objects.get(pk=cluster1.pk).replicas == cluster1.replicas  # nothing was changed
    assert not ClusterChange.objects.filter(cluster=cluster1, action="update").exists()


@pytest.mark.django_db(transaction=True)
def test_another_clients_unreadable_keys_hold_up_none_of_this_clients_changes(
    as_user1, client_for, user2, cluster1, cluster2, settings
):
    """client1's keys encrypted under a key this process lacks (its change waiting on it) must
    not make client2's scale answer 503: one tenant's broken row is not another's outage."""
    from config.crypto import CLUSTER_API_KEYS, field_encrypt

    configured = settings.FIELD_ENCRYPTION_KEY
    settings.FIELD_ENCRYPTION_KEY = "a key this process does not have"
    foreign = field_encrypt(plaintext="k" * 32, purpose=CLUSTER_API_KEYS)
    settings.FIELD_ENCRYPTION_KEY = configured
    Cluster.objects.filter(pk=cluster1.pk).update(api_key_encrypted=foreign, replicas=3)
    cluster1.changes.create(
        action="update", changes={"replicas": [2, 3]}, message="client1/main: replicas 2 -> 3"
    )

    response = client_for(user2).patch("/api/clients/client2/clusters/main", {"replicas": 2}, format="json")

    assert response.status_code == 200, response.json()
    assert response.json()["revision"]["commit"]  # delivered
