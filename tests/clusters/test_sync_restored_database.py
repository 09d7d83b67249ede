"""The database restored from an older backup: git holds the changes made since, the rows do not.

Writing the database's state over git then would undo them: downgrade Qdrant (which it does not
support), put back replicas nobody confirmed and API keys that a finished rotation retired. So
``gitops_sync`` writes nothing, says which changes git holds, and what to do; ``--check`` shows
what a sync would change; ``--database-wins`` writes the database's state all the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from io import StringIO

import pygit2
import pytest
import time_machine
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from clusters.models import Cluster, ClusterChange, GitopsRemoteState
from clusters.services import (
    cluster_create,
    cluster_credentials_rotate,
    cluster_credentials_rotation_finish,
    cluster_update,
)
from gitops.repository import GitopsRepository, branch_tip, commits_list, file_read, repository_handle
from gitops.values import values_load
from tests.clusters.conftest import shown_to
from tests.helpers import gitops_sync_run

pytestmark = pytest.mark.django_db(transaction=True)

LEGACY_VALUES = "clients/client1/legacy/values.yaml"
DELIVER_NOW = "/admin/operations/systemstatus/deliver/"


@dataclass(frozen=True)
class Backup:
    """The clusters, their changes and the remote's state as a backup of the database holds them."""

    clusters: list[dict]
    changes: list[dict]
    remote_state: list[dict]


def _backup() -> Backup:
    return Backup(
        clusters=list(Cluster.objects.values()),
        changes=list(ClusterChange.objects.values()),
        remote_state=list(GitopsRemoteState.objects.values()),
    )


def _ids_restart() -> None:
    """The next change takes the id after the backup's newest, as a restored database gives it."""
    table = ClusterChange._meta.db_table
    newest = max(ClusterChange.objects.values_list("pk", flat=True), default=0)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("UPDATE sqlite_sequence SET seq = %s WHERE name = %s", [newest, table])
        elif connection.vendor == "postgresql":
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), %s)", [table, max(newest, 1)])
        else:  # MySQL and MariaDB: the counter goes back to the highest id in the table, plus one
            cursor.execute(f"ALTER TABLE {table} AUTO_INCREMENT = 1")  # noqa: S608 - the model's table


def _restore(backup: Backup) -> None:
    """The database as the backup has it; git as it is."""
    ClusterChange.objects.exclude(pk__in=[row["id"] for row in backup.changes]).delete()
    Cluster.objects.exclude(pk__in=[row["id"] for row in backup.clusters]).delete()
    for row in backup.clusters:
        Cluster.objects.filter(pk=row["id"]).update(**row)
    for row in backup.changes:
        ClusterChange.objects.filter(pk=row["id"]).update(**row)
    GitopsRemoteState.objects.all().delete()
    GitopsRemoteState.objects.bulk_create(GitopsRemoteState(**row) for row in backup.remote_state)
    _ids_restart()


def _legacy_values(repository) -> dict:
    return values_load(file_read(repository=repository, file_path=LEGACY_VALUES))


@pytest.fixture
def restored(git_server, client1, user1) -> list[ClusterChange]:
    """A backup of a cluster on v1.18.3 with 3 replicas; then it is scaled to 1 (confirmed),
    upgraded to v1.19.0 and its keys rotated, rotation finished; then the backup is restored.
    The changes made since the backup, as they were."""
    legacy = cluster_create(client=client1, slug="legacy", actor=user1, replicas=3, version="v1.18.3").cluster
    backup = _backup()
    cluster_update(cluster=legacy, actor=user1, replicas=1, confirm=True)
    cluster_update(cluster=Cluster.objects.get(pk=legacy.pk), actor=user1, version="v1.19.0")
    cluster_credentials_rotate(cluster=Cluster.objects.get(pk=legacy.pk), shown_to=shown_to(user1))
    cluster_credentials_rotation_finish(cluster=Cluster.objects.get(pk=legacy.pk), actor=user1, shown_to=None)
    made_since = list(
        ClusterChange.objects.exclude(pk__in=[row["id"] for row in backup.changes]).order_by("pk")
    )
    assert _legacy_values(git_server)["image"]["tag"] == "v1.19.0"
    _restore(backup)
    return made_since


def test_a_sync_after_restoring_an_older_backup_writes_nothing_and_says_what_git_holds(git_server, restored):
    tip = branch_tip(repository=git_server)

    out, error = gitops_sync_run()

    assert error is not None  # the CronJob fails visibly
    assert "Git holds 4 cluster change(s) that the database does not" in str(error)
    assert "gitops_sync --database-wins" in str(error) and "Restoring the database from a backup" in str(
        error
    )
    newest = restored[-1]
    assert f"newest first: {newest.commit[:12]} {newest.message}" in str(error)
    listed = [line for line in out.splitlines() if line.startswith("not in the database:")]
    assert listed == [
        f"not in the database: {change.commit[:12]} {change.message}" for change in restored[::-1]
    ]
    assert branch_tip(repository=git_server) == tip  # no downgrade, no replicas, no old keys
    assert _legacy_values(git_server)["image"]["tag"] == "v1.19.0"
    assert _legacy_values(git_server)["replicaCount"] == 1
    assert f"drift: {LEGACY_VALUES} (image.tag v1.19.0 -> v1.18.3, replicaCount 1 -> 3, API keys" in out


def test_check_after_a_restore_shows_the_downgrade_a_sync_would_write(git_server, restored):
    out, error = gitops_sync_run("--check")

    assert error is not None and "Git holds 4 cluster change(s) that the database does not" in str(error)
    assert f"drift: {LEGACY_VALUES} (image.tag v1.19.0 -> v1.18.3, replicaCount 1 -> 3, API keys" in out
    assert "No drift" not in out


def test_a_change_made_through_the_api_before_the_sync_does_not_hide_the_restore(
    git_server, cluster1, restored, as_user1
):
    answer = as_user1.patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")
    assert answer.status_code == 200
    reused = ClusterChange.objects.get(commit=answer.json()["revision"]["commit"])
    assert reused.pk == restored[0].pk  # the restored database hands out the lost change's id again
    tip = branch_tip(repository=git_server)

    out, error = gitops_sync_run()

    assert error is not None and "Git holds 4 cluster change(s) that the database does not" in str(error)
    assert branch_tip(repository=git_server) == tip


def test_database_wins_writes_the_databases_state_over_the_changes_git_holds(git_server, restored):
    out, error = gitops_sync_run("--database-wins")

    assert error is None, error
    assert "Wrote the database's state over the 4 cluster change(s) in git" in out
    assert _legacy_values(git_server)["image"]["tag"] == "v1.18.3"
    assert _legacy_values(git_server)["replicaCount"] == 3
    assert gitops_sync_run() == ("Nothing to sync: git matches the database.\n", None)  # decided on, once
    with pytest.raises(CommandError, match="goes without it"):
        call_command("gitops_sync", "--check", "--database-wins")


def test_restoring_the_older_backup_again_brings_back_what_was_decided_then(git_server, client1, user1):
    legacy = cluster_create(client=client1, slug="legacy", actor=user1, replicas=3, version="v1.18.3").cluster
    backup = _backup()
    cluster_update(cluster=legacy, actor=user1, replicas=1, confirm=True)
    _restore(backup)
    assert gitops_sync_run("--database-wins")[1] is None  # replicas 3 again: that scale-down is decided on
    cluster_update(cluster=Cluster.objects.get(pk=legacy.pk), actor=user1, version="v1.19.0")

    _restore(backup)
    out, error = gitops_sync_run()

    assert error is not None and "Git holds 2 cluster change(s) that the database does not" in str(error)


def test_git_kept_by_changing_the_portal_to_its_values_then_accepted(git_server, restored, user1):
    legacy = Cluster.objects.get(slug="legacy")
    cluster_update(cluster=legacy, actor=user1, version="v1.19.0", replicas=1, confirm=True)  # git's, at once

    out, error = gitops_sync_run("--check")
    assert error is not None and "not in the database:" in out  # still in git's history
    assert "drift:" not in out
    out, error = gitops_sync_run("--database-wins")

    assert error is None, error
    assert (_legacy_values(git_server)["image"]["tag"], _legacy_values(git_server)["replicaCount"]) == (
        "v1.19.0",
        1,
    )
    assert gitops_sync_run("--check") == ("No drift: git matches the database.\n", None)


def test_a_rotation_due_in_the_restored_database_waits_while_git_holds_more(git_server, client1, user1):
    legacy = cluster_create(client=client1, slug="legacy", actor=user1, replicas=3, version="v1.18.3").cluster
    cluster_credentials_rotate(cluster=legacy, shown_to=shown_to(user1))
    backup = _backup()
    cluster_update(cluster=Cluster.objects.get(pk=legacy.pk), actor=user1, version="v1.19.0")
    _restore(backup)
    tip = branch_tip(repository=git_server)

    with time_machine.travel(timezone.now() + settings.KEY_ROTATION_GRACE + timedelta(minutes=1)):
        out, error = gitops_sync_run()

    assert error is not None and "Key rotation" not in out  # its commit would downgrade the cluster
    assert Cluster.objects.get(pk=legacy.pk).rotation_in_progress
    assert branch_tip(repository=git_server) == tip


def test_deliver_now_after_a_restore_warns_and_writes_nothing(git_server, restored, admin_browser):
    tip = branch_tip(repository=git_server)

    page = admin_browser.post(DELIVER_NOW, follow=True).content.decode()

    assert "Git holds 4 cluster change(s) that the database does not" in page
    assert "--database-wins" in page and branch_tip(repository=git_server) == tip


def test_changes_made_through_the_api_are_the_databases_own(git_server, cluster1, as_user1):
    for replicas in (3, 4, 5):
        answer = as_user1.patch("/api/clients/client1/clusters/main", {"replicas": replicas}, format="json")
        assert answer.status_code == 200

    assert gitops_sync_run("--check") == ("No drift: git matches the database.\n", None)
    out, error = gitops_sync_run()
    assert error is None and "not in the database" not in out


def test_make_run_and_a_database_made_again_over_the_same_repository_sync_cleanly(settings):
    call_command("seed_demo", "--force", stdout=StringIO())
    assert gitops_sync_run() == ("Nothing to sync: git matches the database.\n", None)
    cluster_update(cluster=Cluster.objects.get(slug="main", client__slug="client1"), actor=None, replicas=2)

    for _again in range(2):  # var/ kept, the database made anew: its ids restart at 1
        call_command("flush", interactive=False, verbosity=0)
        call_command("seed_demo", "--force", stdout=StringIO())
        assert ClusterChange.objects.order_by("pk").first().pk == 1  # git holds older commits of ids 1, 2, 3

        out, error = gitops_sync_run()
        assert error is None and "not in the database" not in out, out
        assert gitops_sync_run("--check")[1] is None


def _history_rewritten(repository: GitopsRepository) -> None:
    """Every commit made again a second later, with its tree and message: what a rebase leaves."""
    handle, parent = repository_handle(repository), None
    for info in commits_list(repository=repository)[::-1]:
        old = handle[info.id]
        when = pygit2.Signature(old.author.name, old.author.email, old.author.time + 1, 0)
        parents = [parent] if parent else []
        parent = handle.create_commit(None, when, when, old.message, old.tree_id, parents)
    handle.references[repository.ref_name].set_target(parent)


def test_a_history_rewritten_by_a_rebase_keeps_the_changes_known_by_their_trailers(
    git_server, cluster1, as_user1
):
    as_user1.patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")
    _history_rewritten(git_server)
    assert not ClusterChange.objects.filter(commit=branch_tip(repository=git_server)).exists()

    out, error = gitops_sync_run()

    assert error is None and "not in the database" not in out, out
