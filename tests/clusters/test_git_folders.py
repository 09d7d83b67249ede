"""A new client or cluster never takes over, unasked, a folder git holds that the portal does not
own: it may be a cluster Argo CD runs (its keys and volumes would go to the new one)."""

from __future__ import annotations

from io import StringIO

import pytest
import yaml
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from clusters.models import Client, Cluster, ClusterChange
from clusters.repository import repository_get
from clusters.services import client_create, cluster_create
from gitops.repository import branch_tip, commits_list, file_read
from tests.helpers import hand_commit

_FOREIGN_VALUES = b"replicaCount: 3\nimage:\n  tag: v1.13.0\napiKey: someone-elses\n"


def _cluster_form(client: Client, settings, **extra: str) -> dict[str, object]:
    return {
        "client": client.pk,
        "slug": "legacy",
        "replicas": "1",
        "version": settings.QDRANT_VERSIONS[0],
        "storage_gi": "10",
        **extra,
    }


def _client_form(**extra: str) -> dict[str, str]:
    management = {
        f"{prefix}-{name}": value
        for prefix in ("grants", "sign_in_policy", "clusters")
        for name, value in (("TOTAL_FORMS", "0"), ("INITIAL_FORMS", "0"), ("MIN_NUM_FORMS", "0"))
    }
    return {"slug": "acme", "name": "Acme", "active": "on", **management, **extra}


def test_a_cluster_named_like_a_folder_git_holds_is_refused_on_the_admin_form(
    admin_browser, client1, settings
):
    repository = repository_get()
    tip = hand_commit(repository, "clients/client1/legacy/values.yaml", _FOREIGN_VALUES)

    response = admin_browser.post("/admin/clusters/cluster/add/", _cluster_form(client1, settings))

    assert response.status_code == 200
    error = " ".join(response.context["adminform"].form.errors["slug"])
    assert "clients/client1/legacy/ is in git already" in error and "Take over its folder in git" in error
    assert not Cluster.objects.filter(slug="legacy").exists()
    assert branch_tip(repository=repository) == tip  # the running cluster's files are untouched
    assert file_read(repository=repository, file_path="clients/client1/legacy/values.yaml") == _FOREIGN_VALUES


def test_an_operator_who_ticks_take_over_deploys_the_new_cluster_from_that_folder(
    admin_browser, client1, settings, django_capture_on_commit_callbacks
):
    repository = repository_get()
    hand_commit(repository, "clients/client1/legacy/values.yaml", _FOREIGN_VALUES)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_browser.post(
            "/admin/clusters/cluster/add/", _cluster_form(client1, settings, take_over_git_folder="on")
        )

    assert response.status_code == 302, response.content.decode()[:2000]
    cluster = Cluster.objects.get(client=client1, slug="legacy")
    change = cluster.changes.get()
    assert change.message.endswith(", over the folder git held")  # the history says what happened
    values = yaml.safe_load(file_read(repository=repository, file_path="clients/client1/legacy/values.yaml"))
    assert values["replicaCount"] == 1 and values["image"]["tag"] == settings.QDRANT_VERSIONS[0]
    assert commits_list(repository=repository)[0].message.startswith(change.message)


def test_a_cluster_whose_folder_is_free_is_created_as_before(admin_browser, client1, settings):
    hand_commit(repository_get(), "clients/client1/other/values.yaml", _FOREIGN_VALUES)

    response = admin_browser.post("/admin/clusters/cluster/add/", _cluster_form(client1, settings))

    assert response.status_code == 302
    assert not Cluster.objects.get(slug="legacy").changes.get().message.endswith("git held")


def test_the_service_refuses_it_too(client1, settings):
    """A script creating clusters gets the same refusal as the form."""
    hand_commit(repository_get(), "clients/client1/legacy/values.yaml", _FOREIGN_VALUES)

    with pytest.raises(ValidationError) as refused:
        cluster_create(client=client1, slug="legacy", actor=None)

    assert "is in git already" in str(refused.value.message_dict["slug"])
    assert not Cluster.objects.filter(slug="legacy").exists()


def test_a_repository_that_cannot_be_read_refuses_the_creation(client1, settings, tmp_path):
    """Fails closed: whether the folder is free is unknown."""
    broken = tmp_path / "broken.git"
    broken.mkdir()
    (broken / "HEAD").write_text("not a git repository\n")
    settings.GITOPS_REPO_PATH = broken

    with pytest.raises(ValidationError) as refused:
        cluster_create(client=client1, slug="legacy", actor=None)

    assert "cannot be read now" in str(refused.value.message_dict["slug"])
    assert not Cluster.objects.filter(slug="legacy").exists()


def test_a_client_named_like_a_folder_git_holds_is_refused_until_taken_over(
    admin_browser, client1, settings, django_capture_on_commit_callbacks
):
    repository = repository_get()
    hand_commit(repository, "clients/acme/client.yaml", b"slug: acme\nnamespace: qdrant-acme\n")
    hand_commit(repository, "clients/acme/search/values.yaml", _FOREIGN_VALUES)

    refused = admin_browser.post("/admin/clusters/client/add/", _client_form())

    assert refused.status_code == 200
    assert "clients/acme/ is in git already" in " ".join(refused.context["adminform"].form.errors["slug"])
    assert not Client.objects.filter(slug="acme").exists()

    with django_capture_on_commit_callbacks(execute=True):
        taken = admin_browser.post("/admin/clusters/client/add/", _client_form(take_over_git_folder="on"))

    assert taken.status_code == 302, taken.content.decode()[:2000]
    assert Client.objects.filter(slug="acme").exists()
    head = commits_list(repository=repository)[0]
    assert head.message.splitlines()[0] == "acme: client created, over the folder git held"
    # Its unknown cluster folder stays as it was: only a cluster of that name could take it over.
    assert file_read(repository=repository, file_path="clients/acme/search/values.yaml") == _FOREIGN_VALUES


def test_the_service_refuses_a_client_folder_too(client1, settings):
    hand_commit(repository_get(), "clients/acme/client.yaml", b"slug: acme\n")

    with pytest.raises(ValidationError):
        client_create(slug="acme", name="Acme")

    assert not Client.objects.filter(slug="acme").exists()


def test_seed_demo_over_an_earlier_databases_repository_takes_its_demo_folders_back(
    db, settings, django_capture_on_commit_callbacks
):
    """`make run` after deleting the database but not var/: the demo folders are the demo's own."""
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", "--force", stdout=StringIO())
    ClusterChange.objects.all().delete()
    Cluster.objects.all().delete()
    Client.objects.all().delete()
    assert file_read(repository=repository_get(), file_path="clients/client1/main/values.yaml") is not None

    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", "--force", stdout=StringIO())

    assert Cluster.objects.filter(slug="main").count() == 2
    assert ClusterChange.objects.get(cluster__client__slug="client1").message.endswith(
        ", over the folder git held"
    )


# --- with a GitOps remote: what Argo CD deploys is the remote's branch ---------------------------


def test_a_folder_pushed_to_the_remote_by_hand_is_seen_though_this_clone_is_behind(git_server, client1):
    cluster_create(client=client1, slug="first", actor=None)  # the clone exists and is synced
    call_command("gitops_sync", stdout=StringIO())
    hand_commit(git_server, "clients/client1/legacy/values.yaml", _FOREIGN_VALUES)  # pushed by someone else

    with pytest.raises(ValidationError) as refused:
        cluster_create(client=client1, slug="legacy", actor=None)

    assert "clients/client1/legacy/ is in git already" in str(refused.value.message_dict["slug"])
    assert file_read(repository=git_server, file_path="clients/client1/legacy/values.yaml") == _FOREIGN_VALUES


def test_a_replica_without_a_clone_yet_still_sees_the_remotes_folders(
    git_server, client1, settings, tmp_path
):
    """A pod just started: its clone (an emptyDir) is made by its first delivery."""
    hand_commit(git_server, "clients/client1/legacy/values.yaml", _FOREIGN_VALUES)
    settings.GITOPS_REPO_PATH = tmp_path / "new-pod" / "gitops.git"

    with pytest.raises(ValidationError) as refused:
        cluster_create(client=client1, slug="legacy", actor=None)

    assert "is in git already" in str(refused.value.message_dict["slug"])


def test_a_remote_this_replica_never_read_that_cannot_be_reached_refuses_the_creation(
    client1, settings, tmp_path
):
    settings.GITOPS_REPO_PATH = tmp_path / "new-pod" / "gitops.git"
    settings.GITOPS_REMOTE_URL = str(tmp_path / "no-such-remote.git")

    with pytest.raises(ValidationError) as refused:
        cluster_create(client=client1, slug="legacy", actor=None)

    assert "cannot be read now" in str(refused.value.message_dict["slug"])
    assert not Cluster.objects.filter(slug="legacy").exists()


def test_a_remote_down_is_judged_by_what_this_clone_saw_of_it_last(git_server, client1, settings, tmp_path):
    """Creations go on while the remote is down (their commits wait here), refused over a
    folder this clone has seen there."""
    hand_commit(git_server, "clients/client1/legacy/values.yaml", _FOREIGN_VALUES)
    with pytest.raises(CommandError, match="database does not know"):  # this clone reads the remote
        call_command("gitops_sync", stdout=StringIO())
    settings.GITOPS_REMOTE_URL = str(tmp_path / "gone.git")

    with pytest.raises(ValidationError):
        cluster_create(client=client1, slug="legacy", actor=None)
    assert cluster_create(client=client1, slug="fresh", actor=None).cluster.pk is not None
