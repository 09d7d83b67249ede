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
    old.get_model("clusters", "Grant").objects.create(user_id=user.pk, client_id=client.pk, role="admin")
    invitations = old.get_model("clusters", "Invitation").objects
    quoted = invitations.create(
        client_id=client.pk, email='"admin@example.com"@attacker.test', role="viewer", token_hash="q" * 64,
        expires_at=now + timedelta(days=1), invited_by_id=user.pk,
    )  # fmt: skip
    plain = invitations.create(
        client_id=client.pk,
        email="b@example.com",
        role="viewer",
        token_hash="p" * 64,
        expires_at=now + timedelta(days=1),
        invited_by_id=user.pk,
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


BEFORE_INVITATIONS_ENDED_WITH_THEIR_INVITER = [
    ("accounts", "0017_user_password_version"),
    ("clusters", "0015_names_cleaned_invitations_to_unplain_addresses_revoked"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("migrated_back_afterwards")
def test_pending_invitations_their_inviter_can_no_longer_give_are_revoked_on_the_trail():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_INVITATIONS_ENDED_WITH_THEIR_INVITER)
    old = executor.loader.project_state(BEFORE_INVITATIONS_ENDED_WITH_THEIR_INVITER).apps
    users, grants = old.get_model("accounts", "User").objects, old.get_model("clusters", "Grant").objects
    client = old.get_model("clusters", "Client").objects.create(slug="acme", name="Acme")
    admin = users.create(email="admin@example.com", password="!")
    demoted = users.create(email="demoted@example.com", password="!")
    deactivated = users.create(email="off@example.com", password="!", is_active=False)
    removed = users.create(email="removed@example.com", password="!")
    operator = users.create(email="ops@example.com", password="!", is_staff=True, is_operator=True)
    grants.create(user_id=admin.pk, client_id=client.pk, role="admin")
    grants.create(user_id=demoted.pk, client_id=client.pk, role="operator")
    grants.create(user_id=deactivated.pk, client_id=client.pk, role="admin")
    soon, now = timezone.now() + timedelta(days=1), timezone.now()
    invitations = old.get_model("clusters", "Invitation").objects
    sent = {
        name: invitations.create(
            client_id=client.pk,
            email=f"{name}@example.com",
            role=role,
            token_hash=name.ljust(64, "x"),
            expires_at=expires_at,
            invited_by_id=inviter.pk if inviter else None,
        ).pk  # fmt: skip
        for name, role, inviter, expires_at in [
            ("by-admin", "admin", admin, soon),
            ("by-operator", "admin", operator, soon),
            ("within-demoted", "operator", demoted, soon),
            ("beyond-demoted", "admin", demoted, soon),
            ("by-deactivated", "viewer", deactivated, soon),
            ("by-removed", "viewer", removed, soon),
            ("by-deleted", "viewer", None, soon),
            ("expired-by-deleted", "viewer", None, now - timedelta(days=1)),
        ]
    }

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    ended = {name for name, pk in sent.items() if Invitation.objects.get(pk=pk).revoked_at is not None}
    assert ended == {"beyond-demoted", "by-deactivated", "by-removed", "by-deleted"}
    trail = ClientAuditEvent.objects.filter(type="invitation_revoked").values_list("target_email", "detail")
    assert sorted(trail) == [
        (f"{name}@example.com", f"as {role}; the inviter can no longer give it")
        for name, role in sorted(
            [
                ("beyond-demoted", "admin"),
                ("by-deactivated", "viewer"),
                ("by-removed", "viewer"),
                ("by-deleted", "viewer"),
            ]
        )
    ]
