"""An invitation is worth what its inviter could send: it ends when they can no longer give its role
(removed, demoted, deactivated, deleted) and when their account is taken back (a password changed,
reset or set by an operator: whoever knew the old one may have sent it). Each ends as a revocation
on the client's trail, says so wherever invitations are listed, and nothing brings it back."""

from __future__ import annotations

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from rest_framework.test import APIClient

from accounts.models import User
from clusters.models import Client, ClientAuditEvent, Grant, Invitation
from clusters.services import client_update, grant_set, invitation_create
from tests.accounts.test_admin import user_change_form_data
from tests.clusters.test_invitations import INVITATIONS, invite, link_token, sign_up
from tests.conftest import DEFAULT_PASSWORD, b64

NEW_PASSWORD = "a quite new passphrase 42"


@pytest.fixture
def inviter(user_factory, client1):
    """A second admin of client1, who sends the invitations."""
    user = user_factory(email="inviter@example.com")
    grant_set(user=user, client=client1, role=Grant.Role.ADMIN)
    return user


def _deactivate(admin_browser, inviter, **_) -> None:
    admin_browser.post(
        "/admin/accounts/user/", {"action": "deactivate_selected", "_selected_action": [inviter.pk]}
    )


def _reactivate(admin_browser, user) -> None:
    page = admin_browser.get(f"/admin/accounts/user/{user.pk}/change/")
    data = user_change_form_data(page)
    data.update(email=user.email, name=user.name, is_active="on")
    for name in ("date_joined", "last_login"):
        data.pop(name, None)
    assert admin_browser.post(f"/admin/accounts/user/{user.pk}/change/", data).status_code == 302


def _delete(admin_browser, inviter, **_) -> None:
    assert (
        admin_browser.post(f"/admin/accounts/user/{inviter.pk}/delete/", {"post": "yes"}).status_code == 302
    )


def _remove(admin_browser, inviter, as_admin1, **_) -> None:
    assert as_admin1.delete(f"/api/clients/client1/members/{inviter.pk}").status_code == 204


def _change_password(admin_browser, inviter, as_inviter, **_) -> None:
    body = {"currentPassword": b64(DEFAULT_PASSWORD), "newPassword": b64(NEW_PASSWORD)}
    assert as_inviter.post("/api/auth/password", body, format="json").status_code == 204


def _reset_password(admin_browser, inviter, **_) -> None:
    inviter.refresh_from_db()  # the link is made from the last sign-in and the password now
    body = {
        "uid": urlsafe_base64_encode(force_bytes(inviter.pk)),
        "token": default_token_generator.make_token(inviter),
        "newPassword": b64(NEW_PASSWORD),
    }
    assert APIClient().post("/api/auth/password/reset/confirm", body, format="json").status_code == 204


def _set_password(admin_browser, inviter, **_) -> None:
    form = {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD, "usable_password": "true"}
    assert admin_browser.post(f"/admin/accounts/user/{inviter.pk}/password/", form).status_code == 302


def _turn_password_off(admin_browser, inviter, **_) -> None:
    form = {"usable_password": "false", "unset-password": "1"}
    assert admin_browser.post(f"/admin/accounts/user/{inviter.pk}/password/", form).status_code == 302


ENDINGS = {
    "deactivated": (_deactivate, "root@example.com", "the inviter's account was deactivated"),
    "deleted": (_delete, "root@example.com", "the inviter's account was deleted"),
    "removed": (_remove, "admin1@example.com", "the inviter was removed from the client"),
    "password changed": (_change_password, "inviter@example.com", "the inviter's password was changed"),
    "password reset": (_reset_password, "", "the inviter's password was reset"),
    "password set": (_set_password, "root@example.com", "the inviter's password was set by an operator"),
    "password turned off": (
        _turn_password_off,
        "root@example.com",
        "the inviter's password sign-in was turned off by an operator",
    ),
}


@pytest.mark.parametrize("ending", ENDINGS)
def test_an_invitation_ends_with_its_inviters_hold_on_the_account(
    ending, admin_browser, as_admin1, auth_client, inviter
):
    end, actor, why = ENDINGS[ending]
    as_inviter = auth_client(inviter)
    assert invite(as_inviter, "newcomer@example.com", role="viewer").status_code == 201
    token = link_token()

    end(admin_browser, inviter, as_admin1=as_admin1, as_inviter=as_inviter)

    # Listed nowhere as pending (the API, the Team page's list; the admin says revoked) ...
    assert as_admin1.get(INVITATIONS).json() == []
    assert Invitation.objects.get(email="newcomer@example.com").state == "revoked"
    assert "revoked" in admin_browser.get("/admin/clusters/invitation/").content.decode()
    # ... refused at the preview already, before the invitee fills in a form ...
    preview = APIClient().post("/api/invitations/preview", {"token": token}, format="json")
    assert (preview.status_code, preview.json()["code"]) == (400, "invitation_invalid")
    assert sign_up(token, password=b64("a long new passphrase")).json()["code"] == "invitation_invalid"
    # ... and on the client's trail, with why.
    revoked = ClientAuditEvent.objects.get(type="invitation_revoked")
    assert (revoked.actor_email, revoked.target_email, revoked.detail) == (
        actor,
        "newcomer@example.com",
        f"as viewer; {why}",
    )


def test_a_reactivated_inviter_does_not_bring_their_invitations_back(admin_browser, auth_client, inviter):
    """The owner recovers a compromised admin account: what was sent from it meanwhile stays dead."""
    invite(auth_client(inviter), "mallory@example.com", role="admin")
    token = link_token()
    _deactivate(admin_browser, inviter)

    _reactivate(admin_browser, inviter)

    assert User.objects.get(pk=inviter.pk).is_active
    assert sign_up(token, password=b64("a long new passphrase")).json()["code"] == "invitation_invalid"
    assert not User.objects.filter(email="mallory@example.com").exists()


def test_a_demoted_inviters_invitations_above_their_new_role_end_and_the_others_stay(
    as_admin1, auth_client, inviter, client1
):
    as_inviter = auth_client(inviter)
    invite(as_inviter, "future-admin@example.com", role="admin")
    above = link_token()
    invite(as_inviter, "future-viewer@example.com", role="viewer")
    within = link_token()

    demoted = as_admin1.patch(
        f"/api/clients/client1/members/{inviter.pk}", {"role": "operator"}, format="json"
    )

    assert demoted.status_code == 200
    assert [(i["email"], i["state"]) for i in as_admin1.get(INVITATIONS).json()] == [
        ("future-viewer@example.com", "pending")
    ]
    revoked = ClientAuditEvent.objects.get(type="invitation_revoked")
    assert (revoked.actor_email, revoked.target_email, revoked.detail) == (
        "admin1@example.com",
        "future-admin@example.com",
        "as admin; the inviter is now operator",
    )
    assert sign_up(above, password=b64("a long new passphrase")).json()["code"] == "invitation_invalid"
    # Promoted again: the ended one stays ended; the one within reach works.
    grant_set(user=inviter, client=client1, role=Grant.Role.ADMIN)
    assert sign_up(above, password=b64("a long new passphrase")).json()["code"] == "invitation_invalid"
    assert sign_up(within, password=b64("a long new passphrase")).status_code == 200


def test_an_operators_invitations_outlive_their_removal_from_a_client_they_need_no_grant_for(
    as_admin1, bearer_client, operator_staff, client1
):
    """Operators rank above every role, member or not: their invitations can still be used."""
    grant_set(user=operator_staff, client=client1, role=Grant.Role.ADMIN)
    invite(bearer_client(operator_staff), "newcomer@example.com", role="admin")

    assert as_admin1.delete(f"/api/clients/client1/members/{operator_staff.pk}").status_code == 204

    assert [i["state"] for i in as_admin1.get(INVITATIONS).json()] == ["pending"]
    assert sign_up(link_token(), password=b64("a long new passphrase")).status_code == 200


def test_an_inviter_who_stops_being_an_operator_ends_the_invitations_they_can_no_longer_give(
    admin_browser, as_admin1, bearer_client, operator_staff, client1
):
    invite(bearer_client(operator_staff), "newcomer@example.com", role="admin")
    page = admin_browser.get(f"/admin/accounts/user/{operator_staff.pk}/change/")
    data = user_change_form_data(page)
    data.update(email=operator_staff.email, name=operator_staff.name, is_active="on", is_staff="on")
    data.pop("is_operator", None)  # unticked
    for name in ("date_joined", "last_login"):
        data.pop(name, None)

    assert admin_browser.post(f"/admin/accounts/user/{operator_staff.pk}/change/", data).status_code == 302

    assert not User.objects.get(pk=operator_staff.pk).is_operator
    assert as_admin1.get(INVITATIONS).json() == []
    revoked = ClientAuditEvent.objects.get(type="invitation_revoked")
    assert revoked.detail == "as admin; the inviter is no longer an operator"


def test_deactivating_a_client_ends_its_invitations_and_reactivating_it_does_not_bring_them_back(
    admin_browser, as_admin1, client1
):
    """A suspended client's links stay dead: whoever it is reactivated for did not send them."""
    invite(as_admin1, "newcomer@example.com", role="viewer")
    token = link_token()

    client_update(client=client1, name=client1.name, active=False, actor=None)
    client_update(client=client1, name=client1.name, active=True, actor=None)

    assert Invitation.objects.get(email="newcomer@example.com").state == "revoked"
    assert as_admin1.get(INVITATIONS).json() == []  # no longer listed as pending
    assert sign_up(token, password=b64("a long new passphrase")).json()["code"] == "invitation_invalid"
    revoked = ClientAuditEvent.objects.get(type="invitation_revoked")
    assert revoked.detail == "as viewer; the client was deactivated"


def test_an_invitation_to_a_client_deactivated_since_its_page_was_read_is_not_sent(
    inviter, client1, mailoutbox
):
    """The check under the client's lock sees the deactivation the caller's scope check missed."""
    Client.objects.filter(pk=client1.pk).update(active=False)  # client1 as read before: still active

    with pytest.raises(ValidationError) as refused:
        invitation_create(client=client1, email="late@example.com", role="viewer", actor=inviter)

    assert "deactivated" in str(refused.value.message_dict["client"])
    assert not Invitation.objects.exists() and mailoutbox == []
