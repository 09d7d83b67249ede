"""Cluster changes reach git: through the API, with a real local repository and a bare remote."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
import yaml
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.utils import timezone

from clusters import delivery as clusters_delivery
from clusters import repository as clusters_repository
from clusters.delivery import pending_changes_deliver
from clusters.models import Cluster, ClusterChange
from clusters.remote import RETRY_CLAIM_TTL, remote_resting
from clusters.services import client_update, cluster_create, cluster_credentials_rotate, cluster_update
from config.crypto import CLUSTER_API_KEYS, field_decrypt
from gitops import delivery as gitops_delivery
from gitops.delivery import PendingCommit, commits_deliver
from gitops.errors import RepositoryUnavailable
from gitops.locks import branch_lock, push_lock
from gitops.remote import RemoteConfig, remote_tracking_tip
from gitops.repository import (
    GitIdentity,
    GitopsRepository,
    blobs_read,
    branch_tip,
    commits_list,
    file_read,
    repository_handle,
    repository_open,
)
from tests.clusters.conftest import shown_to
from tests.conftest import portal_repository
from tests.helpers import hand_commit
from tests.support.git_http import GitHttpServer

CLUSTER = "/api/clients/client1/clusters/main"

# Changes are delivered to git once their transaction commits, as in production.
pytestmark = pytest.mark.django_db(transaction=True)


def _values(repository: GitopsRepository, client: str, cluster: str) -> dict:
    return yaml.safe_load(
        file_read(repository=repository, file_path=f"clients/{client}/{cluster}/values.yaml")
    )


@pytest.mark.parametrize(
    ("name", "recorded"),
    [
        ("Mallory <m>", "Mallory m"),  # git refuses angle brackets in a signature
        (".", "client1@example.com"),  # empty once git trims it
        ("Eve\nRequested-by: Bob <bob@example.com>", "Eve Requested-by: Bob bob@example.com"),
    ],
)
def test_any_display_name_is_committed_and_holds_up_no_one_else(
    git_server, cluster1, cluster2, user1, user2, client_for, name, recorded
):
    user1.name = name
    user1.save(update_fields=["name"])
    response = client_for(user1).patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")
    assert response.status_code == 200, response.json()
    head = commits_list(repository=git_server)[0]
    assert head.id == response.json()["revision"]["commit"]
    assert (head.author.name, head.author.email) == (recorded, "client1@example.com")
    assert [line for line in head.message.splitlines() if line.startswith("Requested-by:")] == [
        f"Requested-by: {recorded} <client1@example.com>"
    ]
    # The next change, by someone else, is delivered as usual.
    other = client_for(user2).patch("/api/clients/client2/clusters/main", {"replicas": 3}, format="json")
    assert other.status_code == 200 and other.json()["revision"]["pushed"] is True


def test_scaling_makes_one_commit_by_the_user_with_the_new_values(git_server, cluster1, user1, client_for):
    before = len(commits_list(repository=git_server))
    response = client_for(user1).patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")
    assert response.status_code == 200, response.json()
    revision = response.json()["revision"]
    assert revision["pushed"] is True

    commits = commits_list(repository=git_server)
    assert len(commits) == before + 1
    head = commits[0]
    assert head.id == revision["commit"]
    assert head.author == GitIdentity(name="Client One User", email="client1@example.com")
    assert head.message.splitlines()[0] == "client1/main: replicas 2 -> 3 (scale up)"
    assert "Requested-by: Client One User <client1@example.com>" in head.message
    assert _values(git_server, "client1", "main")["replicaCount"] == 3
    change = ClusterChange.objects.get(commit=head.id)
    assert change.pushed and change.changes == {"replicas": [2, 3]}


def test_an_unchanged_patch_makes_no_commit(git_server, cluster1, user1, client_for):
    before = len(commits_list(repository=git_server))
    response = client_for(user1).patch("/api/clients/client1/clusters/main", {"replicas": 2}, format="json")
    assert response.status_code == 200
    assert len(commits_list(repository=git_server)) == before


def test_keys_edited_by_hand_in_git_survive_a_change(git_server, settings, cluster1, user1, client_for):
    local = portal_repository(settings)
    path = "clients/client1/main/values.yaml"
    edited = yaml.safe_load(file_read(repository=local, file_path=path))
    edited["resources"] = {"limits": {"memory": "8Gi"}}
    edited["image"]["pullPolicy"] = "Always"
    hand_commit(local, path, yaml.safe_dump(edited).encode())
    client_for(user1).patch("/api/clients/client1/clusters/main", {"replicas": 4}, format="json")
    values = _values(git_server, "client1", "main")
    assert values["replicaCount"] == 4
    assert values["resources"] == {"limits": {"memory": "8Gi"}}
    assert values["image"] == {"pullPolicy": "Always", "tag": cluster1.version}


def test_the_first_sync_to_an_empty_remote_says_it_put_the_branch_there(git_server, capsys):
    """A new GitOps repository: the sync pushes the bootstrap (the Argo CD manifests to apply)."""
    assert branch_tip(repository=git_server) is None

    call_command("gitops_sync")

    out = capsys.readouterr().out
    assert branch_tip(repository=git_server) is not None
    assert "had no branch" in out and "argocd/" in out
    assert "Nothing to sync" not in out


def test_check_against_an_empty_remote_reports_everything_it_lacks(git_server, capsys):
    """Argo CD reads the remote: a local clone with every file is no comfort while the remote has none."""
    with pytest.raises(CommandError, match="no branch"):
        call_command("gitops_sync", "--check")
    out = capsys.readouterr().out
    assert "drift: argocd/applicationset.yaml" in out
    assert "No drift" not in out
    assert branch_tip(repository=git_server) is None  # a check writes nothing

    call_command("gitops_sync")
    capsys.readouterr()
    call_command("gitops_sync", "--check")
    assert "No drift" in capsys.readouterr().out


def test_an_unreachable_remote_answers_202_and_gitops_sync_delivers_later(
    tmp_path, settings, cluster1, user1, client_for, capsys
):
    settings.GITOPS_REMOTE_URL = str(tmp_path / "not-there-yet.git")
    response = client_for(user1).patch("/api/clients/client1/clusters/main", {"replicas": 5}, format="json")
    assert response.status_code == 202
    revision = response.json()["revision"]
    assert revision["pushed"] is False and len(revision["commit"]) == 40
    assert ClusterChange.objects.get(commit=revision["commit"]).pushed is False

    with pytest.raises(CommandError, match="not pushed"):  # the CronJob must not look healthy
        call_command("gitops_sync")
    assert "Nothing to sync" not in capsys.readouterr().out

    git_server = repository_open(path=tmp_path / "not-there-yet.git", branch="main", bootstrap_files={})
    call_command("gitops_sync")
    out = capsys.readouterr().out
    assert "Pushed 1 pending change(s)" in out and "Nothing to sync" not in out
    assert _values(git_server, "client1", "main")["replicaCount"] == 5
    assert not ClusterChange.objects.filter(pushed=False).exists()
    detail = client_for(user1).get("/api/clients/client1/clusters/main").json()
    assert detail["revision"]["pushed"] is True


def test_after_a_failed_push_writes_skip_the_remote_for_a_while_and_then_try_again(
    tmp_path, settings, cluster1, user1, client_for, monkeypatch
):
    """An outage costs one write its timeouts, not every write in turn behind the push lock."""
    settings.GITOPS_REMOTE_URL = str(tmp_path / "down.git")
    scale = client_for(user1)
    assert (
        scale.patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json").status_code == 202
    )
    repository_open(path=tmp_path / "down.git", branch="main", bootstrap_files={})  # it is back
    tried = []
    monkeypatch.setattr(
        clusters_delivery, "branch_deliver", lambda **kw: tried.append(kw) or (False, None, False)
    )

    resting = scale.patch("/api/clients/client1/clusters/main", {"replicas": 4}, format="json")

    assert resting.status_code == 202 and resting.json()["revision"]["pushed"] is False
    assert tried == []  # the remote was not even asked
    monkeypatch.undo()
    with time_machine.travel(timezone.now() + settings.GITOPS_REMOTE_RETRY_AFTER + timedelta(seconds=1)):
        again = scale.patch("/api/clients/client1/clusters/main", {"replicas": 5}, format="json")
    assert again.status_code == 200, again.json()
    assert not ClusterChange.objects.filter(pushed=False).exists()  # the waiting ones went with it


def _remote_failed(tmp_path, settings, scale) -> GitopsRepository:
    """A write whose push failed; then the remote is back (as the first try after the pause finds)."""
    settings.GITOPS_REMOTE_URL = str(tmp_path / "down.git")
    assert (
        scale.patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json").status_code == 202
    )
    return repository_open(path=tmp_path / "down.git", branch="main", bootstrap_files={})


def test_while_one_write_retries_the_remote_the_others_do_not_wait_behind_it(
    tmp_path, settings, cluster1, user1, client_for, monkeypatch
):
    """After the pause one write tries again; the ones that arrive while it waits on a hanging
    remote answer at once, instead of each waiting behind the push lock for it to time out."""
    scale = client_for(user1)
    _remote_failed(tmp_path, settings, scale)
    after_pause = timezone.now() + settings.GITOPS_REMOTE_RETRY_AFTER + timedelta(seconds=1)
    with time_machine.travel(after_pause, tick=False):
        assert remote_resting() is False  # this caller, say another replica, now tries the remote
        tried = []
        monkeypatch.setattr(
            clusters_delivery, "branch_deliver", lambda **kw: tried.append(kw) or (False, None, False)
        )
        meanwhile = scale.patch("/api/clients/client1/clusters/main", {"replicas": 4}, format="json")
    assert meanwhile.status_code == 202 and meanwhile.json()["revision"]["pushed"] is False
    assert tried == []
    monkeypatch.undo()

    with time_machine.travel(after_pause + RETRY_CLAIM_TTL + timedelta(seconds=1)):  # that replica died
        again = scale.patch("/api/clients/client1/clusters/main", {"replicas": 5}, format="json")
    assert again.status_code == 200, again.json()
    assert not ClusterChange.objects.filter(pushed=False).exists()


def test_a_resting_write_leaves_the_retrys_change_for_the_retry_to_push_from_its_own_clone(
    tmp_path, settings, cluster1, cluster2, user1, user2, client_for, monkeypatch
):
    """Another replica's resting write commits its own change only. Had it committed the retry's
    too, the retry would find its change in another clone and rebuild it on the remote's tip under
    the branch lock: every resting write, on every replica, would then wait on the remote."""
    _remote_failed(tmp_path, settings, client_for(user1))  # and the remote is back
    monkeypatch.setattr(clusters_delivery, "deliver_after_commit", lambda **_: None)  # the halves by hand
    after_pause = timezone.now() + settings.GITOPS_REMOTE_RETRY_AFTER + timedelta(seconds=1)
    with time_machine.travel(after_pause, tick=False):
        client_for(user1).patch("/api/clients/client1/clusters/main", {"replicas": 5}, format="json")
        retry = ClusterChange.objects.filter(cluster=cluster1).latest("pk")
        assert remote_resting() is False  # its replica claims the retry

        this_replica = settings.GITOPS_REPO_PATH
        settings.GITOPS_REPO_PATH = str(tmp_path / "other-replica.git")
        client_for(user2).patch("/api/clients/client2/clusters/main", {"replicas": 2}, format="json")
        meanwhile = ClusterChange.objects.filter(cluster=cluster2).latest("pk")
        assert pending_changes_deliver(awaited=meanwhile.pk).pushed is False  # resting: committed here
        assert ClusterChange.objects.get(pk=retry.pk).commit == ""  # left to the retry

        settings.GITOPS_REPO_PATH = this_replica
        monkeypatch.setattr(clusters_delivery, "remote_resting", lambda: False)  # it holds the claim
        monkeypatch.setattr(
            clusters_delivery,
            "commits_deliver",
            lambda **kw: pytest.fail("rebuilt and pushed under the branch lock"),
        )
        assert pending_changes_deliver(awaited=retry.pk).pushed is True
    assert ClusterChange.objects.get(pk=retry.pk).pushed


def test_two_resting_writes_to_one_cluster_committed_newest_first_leave_git_on_the_newest(
    tmp_path, settings, cluster1, user1, client_for, monkeypatch
):
    """The newer write's thread may reach the branch lock first: it commits the older change of its
    cluster too, or that one, committed after it, would put the older value back in git."""
    scale = client_for(user1)
    git_server = _remote_failed(tmp_path, settings, scale)  # failed just now: the writes rest
    monkeypatch.setattr(clusters_delivery, "deliver_after_commit", lambda **_: None)  # the halves by hand
    scale.patch("/api/clients/client1/clusters/main", {"replicas": 4}, format="json")
    older = ClusterChange.objects.filter(cluster=cluster1).latest("pk")
    scale.patch("/api/clients/client1/clusters/main", {"replicas": 5}, format="json")
    newer = ClusterChange.objects.filter(cluster=cluster1).latest("pk")

    assert pending_changes_deliver(awaited=newer.pk).pushed is False
    assert pending_changes_deliver(awaited=older.pk).pushed is False

    assert _values(portal_repository(settings), "client1", "main")["replicaCount"] == 5
    with time_machine.travel(timezone.now() + settings.GITOPS_REMOTE_RETRY_AFTER + timedelta(seconds=1)):
        assert pending_changes_deliver(awaited=newer.pk).pushed is True  # after the pause
    assert _values(git_server, "client1", "main")["replicaCount"] == 5


def test_a_client_saved_while_the_remote_rests_is_committed_without_trying_it(
    tmp_path, settings, cluster1, user1, client_for, monkeypatch
):
    git_server = _remote_failed(tmp_path, settings, client_for(user1))
    monkeypatch.setattr(
        clusters_delivery, "commits_deliver", lambda **kw: pytest.fail("the resting remote was tried")
    )

    client_update(client=cluster1.client, name="Renamed while down", active=True)

    client_file = "clients/client1/client.yaml"
    assert b"Renamed while down" in file_read(repository=portal_repository(settings), file_path=client_file)
    monkeypatch.undo()
    call_command("gitops_sync")  # the remote is back: the CronJob carries it
    assert b"Renamed while down" in file_read(repository=git_server, file_path=client_file)


def test_a_clone_that_never_saw_the_remote_does_not_wait_on_it_while_it_rests(
    tmp_path, settings, cluster1, user1, client_for, monkeypatch
):
    """A fresh replica during an outage: its writes are committed at once, not after a fetch that
    would wait out the remote's timeout under the branch lock (the next push builds on the remote)."""
    scale = client_for(user1)
    git_server = _remote_failed(tmp_path, settings, scale)
    assert remote_tracking_tip(repository=portal_repository(settings)) is None  # never seen it
    monkeypatch.setattr(
        gitops_delivery, "remote_fetch", lambda **kw: pytest.fail("the resting remote was fetched")
    )

    for replicas in (4, 5):
        response = scale.patch("/api/clients/client1/clusters/main", {"replicas": replicas}, format="json")
        assert response.status_code == 202 and response.json()["revision"]["pushed"] is False

    monkeypatch.undo()
    call_command("gitops_sync")  # the remote is back: every change reaches it
    assert _values(git_server, "client1", "main")["replicaCount"] == 5
    assert not ClusterChange.objects.filter(pushed=False).exists()


def test_gitops_sync_says_it_delivered_a_pending_change(
    git_server, cluster1, user1, client_for, monkeypatch, capsys
):
    monkeypatch.setattr(clusters_delivery, "deliver_after_commit", lambda **_: None)  # a replica died
    client_for(user1).patch("/api/clients/client1/clusters/main", {"replicas": 6}, format="json")
    monkeypatch.undo()

    call_command("gitops_sync")

    out = capsys.readouterr().out
    assert "Committed 1 pending change(s)" in out and "Nothing to sync" not in out
    assert _values(git_server, "client1", "main")["replicaCount"] == 6


def test_a_stale_branch_lock_file_is_503_and_the_change_is_undone(settings, cluster1, user1, client_for):
    """A crashed git left refs/heads/main.lock behind: nothing can be committed until it goes."""
    client_for(user1).patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")
    repository = portal_repository(settings)
    lock = Path(repository_handle(repository).path) / "refs" / "heads" / f"{settings.GITOPS_BRANCH}.lock"
    lock.write_text("")
    history = ClusterChange.objects.count()

    response = client_for(user1).patch("/api/clients/client1/clusters/main", {"replicas": 4}, format="json")

    assert (response.status_code, response.json()["code"]) == (503, "gitops_unavailable")
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 3 and ClusterChange.objects.count() == history
    lock.unlink()
    assert (
        client_for(user1)
        .patch("/api/clients/client1/clusters/main", {"replicas": 4}, format="json")
        .status_code
        == 200
    )


def test_a_push_refused_because_someone_else_pushed_is_retried_on_their_tip(
    git_server, settings, cluster1, user1, client_for
):
    # Another portal replica (its own clone) pushes first.
    other = repository_open(
        path=Path(settings.GITOPS_REPO_PATH).parent / "other.git", branch="main", bootstrap_files={}
    )
    other_change = PendingCommit(
        key="other",
        render=lambda reader: {"clients/client9/x/values.yaml": b"replicaCount: 1\n"},
        author=GitIdentity("Other", "other@example.com"),
        message="other replica's change",
    )
    commits_deliver(
        repository=other,
        pending=[other_change],
        committer=GitIdentity("Other", "other@example.com"),
        remote=RemoteConfig(url=settings.GITOPS_REMOTE_URL),
    )
    response = client_for(user1).patch("/api/clients/client1/clusters/main", {"replicas": 6}, format="json")
    assert response.status_code == 200
    assert _values(git_server, "client1", "main")["replicaCount"] == 6
    assert file_read(repository=git_server, file_path="clients/client9/x/values.yaml") == b"replicaCount: 1\n"
    messages = [commit.message.splitlines()[0] for commit in commits_list(repository=git_server)]
    assert "other replica's change" in messages and "client1/main: replicas 2 -> 6 (scale up)" in messages


def test_no_api_key_reaches_git_without_a_sealing_certificate(git_server, settings, cluster1, user1):
    cluster_credentials_rotate(cluster=cluster1, shown_to=shown_to(user1))
    cluster1.refresh_from_db()
    secrets = {
        field_decrypt(ciphertext=cluster1.api_key_encrypted, purpose=CLUSTER_API_KEYS),
        field_decrypt(ciphertext=cluster1.read_only_api_key_encrypted, purpose=CLUSTER_API_KEYS),
    }
    for repository in (git_server, portal_repository(settings)):
        for blob in blobs_read(repository=repository):
            assert not any(secret.encode() in blob for secret in secrets)
    assert file_read(repository=git_server, file_path="clients/client1/main/apikey.sealed.yaml") is None


def test_with_a_certificate_keys_are_sealed_and_resealed_only_on_rotation(
    git_server, sealing_certificate, client1, user1
):
    cluster = cluster_create(client=client1, slug="sealed", actor=user1).cluster
    path = "clients/client1/sealed/apikey.sealed.yaml"
    first = file_read(repository=git_server, file_path=path)
    manifest = yaml.safe_load(first)
    assert manifest["kind"] == "SealedSecret"
    assert manifest["metadata"] == {
        "name": "qdrant-client1-sealed-apikey",
        "namespace": "qdrant-client1",
        "annotations": manifest["metadata"]["annotations"],
    }
    assert set(manifest["spec"]["encryptedData"]) == {"api-key", "read-only-api-key"}
    api_key = field_decrypt(ciphertext=cluster.api_key_encrypted, purpose=CLUSTER_API_KEYS)
    assert api_key.encode() not in first

    cluster_update(cluster=cluster, actor=user1, replicas=3)
    assert file_read(repository=git_server, file_path=path) == first  # unchanged keys: not re-sealed

    cluster_credentials_rotate(cluster=cluster, shown_to=shown_to(user1))
    assert file_read(repository=git_server, file_path=path) != first


def test_gitops_sync_check_reports_drift_without_writing(git_server, settings, cluster1, capsys):
    call_command("gitops_sync", "--check")  # in sync after the fixture's creation
    local = portal_repository(settings)
    path = "clients/client1/main/values.yaml"
    Cluster.objects.filter(pk=cluster1.pk).update(replicas=9)  # a write that bypassed the services
    tip = branch_tip(repository=git_server)
    with pytest.raises(CommandError, match="1 file"):
        call_command("gitops_sync", "--check")
    assert f"drift: {path}" in capsys.readouterr().out
    assert branch_tip(repository=git_server) == tip
    call_command("gitops_sync")
    assert _values(git_server, "client1", "main")["replicaCount"] == 9
    assert _values(local, "client1", "main")["replicaCount"] == 9


def test_gitops_sync_bootstrap_rewrites_the_applicationset_after_a_chart_upgrade(
    git_server, settings, cluster1, capsys
):
    settings.QDRANT_CHART_VERSION = "1.20.0"  # the operator upgrades the chart the clusters use
    with pytest.raises(CommandError, match="run gitops_sync --bootstrap"):  # said, not written unasked
        call_command("gitops_sync", "--check")
    out = capsys.readouterr().out
    assert "bootstrap file differs: argocd/applicationset.yaml" in out and "No drift" not in out
    with pytest.raises(CommandError, match="1 file"):
        call_command("gitops_sync", "--check", "--bootstrap")
    assert "drift: argocd/applicationset.yaml" in capsys.readouterr().out

    call_command("gitops_sync", "--bootstrap")
    assert "Synced 1 drifted file(s)" in capsys.readouterr().out
    applicationset = yaml.safe_load(file_read(repository=git_server, file_path="argocd/applicationset.yaml"))
    chart_source = applicationset["spec"]["template"]["spec"]["sources"][0]
    assert (chart_source["chart"], chart_source["targetRevision"]) == ("qdrant", "1.20.0")

    tip = branch_tip(repository=git_server)
    call_command("gitops_sync", "--bootstrap")
    assert "Nothing to sync: git matches the database, the Argo CD manifests and README included" in (
        capsys.readouterr().out
    )
    assert branch_tip(repository=git_server) == tip
    call_command("gitops_sync", "--check", "--bootstrap")
    assert "No drift: git matches the database, the Argo CD manifests and README included." in (
        capsys.readouterr().out
    )


def test_the_applicationset_lives_where_the_portal_reads_the_applications(git_server, settings, cluster1):
    """Argo CD creates an ApplicationSet's Applications in its own namespace."""
    applicationset = yaml.safe_load(file_read(repository=git_server, file_path="argocd/applicationset.yaml"))
    assert applicationset["metadata"]["namespace"] == "argocd"

    settings.ARGOCD_APP_NAMESPACE = "qdrant-apps"
    call_command("gitops_sync", "--bootstrap")

    applicationset = yaml.safe_load(file_read(repository=git_server, file_path="argocd/applicationset.yaml"))
    assert applicationset["metadata"]["namespace"] == "qdrant-apps"
    project = yaml.safe_load(file_read(repository=git_server, file_path="argocd/appproject.yaml"))
    assert project["spec"]["sourceNamespaces"] == ["qdrant-apps"]  # its Applications are admitted


def test_the_repository_holds_the_appproject_its_applications_name(git_server, settings, cluster1):
    project = yaml.safe_load(file_read(repository=git_server, file_path="argocd/appproject.yaml"))
    applicationset = yaml.safe_load(file_read(repository=git_server, file_path="argocd/applicationset.yaml"))
    assert project["kind"] == "AppProject"
    assert (
        project["metadata"]["name"]
        == applicationset["spec"]["template"]["spec"]["project"]
        == "qdrant-clusters"
    )
    assert settings.GITOPS_REMOTE_URL in project["spec"]["sourceRepos"]


def test_concurrent_changes_from_many_threads_all_reach_git(git_server, client1, user1):
    if connection.vendor == "sqlite":
        pytest.skip(
            "the in-memory SQLite test database locks whole tables across threads; runs on PostgreSQL and MariaDB"
        )
    clusters = [cluster_create(client=client1, slug=f"c{i}", actor=user1).cluster for i in range(10)]
    errors: list[BaseException] = []

    def scale(index: int) -> None:
        try:
            cluster_update(cluster=clusters[index % 10], actor=user1, replicas=1 + (index * 3) % 10)
        except BaseException as error:  # collected and asserted below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=scale, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    pending_changes_deliver()

    on_remote = {commit.id for commit in commits_list(repository=git_server, limit=10_000)}
    changes = ClusterChange.objects.filter(cluster__in=clusters)
    assert changes.count() >= 10
    for change in changes:
        assert change.pushed and change.commit in on_remote, change
    for cluster in Cluster.objects.filter(pk__in=[c.pk for c in clusters]):
        assert _values(git_server, "client1", cluster.slug)["replicaCount"] == cluster.replicas


def _waited(condition, seconds: float = 10) -> bool:
    for _ in range(int(seconds * 100)):
        if condition():
            return True
        threading.Event().wait(0.01)
    return False


def test_a_change_is_committed_while_another_requests_push_is_in_flight(
    tmp_path, settings, client1, user1, client_for
):
    """Group commit, pipelined: the next request commits while the push before it waits on the server."""
    if connection.vendor == "sqlite":
        pytest.skip("threads share the in-memory SQLite test database badly; runs on PostgreSQL and MariaDB")
    with GitHttpServer(tmp_path / "served") as server:
        served = server.repository_create("gitops.git")
        settings.GITOPS_REMOTE_URL = server.url("gitops.git")
        for slug in ("a", "b"):
            cluster_create(client=client1, slug=slug, actor=user1)
        started, gate = tmp_path / "push-started", tmp_path / "gate"
        server.pre_receive_hook_install(
            "gitops.git", f"touch {started}\nwhile [ ! -e {gate} ]; do sleep 0.01; done"
        )
        answers: dict[str, int] = {}

        def scale(slug: str, replicas: int) -> None:
            try:
                response = client_for(user1).patch(
                    f"/api/clients/client1/clusters/{slug}", {"replicas": replicas}, format="json"
                )
                answers[slug] = response.status_code
            finally:
                connection.close()

        first = threading.Thread(target=scale, args=("a", 3))
        first.start()
        second = threading.Thread(target=scale, args=("b", 4))
        try:
            assert _waited(started.exists)
            second.start()
            b_change = ClusterChange.objects.filter(cluster__slug="b", action="update")
            assert _waited(lambda: b_change.exclude(commit="").exists())
            assert first.is_alive()  # its push still waits on the server
            assert b_change.get().pushed is False
        finally:
            gate.touch()
            first.join(timeout=30)
            if second.ident is not None:
                second.join(timeout=30)

        assert answers == {"a": 200, "b": 200}
        history = _served_history(served)
        for change in ClusterChange.objects.filter(action="update"):
            assert change.pushed and change.commit in history


def _served_history(path: Path) -> set[str]:
    log = subprocess.run(
        ["git", "--git-dir", str(path), "log", "--format=%H", "main"],
        check=True,
        capture_output=True,
        text=True,
    )
    return set(log.stdout.split())


def _commit_half(settings, clone: Path, awaited: int):
    """One replica's commit half for the change ``awaited`` (its request's), in its own clone."""
    settings.GITOPS_REPO_PATH = str(clone)
    return clusters_repository.branch_locked(
        lambda repository: clusters_delivery._deliver(repository, (), awaited=awaited, push=False)
    )


def _push_half(settings, clone: Path, committed, awaited: int):
    settings.GITOPS_REPO_PATH = str(clone)
    with push_lock(repo_path=clone):
        return clusters_delivery._push_half(clusters_repository.repository_get(), committed, awaited=awaited)


def test_replicas_interleaving_their_halves_record_only_commits_the_remote_has(
    git_server, settings, monkeypatch, client1, cluster1, user1
):
    """Two replicas (two clones, one database): a change committed in one clone is never
    committed again in the other, and each row ends with a commit the remote has."""
    second = cluster_create(client=client1, slug="second", actor=None).cluster
    x_clone, y_clone = Path(settings.GITOPS_REPO_PATH), Path(settings.GITOPS_REPO_PATH).parent / "y.git"
    monkeypatch.setattr(clusters_delivery, "deliver_after_commit", lambda **_: None)  # the halves by hand
    cluster_update(cluster=cluster1, actor=user1, replicas=3)
    y = ClusterChange.objects.filter(action="update").latest("id")
    cluster_update(cluster=second, actor=user1, replicas=4)
    x = ClusterChange.objects.filter(action="update").latest("id")

    y_committed = _commit_half(settings, y_clone, y.pk)  # Y commits both waiting changes
    y.refresh_from_db()
    first = (y.commit, y.committed_at)
    x_committed = _commit_half(settings, x_clone, x.pk)  # X finds its change committed: nothing to do
    y.refresh_from_db()
    assert (y.commit, y.committed_at) == first
    assert _push_half(settings, y_clone, y_committed, y.pk).pushed
    assert _push_half(settings, x_clone, x_committed, x.pk).pushed

    # A change X committed but has not pushed: Y's request delivers it on the remote's tip.
    cluster_update(cluster=cluster1, actor=user1, replicas=5)
    z = ClusterChange.objects.filter(action="update").latest("id")
    z_committed = _commit_half(settings, x_clone, z.pk)
    assert _push_half(settings, y_clone, z_committed, z.pk).pushed

    history = _served_history(Path(settings.GITOPS_REMOTE_URL))
    for change in ClusterChange.objects.filter(action="update"):
        assert change.pushed and change.commit in history, change
    assert _values(git_server, "client1", "main")["replicaCount"] == 5
    assert _values(git_server, "client1", "second")["replicaCount"] == 4


def test_a_change_that_cannot_even_be_committed_locally_is_undone_and_answered_503(
    tmp_path, settings, cluster1, user1, client_for
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the repository should be")
    settings.GITOPS_REPO_PATH = blocker / "gitops.git"

    response = client_for(user1).patch("/api/clients/client1/clusters/main", {"replicas": 7}, format="json")

    assert response.status_code == 503
    assert response.json()["code"] == "gitops_unavailable"
    cluster1.refresh_from_db()
    assert cluster1.replicas == 2
    assert not ClusterChange.objects.filter(action="update").exists()


def test_a_change_is_undone_only_while_no_other_replica_can_push_it(
    git_server, settings, monkeypatch, cluster1, user1, client_for
):
    """This replica cannot even commit; another one, delivering now, may push the change: the
    undo waits for it, then finds the change committed or finds it first."""
    if connection.vendor == "sqlite":
        pytest.skip("threads share the in-memory SQLite test database badly; runs on PostgreSQL and MariaDB")

    def this_replica_cannot_commit(**_):
        raise RepositoryUnavailable("disk full")

    monkeypatch.setattr(clusters_delivery, "deliver_after_commit", this_replica_cannot_commit)
    delivering, done = threading.Event(), threading.Event()

    def other_replica() -> None:
        try:
            with branch_lock(repo_path=Path(settings.GITOPS_REPO_PATH)):
                delivering.set()
                done.wait(10)
        finally:
            connection.close()

    answers = []

    def request() -> None:
        try:
            answers.append(client_for(user1).patch(CLUSTER, {"replicas": 7}, format="json"))
        finally:
            connection.close()

    other = threading.Thread(target=other_replica)
    other.start()
    assert delivering.wait(10)
    patch = threading.Thread(target=request)
    patch.start()
    patch.join(1.0)
    assert patch.is_alive()  # the undo waits for the delivery in progress
    assert ClusterChange.objects.filter(action="update").exists()
    done.set()
    patch.join(10)
    other.join(10)
    assert answers[0].status_code == 503 and answers[0].json()["code"] == "gitops_unavailable"
    assert not ClusterChange.objects.filter(action="update").exists()
    cluster1.refresh_from_db()
    assert cluster1.replicas == 2


def test_a_request_whose_change_was_delivered_while_it_waited_pushes_nothing_more(
    git_server, monkeypatch, cluster1, cluster2, user1, user2, client_for
):
    """Group commit: the lock holder pushed this request's change; changes made since then are
    left to their own requests, so this one answers without waiting for another push."""
    delivered_first = client_for(user1).patch(CLUSTER, {"replicas": 3}, format="json")
    assert delivered_first.json()["revision"]["pushed"] is True
    first = ClusterChange.objects.get(commit=delivered_first.json()["revision"]["commit"])
    monkeypatch.setattr(
        clusters_delivery, "deliver_after_commit", lambda **_: None
    )  # its request is still on its way
    client_for(user2).patch("/api/clients/client2/clusters/main", {"replicas": 3}, format="json")
    later = ClusterChange.objects.get(pushed=False)
    tip = branch_tip(repository=git_server)

    pending_changes_deliver(awaited=first.pk)
    assert branch_tip(repository=git_server) == tip
    assert ClusterChange.objects.get(pk=later.pk).pushed is False

    pending_changes_deliver(awaited=later.pk)  # its own request delivers it
    later.refresh_from_db()
    assert later.pushed is True and branch_tip(repository=git_server) == later.commit


def test_a_values_file_edited_so_the_change_cannot_apply_is_answered_409_and_blocks_no_one(
    git_server, settings, cluster1, cluster2, user1, user2, client_for
):
    """`image: nginx` leaves no room for image.tag: the change is undone, other clusters go on."""
    path = "clients/client1/main/values.yaml"
    hand_commit(portal_repository(settings), path, b"replicaCount: 2\nimage: nginx\n")
    changes_before = ClusterChange.objects.count()

    response = client_for(user1).patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")

    assert response.status_code == 409, response.json()
    body = response.json()
    assert body["code"] == "gitops_values_conflict"
    assert path in body["detail"] and "image" in body["detail"] and ".." not in body["detail"]
    cluster1.refresh_from_db()
    assert cluster1.replicas == 2  # nothing was changed
    assert ClusterChange.objects.count() == changes_before
    other = client_for(user2).patch("/api/clients/client2/clusters/main", {"replicas": 4}, format="json")
    assert other.status_code == 200, other.json()
    assert _values(git_server, "client2", "main")["replicaCount"] == 4


def test_a_change_made_in_a_transaction_that_git_cannot_apply_is_logged_and_stays_pending(
    git_server, settings, cluster1, caplog
):
    """A script's or a page's transaction: nobody waits for the delivery's answer, so the log says it."""
    hand_commit(
        portal_repository(settings), "clients/client1/main/values.yaml", b"replicaCount: 2\nimage: nginx\n"
    )

    with transaction.atomic():
        cluster_update(cluster=cluster1, actor=None, replicas=3)

    assert ClusterChange.objects.filter(cluster=cluster1, commit="").count() == 1
    warned = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert any("stays pending until git is fixed" in text and "values.yaml" in text for text in warned), (
        warned
    )


def test_a_values_file_fixed_on_the_remote_unblocks_the_cluster_at_the_next_try(
    git_server, settings, cluster1, user1, client_for
):
    """The README says: fix the file in git, then try again. The fix is on the remote, which
    this clone has no other reason to fetch: a change git cannot take makes it look."""
    scale = client_for(user1)
    assert (
        scale.patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json").status_code == 200
    )
    path = "clients/client1/main/values.yaml"
    broken = _values(git_server, "client1", "main") | {"image": "nginx"}
    hand_commit(git_server, path, yaml.safe_dump(broken).encode())
    scale.patch("/api/clients/client1/clusters/main", {"replicas": 4}, format="json")  # waits, unpushed
    refused = scale.patch("/api/clients/client1/clusters/main", {"replicas": 5}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (409, "gitops_values_conflict")

    fixed = {name: value for name, value in broken.items() if name != "image"}
    hand_commit(git_server, path, yaml.safe_dump(fixed).encode())  # a person fixes it, on the server
    again = scale.patch("/api/clients/client1/clusters/main", {"replicas": 6}, format="json")

    assert again.status_code == 200, again.json()
    assert _values(git_server, "client1", "main")["replicaCount"] == 6


def test_gitops_sync_reports_a_values_file_it_cannot_render_and_syncs_the_rest(
    git_server, settings, cluster1, cluster2, capsys
):
    hand_commit(git_server, "clients/client1/main/values.yaml", b"- not\n- a mapping\n")  # on the server
    Cluster.objects.filter(pk=cluster2.pk).update(replicas=7)  # drift elsewhere

    with pytest.raises(CommandError, match="1 cluster"):
        call_command("gitops_sync", "--check")
    out = capsys.readouterr().out
    assert "conflict: The values file must be a YAML mapping." in out
    assert "drift: clients/client2/main/values.yaml" in out

    with pytest.raises(CommandError, match="Everything else is synced"):
        call_command("gitops_sync")
    assert _values(git_server, "client2", "main")["replicaCount"] == 7
    assert (
        file_read(repository=git_server, file_path="clients/client1/main/values.yaml")
        == b"- not\n- a mapping\n"
    )


def test_changes_that_waited_for_a_remote_that_moved_keep_their_own_commits_and_authors(
    tmp_path, settings, cluster1, cluster2, user1, user2, client_for
):
    server_path = tmp_path / "moved-meanwhile.git"
    settings.GITOPS_REMOTE_URL = str(server_path)  # not there yet: the changes wait (202)
    assert (
        client_for(user1)
        .patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")
        .status_code
        == 202
    )
    assert (
        client_for(user2)
        .patch("/api/clients/client2/clusters/main", {"replicas": 4}, format="json")
        .status_code
        == 202
    )

    # Meanwhile the team's server came up with someone else's commit on it.
    git_server = repository_open(
        path=server_path, branch="main", bootstrap_files={"OWNERS": b"platform team\n"}
    )
    call_command("gitops_sync")

    commits = commits_list(repository=git_server)
    subjects = {commit.message.splitlines()[0]: commit.author.email for commit in commits}
    assert subjects["client1/main: replicas 2 -> 3 (scale up)"] == "client1@example.com"
    assert subjects["client2/main: replicas 1 -> 4 (scale up)"] == "client2@example.com"
    assert file_read(repository=git_server, file_path="OWNERS") == b"platform team\n"
    for change in ClusterChange.objects.filter(action="update"):
        assert change.pushed and change.commit in {commit.id for commit in commits}
    assert _values(git_server, "client1", "main")["replicaCount"] == 3
    assert _values(git_server, "client2", "main")["replicaCount"] == 4


def test_a_sealing_certificate_gone_missing_is_said_like_a_broken_one(
    git_server, settings, tmp_path, client1, user1
):
    """A ConfigMap key under another name mounts no file: the change is kept for delivery and the
    sync names the file, as it does for a certificate that is not PEM, instead of a traceback."""
    from django.core.management import CommandError, call_command

    settings.GITOPS_SEALING_CERT = str(tmp_path / "renamed" / "cert.pem")
    response = cluster_create(client=client1, slug="sealed", actor=user1)

    assert response.cluster.pk is not None
    with pytest.raises(CommandError) as refused:
        call_command("gitops_sync", "--check")
    assert "cannot be rendered" in str(refused.value)


def test_without_a_remote_the_sync_says_it_delivered_locally_not_that_it_pushed(
    settings, tmp_path, client1, user1, capsys
):
    from django.core.management import call_command

    settings.GITOPS_SEALING_CERT = str(tmp_path / "renamed" / "cert.pem")
    cluster_create(client=client1, slug="sealed", actor=user1)  # waits: the certificate is missing
    settings.GITOPS_SEALING_CERT = ""  # fixed (no sealing)

    call_command("gitops_sync")

    out = capsys.readouterr().out
    assert "Delivered 1 pending change(s) (no GITOPS_REMOTE_URL: local only)." in out
    assert "to the remote" not in out


def test_a_sealing_certificate_fixed_in_place_is_read_again_without_a_restart(
    git_server, sealing_certificate, settings, client1, user1
):
    from django.core.management import call_command

    path = Path(settings.GITOPS_SEALING_CERT)
    good = path.read_bytes()
    path.write_bytes(b"not a certificate")  # the ConfigMap's wrong key, mounted
    cluster_create(client=client1, slug="sealed", actor=user1)  # waits: cannot be sealed
    assert file_read(repository=git_server, file_path="clients/client1/sealed/apikey.sealed.yaml") is None

    path.write_bytes(good)  # fixed: a new file where the old one was
    os.utime(path, ns=(time.time_ns() + 1_000_000_000,) * 2)  # its own modification time
    call_command("gitops_sync")

    assert file_read(repository=git_server, file_path="clients/client1/sealed/apikey.sealed.yaml") is not None
