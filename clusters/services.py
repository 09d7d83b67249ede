"""Writes for clients, clusters and grants."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from accounts.models import User
from clusters.models import Client, Grant


@dataclass(frozen=True)
class DemoUser:
    email: str
    password: str
    name: str
    client_slug: str | None  # None: an operator who sees every client


DEMO_CLIENTS = {"client1": "Client One", "client2": "Client Two"}
DEMO_USERS = (
    DemoUser("client1@example.com", "client1", "Client One User", "client1"),
    DemoUser("client2@example.com", "client2", "Client Two User", "client2"),
    DemoUser("admin@example.com", "admin", "Portal Operator", None),
)


@transaction.atomic
def demo_data_seed() -> None:
    """Create (or restore) the demo clients, users and grants; running it twice changes nothing."""
    for slug, name in DEMO_CLIENTS.items():
        client, _ = Client.objects.get_or_create(slug=slug, defaults={"name": name})
        if client.name != name or not client.active:
            client.name, client.active = name, True
            client.full_clean()
            client.save()

    for demo in DEMO_USERS:
        is_operator = demo.client_slug is None
        user = User.objects.filter(email__iexact=demo.email).first()
        if user is None:
            user = User(email=demo.email)
        user.name = demo.name
        user.is_active = True
        user.is_staff = user.is_superuser = user.is_operator = is_operator
        if not user.check_password(demo.password):
            user.set_password(demo.password)
        user.full_clean()
        user.save()
        if demo.client_slug:
            Grant.objects.update_or_create(
                user=user,
                client=Client.objects.get(slug=demo.client_slug),
                defaults={"role": Grant.Role.OPERATOR},
            )
