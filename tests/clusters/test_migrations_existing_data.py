"""Rows stored under older rules are brought to today's by the migrations, so that they neither
block unrelated saves nor keep what the new rules refuse."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from accounts.models import PersonalAccessToken, User
from clusters.models import Client, ClientAuditEvent, Invitation, RemovedMember

BEFORE = [
    ("accounts", "0013_names_visible_characters"),
    ("clusters", "0014_client_slug_not_the_portals_namespace"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("migrated_back_afterwards")
def test_old_names_are_cleaned_and_invitations_to_quoted_addresses_revoked():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    now = timezone.now()
    user = old.get_model("accounts", "User").objects.create(
        email="a@example.com", password="!", name="\u3164"
    )
    token = old.get_model("accounts", "PersonalAccessToken").objects.create(
        user_id=user.pk,
        name="CI\u200bdeploys",
        prefix="qpt_x",
        token_hash="h" * 64,
        expires_at=now + timedelta(days=1),
    )
    client = old.get_model("clusters", "Client").objects.create(slug="acme", name="Ac\u00adme")
    invitations = old.get_model("clusters", "Invitation").objects
    quoted = invitations.create(
        client_id=client.pk, email='"admin@example.com"@attacker.test', role="viewer", token_hash="q" * 64,
        expires_at=now + timedelta(days=1),
    )  # fmt: skip
    plain = invitations.create(
        client_id=client.pk,
        email="b@example.com",
        role="viewer",
        token_hash="p" * 64,
        expires_at=now + timedelta(days=1),
    )

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    assert User.objects.get(pk=user.pk).name == ""  # nothing of it showed
    assert PersonalAccessToken.objects.get(pk=token.pk).name == "CIdeploys"
    assert Client.objects.get(pk=client.pk).name == "Acme"
    assert Invitation.objects.get(pk=quoted.pk).revoked_at is not None
    assert Invitation.objects.get(pk=plain.pk).revoked_at is None
    revoked = ClientAuditEvent.objects.get(type="invitation_revoked")
    assert (revoked.target_email, revoked.detail) == (
        '"admin@example.com"@attacker.test',
        "as viewer; the address is no longer accepted",
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("migrated_back_afterwards")
def test_removals_on_the_audit_trail_become_removed_members_that_outlive_it():
    before = [
        ("accounts", "0017_user_password_version"),
        ("clusters", "0015_names_cleaned_invitations_to_unplain_addresses_revoked"),
    ]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps
    users = old.get_model("accounts", "User").objects
    client = old.get_model("clusters", "Client").objects.create(slug="acme", name="Acme")
    gone = users.create(email="gone@example.com", password="!")
    back = users.create(email="back@example.com", password="!")
    old.get_model("clusters", "Grant").objects.create(user_id=back.pk, client_id=client.pk, role="viewer")
    events = old.get_model("clusters", "ClientAuditEvent").objects
    now = timezone.now()
    for days, target, email, actor in [
        (40, gone, "gone@example.com", "first@example.com"),
        (20, gone, "gone@example.com", "admin@example.com"),  # removed again later: this one counts
        (30, None, "deleted@example.com", "root@example.com"),  # the account was deleted since
        (10, back, "back@example.com", "admin@example.com"),  # a member again since
    ]:
        events.create(
            client_id=client.pk, type="member_removed", at=now - timedelta(days=days),
            target_user_id=getattr(target, "pk", None), target_email=email, actor_email=actor,
        )  # fmt: skip

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    removed = RemovedMember.objects.order_by("email")
    assert [(r.email, r.user_id, r.removed_by_email) for r in removed] == [
        ("deleted@example.com", None, "root@example.com"),
        ("gone@example.com", gone.pk, "admin@example.com"),
    ]
    assert removed[1].removed_at == now - timedelta(days=20)
