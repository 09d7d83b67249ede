"""``gitops_sync`` sees cluster folders in git that no row owns: Argo CD deploys every folder
``clients/*/*``, so one added by hand, or left after the database was restored from an older
backup, runs a cluster no operator sees. They are reported, never deleted."""

from __future__ import annotations

import pytest

from clusters.models import Cluster
from clusters.services import cluster_create, cluster_decommission, cluster_remove
from gitops.repository import branch_tip, file_read
from tests.helpers import gitops_sync_run, hand_commit

pytestmark = pytest.mark.django_db(transaction=True)

VALUES = b"replicaCount: 1\n"


def test_check_reports_each_folder_no_row_owns_as_drift(git_server, cluster1):
    hand_commit(git_server, "clients/client1/rogue/values.yaml", VALUES)  # pushed by hand
    hand_commit(git_server, "clients/ghost/db/values.yaml", VALUES)
    tip = branch_tip(repository=git_server)

    out, error = gitops_sync_run("--check")

    assert error is not None and "3 folder(s) in git that the database does not know" in str(error)
    lines = [line for line in out.splitlines() if line.startswith("unknown folder:")]
    assert lines == [
        "unknown folder: clients/client1/rogue/ (no cluster client1/rogue in the database; Argo CD deploys it)",
        "unknown folder: clients/ghost/ (no client ghost in the database)",
        "unknown folder: clients/ghost/db/ (no cluster ghost/db in the database; Argo CD deploys it)",
    ]
    assert "No drift" not in out
    assert branch_tip(repository=git_server) == tip  # a check writes nothing


def test_folders_left_by_a_database_restored_from_an_older_backup_are_reported(git_server, client1, cluster1):
    later = cluster_create(client=client1, slug="later", actor=None).cluster  # in git, then "lost"
    Cluster.objects.filter(pk=later.pk).delete()

    out, error = gitops_sync_run("--check")

    assert error is not None
    assert "unknown folder: clients/client1/later/" in out
    assert "clients/client1/main/" not in out  # a cluster the database knows is no stranger


def test_gitops_sync_syncs_the_rest_and_leaves_unknown_folders_in_place_failing_visibly(git_server, cluster1):
    hand_commit(git_server, "clients/client1/rogue/values.yaml", VALUES)
    Cluster.objects.filter(pk=cluster1.pk).update(replicas=5)  # drift the sync does fix

    out, error = gitops_sync_run()

    assert error is not None and "left as they are" in str(error)  # the CronJob must not look healthy
    assert "unknown folder: clients/client1/rogue/" in out
    assert file_read(repository=git_server, file_path="clients/client1/rogue/values.yaml") == VALUES
    assert b"replicaCount: 5" in file_read(
        repository=git_server, file_path="clients/client1/main/values.yaml"
    )


def test_a_removed_clusters_folder_put_back_by_hand_is_drift_not_a_stranger(git_server, cluster1):
    cluster_decommission(cluster=cluster1, actor=None)
    cluster_remove(cluster=cluster1, actor=None)
    hand_commit(git_server, "clients/client1/main/values.yaml", VALUES)

    out, error = gitops_sync_run("--check")

    assert error is not None and "unknown folder" not in out  # its row knows it: ordinary drift
    assert "drift: clients/client1/main/values.yaml" in out
    gitops_sync_run()
    assert file_read(repository=git_server, file_path="clients/client1/main/values.yaml") is None


def test_check_without_strangers_or_drift_is_clean(git_server, cluster1):
    out, error = gitops_sync_run("--check")

    assert error is None and "No drift" in out and "unknown folder" not in out
