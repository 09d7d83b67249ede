"""A client's folder reaches git as ``clients/<client>/client.yaml``, with real repositories."""

from __future__ import annotations

import logging
from fnmatch import fnmatchcase
from pathlib import Path

import pytest
import yaml
from django.core.management import CommandError, call_command

from clusters.management.commands.seed_demo import demo_data_seed
from clusters.models import Client
from clusters.services import client_create, client_update, cluster_create
from gitops.argocd import CLUSTERS_GLOB
from gitops.repository import (
    GitIdentity,
    GitopsRepository,
    branch_tip,
    commits_list,
    file_read,
    files_list,
    repository_open,
)
from tests.conftest import portal_repository
from tests.helpers import hand_commit

# A client's file is committed once its transaction commits, as in production.
pytestmark = pytest.mark.django_db(transaction=True)

PORTAL = GitIdentity(name="Qdrant Portal", email="portal@qdrant-portal.local")


def _client_file(repository: GitopsRepository, client: str) -> dict | None:
    content = file_read(repository=repository, file_path=f"clients/{client}/client.yaml")
    return None if content is None else yaml.safe_load(content)


def _application_folders(repository: GitopsRepository) -> set[str]:
    """The folders Argo CD's git directory generator turns into Applications (Go ``path.Match``)."""
    pattern = CLUSTERS_GLOB.split("/")
    folders: set[str] = set()
    for path in files_list(repository=repository):
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            folder = parts[:depth]
            if len(folder) == len(pattern) and all(map(fnmatchcase, folder, pattern)):
                folders.add("/".join(folder))
    return folders


def test_creating_a_client_commits_its_file_by_the_user_who_asked(git_server, user_factory):
    alice = user_factory(email="alice@example.com", name="Alice Example")

    client_create(slug="acme", name="Acme Corp", actor=alice)

    commits = commits_list(repository=git_server)
    subjects = [commit.message.splitlines()[0] for commit in commits]
    assert subjects == ["acme: client created", "Bootstrap the gitops repository"]
    head = commits[0]
    assert head.author == GitIdentity(name="Alice Example", email="alice@example.com")
    assert head.committer == PORTAL
    assert head.message == "acme: client created\n\nRequested-by: Alice Example <alice@example.com>\n"
    content = file_read(repository=git_server, file_path="clients/acme/client.yaml")
    assert content.startswith(b"# Managed by Qdrant Portal")
    assert yaml.safe_load(content) == {
        "slug": "acme",
        "name": "Acme Corp",
        "namespace": "qdrant-acme",
        "active": True,
    }


def test_a_client_created_without_a_known_user_is_authored_by_the_portal(git_server):
    client_create(slug="acme", name="Acme Corp", active=False)

    head = commits_list(repository=git_server)[0]
    assert head.author == head.committer == PORTAL
    assert head.message == "acme: client created\n"
    assert _client_file(git_server, "acme")["active"] is False


def test_a_name_that_looks_like_yaml_stays_one_string(git_server):
    name = "Acme: #1 {active: false} - [x] & *ref 'quoted'"  # line breaks are refused (config/text.py)
    client_create(slug="acme", name=name)

    assert _client_file(git_server, "acme") == {
        "slug": "acme",
        "name": name,
        "namespace": "qdrant-acme",
        "active": True,
    }


def test_a_client_folder_alone_deploys_nothing_only_its_clusters_do(git_server):
    client = client_create(slug="acme", name="Acme Corp")
    assert "clients/acme/client.yaml" in files_list(repository=git_server)
    assert _application_folders(git_server) == set()

    cluster_create(client=client, slug="prod", actor=None)
    assert _application_folders(git_server) == {"clients/acme/prod"}


def test_renaming_and_deactivating_a_client_rewrites_its_file_in_one_commit(
    git_server, client1, user_factory
):
    bob = user_factory(email="bob@example.com", name="Bob")
    before = len(commits_list(repository=git_server))

    client_update(client=client1, name="Client  1", active=False, actor=bob)

    commits = commits_list(repository=git_server)
    assert len(commits) == before + 1
    assert commits[0].author == GitIdentity(name="Bob", email="bob@example.com")
    assert commits[0].message.splitlines()[0] == 'client1: name "Client One" -> "Client 1", deactivated'
    assert _client_file(git_server, "client1") == {
        "slug": "client1",
        "name": "Client  1",
        "namespace": "qdrant-client1",
        "active": False,
    }


def test_saving_a_client_unchanged_makes_no_commit(git_server, client1):
    tip = branch_tip(repository=git_server)

    client_update(client=client1, name="Client One", active=True)

    assert branch_tip(repository=git_server) == tip


@pytest.mark.parametrize(
    "edit", [None, b"slug: client1\nname: Someone Else\n"], ids=["deleted", "edited_by_hand"]
)
def test_gitops_sync_check_reports_a_missing_or_edited_client_file_and_sync_restores_it(
    git_server, client1, capsys, edit
):
    path = "clients/client1/client.yaml"
    written = file_read(repository=git_server, file_path=path)
    call_command("gitops_sync", "--check")  # in sync after the fixture's creation
    hand_commit(git_server, path, edit)  # someone changes the team's repository directly
    tip = branch_tip(repository=git_server)

    with pytest.raises(CommandError, match="1 file"):
        call_command("gitops_sync", "--check")
    assert f"drift: {path}" in capsys.readouterr().out
    assert branch_tip(repository=git_server) == tip  # --check wrote nothing

    call_command("gitops_sync")
    assert file_read(repository=git_server, file_path=path) == written
    call_command("gitops_sync", "--check")


def test_with_the_remote_unreachable_the_client_is_created_and_gitops_sync_pushes_it_later(
    tmp_path, settings
):
    settings.GITOPS_REMOTE_URL = str(tmp_path / "not-there-yet.git")

    client = client_create(slug="acme", name="Acme Corp")

    assert Client.objects.filter(pk=client.pk).exists()
    assert _client_file(portal_repository(settings), "acme")["name"] == "Acme Corp"  # committed locally
    git_server = repository_open(path=tmp_path / "not-there-yet.git", branch="main", bootstrap_files={})
    assert file_read(repository=git_server, file_path="clients/acme/client.yaml") is None

    call_command("gitops_sync")

    assert _client_file(git_server, "acme")["name"] == "Acme Corp"
    assert branch_tip(repository=git_server) == branch_tip(repository=portal_repository(settings))


def test_a_client_created_while_git_cannot_be_written_is_kept_and_gitops_sync_writes_it(
    tmp_path, settings, caplog
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the repository should be")
    settings.GITOPS_REPO_PATH = blocker / "gitops.git"

    with caplog.at_level(logging.ERROR, logger="clusters.delivery"):
        client = client_create(slug="acme", name="Acme Corp")

    assert Client.objects.get(pk=client.pk).name == "Acme Corp"
    assert "acme: client created" in caplog.text
    settings.GITOPS_REPO_PATH = tmp_path / "gitops-repaired.git"
    call_command("gitops_sync")
    assert _client_file(portal_repository(settings), "acme")["name"] == "Acme Corp"


@pytest.mark.django_db  # inside the test's transaction, to see that nothing is written before it commits
def test_seed_demo_commits_the_demo_clients_after_its_transaction(
    settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        demo_data_seed()
        assert not (Path(settings.GITOPS_REPO_PATH) / "HEAD").exists()  # nothing before the commit

    local = portal_repository(settings)
    for slug, name in (("client1", "Client One"), ("client2", "Client Two")):
        assert _client_file(local, slug)["name"] == name
        assert file_read(repository=local, file_path=f"clients/{slug}/main/values.yaml") is not None
