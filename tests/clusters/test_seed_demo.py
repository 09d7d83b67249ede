import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from clusters.models import Client, Cluster, ClusterChange, Grant
from gitops.repository import commits_list
from tests.conftest import portal_repository


def _snapshot():
    return (
        sorted(Client.objects.values_list("slug", "name", "active")),
        sorted(User.objects.values_list("email", "is_staff", "is_operator", "is_active", "password")),
        sorted(Grant.objects.values_list("user__email", "client__slug", "role")),
        sorted(Cluster.objects.values_list("client__slug", "slug", "replicas", "api_key_encrypted")),
        ClusterChange.objects.count(),
    )


def test_seed_demo_twice_gives_the_same_data(db):
    call_command("seed_demo", force=True)
    first = _snapshot()
    call_command("seed_demo", force=True)
    assert _snapshot() == first
    clients, users, grants, clusters, changes = first
    assert [slug for slug, _, _ in clients] == ["client1", "client2"]
    assert grants == [
        ("client1@example.com", "client1", "admin"),  # a new user can try the team pages
        ("client2@example.com", "client2", "operator"),
    ]
    assert [(client, slug, replicas) for client, slug, replicas, _ in clusters] == [
        ("client1", "main", 1),
        ("client2", "main", 1),
    ]
    assert changes == 2  # created through the service: one recorded creation each
    admin = User.objects.get(email="admin@example.com")
    assert admin.is_staff and admin.is_operator and admin.check_password("admin")
    assert User.objects.get(email="client1@example.com").check_password("client1")


def test_seed_demo_refuses_to_run_in_production_without_force(db):
    with pytest.raises(CommandError, match="well-known passwords"):
        call_command("seed_demo")
    assert not User.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_seed_demo_commits_each_clients_folder_before_its_cluster(settings):
    """A client made together with its clusters: git shows the client's folder first."""
    call_command("seed_demo", force=True)
    oldest_first = [
        info.message.splitlines()[0]
        for info in reversed(commits_list(repository=portal_repository(settings)))
    ]
    for client in ("client1", "client2"):
        folder = next(
            i for i, message in enumerate(oldest_first) if message.startswith(f"{client}: client created")
        )
        cluster = next(
            i for i, message in enumerate(oldest_first) if message.startswith(f"{client}/main: created")
        )
        assert folder < cluster, oldest_first
