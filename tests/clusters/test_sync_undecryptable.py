"""``gitops_sync`` with a cluster whose API keys the configured FIELD_ENCRYPTION_KEY cannot decrypt
(a CronJob whose Secret lags a key rotation): that cluster is named, with what to do, and the
others are still synced; no traceback."""

from __future__ import annotations

import pytest
import yaml

from clusters.models import Cluster
from config.crypto import CLUSTER_API_KEYS, field_encrypt
from gitops.repository import file_read
from tests.helpers import gitops_sync_run

pytestmark = pytest.mark.django_db(transaction=True)


def _keys_under_another_key(cluster: Cluster, settings) -> None:
    configured = settings.FIELD_ENCRYPTION_KEY
    settings.FIELD_ENCRYPTION_KEY = "a key this process does not have"
    foreign = field_encrypt(plaintext="k" * 32, purpose=CLUSTER_API_KEYS)
    settings.FIELD_ENCRYPTION_KEY = configured
    Cluster.objects.filter(pk=cluster.pk).update(api_key_encrypted=foreign)


def _replicas_in_git(git_server) -> int:
    return yaml.safe_load(file_read(repository=git_server, file_path="clients/client2/main/values.yaml"))[
        "replicaCount"
    ]


@pytest.mark.parametrize("check", [True, False])
def test_the_cluster_whose_keys_cannot_be_decrypted_is_named_and_the_others_still_sync(
    git_server, cluster1, cluster2, settings, check
):
    _keys_under_another_key(cluster1, settings)
    Cluster.objects.filter(pk=cluster2.pk).update(replicas=4)  # drift of another cluster
    before = _replicas_in_git(git_server)

    out, error = gitops_sync_run(*(["--check"] if check else []))

    assert error is not None and "Traceback" not in out
    (conflict,) = [line for line in out.splitlines() if line.startswith("conflict:")]
    assert "client1/main cannot be decrypted with FIELD_ENCRYPTION_KEY" in conflict
    assert _replicas_in_git(git_server) == (before if check else 4)  # a check writes nothing; a sync goes on


def _pending_scale(cluster: Cluster, replicas: int) -> None:
    before = cluster.replicas
    Cluster.objects.filter(pk=cluster.pk).update(replicas=replicas)
    message = f"{cluster}: replicas {before} -> {replicas}"
    cluster.changes.create(action="update", changes={"replicas": [before, replicas]}, message=message)


def test_a_pending_change_of_that_cluster_waits_and_another_clients_are_delivered(
    git_server, cluster1, cluster2, settings
):
    """One client's unreadable keys hold up no other client's changes."""
    _pending_scale(cluster1, 3)
    _pending_scale(cluster2, 4)
    _keys_under_another_key(cluster1, settings)

    out, error = gitops_sync_run()

    assert error is not None
    (conflict,) = [line for line in out.splitlines() if line.startswith("conflict:")]
    assert "client1/main cannot be decrypted with FIELD_ENCRYPTION_KEY" in conflict
    assert _replicas_in_git(git_server) == 4
    assert cluster1.changes.get(action="update").commit == ""  # waits for the key


def test_deliver_now_says_which_cluster_instead_of_a_500(
    git_server, cluster1, settings, client, user_factory, caplog
):
    _pending_scale(cluster1, 3)
    _keys_under_another_key(cluster1, settings)
    client.force_login(
        user_factory(email="ops@example.com", is_staff=True, is_superuser=True, is_operator=True)
    )

    page = client.post("/admin/operations/systemstatus/deliver/", follow=True)

    assert page.status_code == 200
    assert "The API keys of cluster client1/main cannot be decrypted" in page.content.decode()
    assert any(r.getMessage().startswith("deliver now: ") for r in caplog.records)
