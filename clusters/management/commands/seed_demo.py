"""Demo clients, users, grants and clusters for development (``make run``); never for production."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.models import User
from clusters.models import Client, Cluster, Grant
from clusters.services import client_create, client_update, cluster_create, grant_set


@dataclass(frozen=True)
class DemoUser:
    email: str
    password: str
    name: str
    client_slug: str | None  # None: an operator who sees every client
    role: str = Grant.Role.OPERATOR


DEMO_CLIENTS = {"client1": "Client One", "client2": "Client Two"}
DEMO_CLUSTER = "main"
DEMO_USERS = (
    # client1's user runs its team (members, tokens, sign-in policy, audit); client2's only operates.
    DemoUser("client1@example.com", "client1", "Client One User", "client1", Grant.Role.ADMIN),
    DemoUser("client2@example.com", "client2", "Client Two User", "client2"),
    DemoUser("admin@example.com", "admin", "Portal Operator", None),
)


def _demo_user_restore(demo: DemoUser) -> User:
    is_operator = demo.client_slug is None
    user = User.objects.filter(email=demo.email).first() or User(email=demo.email)
    user.name = demo.name
    user.is_active = True
    user.is_staff = user.is_superuser = user.is_operator = is_operator
    if not user.check_password(demo.password):
        user.set_password(demo.password)
    user.full_clean()
    user.save()
    return user


@transaction.atomic
def demo_data_seed() -> None:
    """Create (or restore) the demo clients, users and grants; running it twice changes nothing."""
    for slug, name in DEMO_CLIENTS.items():
        client = Client.objects.filter(slug=slug).first()
        if client is None:
            # A database made again over var/: the demo folders in git are the demo's own.
            client_create(slug=slug, name=name, take_over_git_folder=True)
        else:
            client_update(client=client, name=name, active=True)
    for demo in DEMO_USERS:
        user = _demo_user_restore(demo)
        if demo.client_slug:
            grant_set(user=user, client=Client.objects.get(slug=demo.client_slug), role=demo.role)
    for slug in DEMO_CLIENTS:
        client = Client.objects.get(slug=slug)
        if not Cluster.objects.filter(client=client, slug=DEMO_CLUSTER).exists():
            cluster_create(
                client=client, slug=DEMO_CLUSTER, actor=None, replicas=1, take_over_git_folder=True
            )


class Command(BaseCommand):
    help = "Create the demo clients, users, grants and clusters (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off (the demo users have well-known passwords).",
        )

    def handle(self, *args, force: bool = False, **options) -> None:
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates accounts with well-known passwords; "
                "it runs only with DJANGO_DEBUG=1 unless --force is given."
            )
        demo_data_seed()
        logins = ", ".join(f"{u.email} / {u.password}" for u in DEMO_USERS)
        self.stdout.write(self.style.SUCCESS(f"Demo data ready. Sign in with: {logins}"))
