"""A client's team through the API: its admins list members, change roles and remove members under
the rules (no role above one's own, the last admin stays), removal takes effect at once on the API
and at /validate, and everything lands in the audit trail only the client's admins read."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from clusters.models import ClientAuditEvent, Grant
from clusters.services import grant_set

MEMBERS = "/api/clients/client1/members"


def test_an_admin_lists_the_members_admins_first(as_admin1, admin1, user1, viewer1, user2):
    members = as_admin1.get(MEMBERS).json()

    assert [(m["email"], m["role"]) for m in members] == [
        ("admin1@example.com", "admin"),
        ("client1@example.com", "operator"),
        ("viewer1@example.com", "viewer"),
    ]
    assert members[0]["userId"] == admin1.pk and members[0]["active"] is True
    assert as_admin1.get("/api/auth/permissions").json()["clients"]["client1"] == [
        "view",
        "configure",
        "credentials",
        "audit",
        "members",
    ]


@pytest.mark.parametrize("who", ["operator", "viewer", "other client"])
def test_only_admins_manage_the_team(auth_client, user1, viewer1, user2, admin1, who):
    client = auth_client({"operator": user1, "viewer": viewer1, "other client": user2}[who])
    for response in (
        client.get(MEMBERS),
        client.patch(f"{MEMBERS}/{viewer1.pk}", {"role": "operator"}, format="json"),
        client.delete(f"{MEMBERS}/{admin1.pk}"),
        client.get("/api/clients/client1/audit"),
    ):
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")


def test_an_admin_changes_a_role_and_the_member_gets_it_at_once(as_admin1, bearer_client, viewer1, cluster1):
    viewer = bearer_client(viewer1)
    assert viewer.get("/api/auth/permissions").json()["clients"] == {"client1": ["view"]}

    changed = as_admin1.patch(f"{MEMBERS}/{viewer1.pk}", {"role": "operator"}, format="json")

    assert changed.status_code == 200 and changed.json()["role"] == "operator"
    assert viewer.get("/api/clients/client1/clusters/main/credentials").status_code == 200
    event = ClientAuditEvent.objects.get(type="member_role_changed")
    assert (event.actor_email, event.target_email, event.detail) == (
        "admin1@example.com",
        "viewer1@example.com",
        "viewer -> operator",
    )


def test_removal_takes_effect_at_once_on_the_api_and_at_validate(as_admin1, bearer_client, user1, cluster1):
    member = bearer_client(user1)
    assert member.get("/api/clients/client1/clusters").status_code == 200
    assert member.get("/api/auth/validate")["X-Auth-Scope"] == "client1"

    assert as_admin1.delete(f"{MEMBERS}/{user1.pk}").status_code == 204

    assert member.get("/api/clients/client1/clusters").json()["code"] == "permission_denied"
    validate = member.get("/api/auth/validate")
    assert validate.status_code == 200 and validate["X-Auth-Scope"] == ""
    fresh = member.get("/api/auth/me")  # the next answer carries an access token without the client
    assert fresh.json()["scopes"] == []
    assert "X-Extended-Token" in fresh
    assert ClientAuditEvent.objects.filter(type="member_removed", target_user=user1).count() == 1


@pytest.mark.parametrize("who", ["operator", "viewer"])
def test_any_member_may_leave_the_client_and_loses_it_at_once(
    auth_client, user1, viewer1, admin1, cluster1, who
):
    member = {"operator": user1, "viewer": viewer1}[who]
    client = auth_client(member)
    assert client.get("/api/clients/client1/clusters").status_code == 200

    assert client.delete(f"{MEMBERS}/{member.pk}").status_code == 204

    assert client.get("/api/clients/client1/clusters").json()["code"] == "permission_denied"
    assert not Grant.objects.filter(user=member).exists()
    event = ClientAuditEvent.objects.get(type="member_removed", target_user=member)
    assert event.actor_email == member.email  # they left: nobody removed them
    # Leaving is one's own: removing anyone else still takes the admin role.
    assert Grant.objects.filter(user=admin1, role="admin").exists()


def test_leaving_needs_a_session_not_a_token(user1, cluster1):
    from tests.helpers import access_token_made

    _, secret = access_token_made(user1, clients={"client1": ["view"]})
    by_token = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")

    response = by_token.delete(f"{MEMBERS}/{user1.pk}")

    assert (response.status_code, response.json()["code"]) == (403, "pat_not_allowed")
    assert Grant.objects.filter(user=user1).exists()


def test_the_last_admin_can_be_neither_demoted_nor_removed(
    as_admin1, admin1, auth_client, user_factory, client1
):
    for response in (
        as_admin1.patch(f"{MEMBERS}/{admin1.pk}", {"role": "operator"}, format="json"),
        as_admin1.delete(f"{MEMBERS}/{admin1.pk}"),
    ):
        assert (response.status_code, response.json()["code"]) == (409, "last_admin")
    assert Grant.objects.get(user=admin1).role == "admin"

    second = user_factory(email="admin2@example.com")
    grant_set(user=second, client=client1, role=Grant.Role.ADMIN)
    assert as_admin1.delete(f"{MEMBERS}/{admin1.pk}").status_code == 204  # leaving is fine now
    as_second = auth_client(second)
    refused = as_second.patch(f"{MEMBERS}/{second.pk}", {"role": "viewer"}, format="json")
    assert refused.json()["code"] == "last_admin"


def test_a_deactivated_admin_does_not_count_as_the_admin_who_stays(as_admin1, admin1, user_factory, client1):
    from accounts.services import user_deactivate

    gone = user_factory(email="gone@example.com")
    grant_set(user=gone, client=client1, role=Grant.Role.ADMIN)
    user_deactivate(user=gone)

    response = as_admin1.delete(f"{MEMBERS}/{admin1.pk}")

    assert (response.status_code, response.json()["code"]) == (409, "last_admin")
    assert Grant.objects.get(user=admin1).role == "admin"


def test_an_admin_may_make_another_member_an_admin_but_no_one_above(as_admin1, user1, admin1):
    # Admin is the highest role a member holds: granting it is granting one's own (operator staff rank
    # above it). Escalation past one's own role is refused at acceptance (tests/clusters/test_invitations.py).
    assert (
        as_admin1.patch(f"{MEMBERS}/{user1.pk}", {"role": "admin"}, format="json").json()["role"] == "admin"
    )
    assert (
        as_admin1.patch(f"{MEMBERS}/{admin1.pk}", {"role": "viewer"}, format="json").json()["role"]
        == "viewer"
    )
    assert as_admin1.get(MEMBERS).json()["code"] == "permission_denied"  # no longer an admin, at once


def test_an_unknown_member_is_a_404(as_admin1, user2):
    assert (
        as_admin1.patch(f"{MEMBERS}/{user2.pk}", {"role": "viewer"}, format="json").json()["code"]
        == "not_found"
    )
    assert as_admin1.delete(f"{MEMBERS}/999999").json()["code"] == "not_found"


def test_an_invalid_role_is_a_400(as_admin1, viewer1):
    response = as_admin1.patch(f"{MEMBERS}/{viewer1.pk}", {"role": "owner"}, format="json")
    assert (response.status_code, list(response.json()["fields"])) == (400, ["role"])


def test_the_audit_trail_is_the_clients_own_and_pages(as_admin1, auth_client, user2, viewer1, client2):
    as_admin1.patch(f"{MEMBERS}/{viewer1.pk}", {"role": "operator"}, format="json")
    grant_set(user=user2, client=client2, role=Grant.Role.ADMIN)  # another client's event

    events = as_admin1.get("/api/clients/client1/audit").json()

    assert {event["type"] for event in events} == {"member_added", "member_role_changed"}
    assert events[0]["type"] == "member_role_changed"
    assert events[0]["actor"] == "admin1@example.com" and events[0]["target"] == "viewer1@example.com"
    older = as_admin1.get(f"/api/clients/client1/audit?before={events[0]['id']}").json()
    assert [event["id"] for event in older] == [event["id"] for event in events[1:]]
    assert auth_client(user2).get("/api/clients/client1/audit").json()["code"] == "permission_denied"


def test_paging_the_audit_trail_shows_every_event_once_whatever_their_clocks_said(
    as_admin1, client1, monkeypatch
):
    """Replicas' clocks differ a little: an event recorded later can carry an earlier time."""
    from datetime import timedelta

    from django.utils import timezone

    from clusters import team_selectors

    monkeypatch.setattr(team_selectors, "AUDIT_PAGE_SIZE", 5)
    now = timezone.now()
    ClientAuditEvent.objects.bulk_create(
        ClientAuditEvent(
            client=client1, type="credentials_revealed", at=now - timedelta(minutes=10 * (i % 2))
        )
        for i in range(12)
    )
    expected = list(
        ClientAuditEvent.objects.filter(client=client1).order_by("-id").values_list("pk", flat=True)
    )

    seen, page = [], as_admin1.get("/api/clients/client1/audit").json()
    while page:
        seen += [event["id"] for event in page]
        page = as_admin1.get(f"/api/clients/client1/audit?before={seen[-1]}").json()

    assert seen == expected  # newest recorded first, none twice, none left out


def test_operators_manage_every_team_through_the_api_too(bearer_client, operator_staff, viewer1, client1):
    staff = bearer_client(operator_staff)
    assert staff.patch(f"{MEMBERS}/{viewer1.pk}", {"role": "admin"}, format="json").json()["role"] == "admin"
    assert APIClient().get(MEMBERS).json()["code"] == "not_authenticated"


@pytest.mark.parametrize("method", ["patch", "delete"])
def test_a_member_id_beyond_any_row_is_a_404(as_admin1, method):
    response = getattr(as_admin1, method)(f"{MEMBERS}/{10**25}", {"role": "viewer"}, format="json")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")
