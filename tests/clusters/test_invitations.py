"""Invitations end to end: an admin invites, the email carries a one-use link, the invitee signs up
with a password or with Google (google-auth with test keys, as in tests/accounts) or accepts as the
signed-in user, and then sees the client. Plus every way an invitation stops working."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import GoogleAccount, User
from accounts.services import user_deactivate
from clusters.models import ClientAuditEvent, Grant, Invitation, SignInPolicy
from clusters.services import account_delete, grant_set
from tests.accounts.google_tokens import id_token
from tests.conftest import DEFAULT_PASSWORD, b64, login

INVITATIONS = "/api/clients/client1/invitations"


def invite(client, email="new@example.com", role="operator"):
    return client.post(INVITATIONS, {"email": email, "role": role}, format="json")


def link_token() -> str:
    """The token in the last email's link (https://portal.example.com/#/invitations/<token>)."""
    (url,) = re.findall(r"https://portal\.example\.com/#/invitations/([A-Za-z0-9_-]+)", mail.outbox[-1].body)
    return url


def sign_up(token: str, **body):
    return APIClient().post("/api/invitations/sign-up", {"token": token, **body}, format="json")


def test_the_email_offers_google_only_when_the_portal_has_it_and_says_how_members_sign_in(
    as_admin1, client1, settings
):
    settings.GOOGLE_CLIENT_IDS = []
    settings.INVITATION_TTL = timedelta(hours=36)
    invite(as_admin1, "first@example.com")
    assert "or create one with a password," in mail.outbox[-1].body and "Google" not in mail.outbox[-1].body
    assert "within 36 hours" in mail.outbox[-1].body  # not "2 days": never more than the link works

    settings.GOOGLE_CLIENT_IDS = ["portal.apps.googleusercontent.com"]
    SignInPolicy.objects.create(client=client1, allowed_methods=["google", "passkey"], mfa_required=True)
    invite(as_admin1, "second@example.com")
    message = mail.outbox[-1]
    assert "or create one with a password or with Google," in message.body
    # A passkey counts as a second factor; a password account meets the policy once it adds one.
    assert (
        "Client One asks its members to sign in with Google or a passkey and use a second factor "
        "(a passkey is one). An account made with a password meets it once it has a passkey: add one "
        "under Security." in message.body
    )
    assert "with a password or with Google" in message.alternatives[0][0]


def preview(token: str) -> dict:
    response = APIClient().post("/api/invitations/preview", {"token": token}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_a_client_that_asks_for_its_google_workspace_is_joined_with_google_only(as_admin1, client1, settings):
    settings.GOOGLE_CLIENT_IDS = ["portal.apps.googleusercontent.com"]
    SignInPolicy.objects.create(client=client1, allowed_methods=["google"], google_domain="example.com")
    invite(as_admin1, "new@example.com")

    # A password account would never meet the policy: neither the email nor the page offers one.
    assert "or create one with Google," in mail.outbox[-1].body
    terms = preview(link_token())
    assert terms["signUpMethods"] == ["google"]
    assert terms["signInRequirement"] == (
        "Client One asks its members to sign in with a Google account of example.com."
    )


def test_a_client_that_asks_for_google_on_a_portal_without_it_offers_no_way_and_says_whom_to_ask(
    as_admin1, client1, settings
):
    settings.GOOGLE_CLIENT_IDS = []
    SignInPolicy.objects.create(client=client1, allowed_methods=["google"])
    invite(as_admin1, "new@example.com")

    # An account made with a password would never reach the client: none is offered.
    assert "or create one" not in mail.outbox[-1].body
    terms = preview(link_token())
    assert terms["signUpMethods"] == []
    assert terms["signInRequirement"] == (
        "Client One asks its members to sign in with Google. This portal does not offer Google sign-in: "
        "ask an operator."
    )


def test_a_way_of_joining_the_invitation_does_not_offer_is_refused_and_the_link_stays_unused(
    as_admin1, client1, google, settings
):
    SignInPolicy.objects.create(client=client1, allowed_methods=["google"], google_domain="example.com")
    invite(as_admin1, "alice@example.com")
    token = link_token()

    refused = sign_up(token, name="Alice", password=b64("a long new passphrase"))
    assert (refused.status_code, refused.json()["code"]) == (403, "sign_up_method_not_allowed")
    assert refused.json()["detail"].startswith("Client One asks its members to sign in with a Google account")
    assert not User.objects.filter(email="alice@example.com").exists()
    assert preview(token)["signUpMethods"] == ["google"]  # still open

    SignInPolicy.objects.filter(client=client1).update(allowed_methods=["password"], google_domain="")
    refused = sign_up(token, credential=id_token(google))
    assert (refused.status_code, refused.json()["code"]) == (403, "sign_up_method_not_allowed")
    assert sign_up(token, name="Alice", password=b64("a long new passphrase")).status_code == 200


def test_without_a_policy_every_way_is_offered_and_nothing_is_asked(as_admin1, settings):
    settings.GOOGLE_CLIENT_IDS = ["portal.apps.googleusercontent.com"]
    invite(as_admin1, "new@example.com")
    terms = preview(link_token())
    assert (terms["signUpMethods"], terms["signInRequirement"]) == (["password", "google"], "")


def test_an_invited_person_signs_up_with_a_password_and_sees_the_client(as_admin1, cluster1):
    response = invite(as_admin1, "New.Person@Example.com")

    assert response.status_code == 201, response.content
    assert response.json()["email"] == "new.person@example.com" and response.json()["state"] == "pending"
    (message,) = mail.outbox
    assert message.to == ["new.person@example.com"] and "Client One" in message.subject
    assert "as operator" in message.body and "within 7 days" in message.body
    token = link_token()
    assert token not in str(Invitation.objects.values_list().get())  # only its hash is kept

    preview = APIClient().post("/api/invitations/preview", {"token": token}, format="json").json()
    assert (preview["client"], preview["role"], preview["accountExists"]) == ("client1", "operator", False)
    signed_up = sign_up(token, name="New Person", password=b64("a long new passphrase"), tokenDelivery="body")

    assert signed_up.status_code == 200, signed_up.content
    access = signed_up.json()["accessToken"]
    member = APIClient(HTTP_AUTHORIZATION=f"Bearer {access}")
    assert [c["slug"] for c in member.get("/api/clients").json()] == ["client1"]
    assert member.get("/api/clients/client1/clusters/main/credentials").status_code == 200
    assert User.objects.get(email="new.person@example.com").name == "New Person"
    assert sign_up(token, password=b64("another long passphrase")).json()["code"] == "invitation_invalid"
    assert {e.type for e in ClientAuditEvent.objects.all()} >= {"member_invited", "invitation_accepted"}


def test_a_name_with_control_characters_is_refused_at_sign_up_and_the_link_still_works(as_admin1, cluster1):
    invite(as_admin1, "new.person@example.com")
    token = link_token()

    refused = sign_up(token, name="New\u202eosreP", password=b64("a long new passphrase"))

    assert (refused.status_code, list(refused.json()["fields"])) == (400, ["name"])
    assert not User.objects.filter(email="new.person@example.com").exists()
    assert sign_up(token, name="New Person", password=b64("a long new passphrase")).status_code == 200


def test_an_invited_person_signs_up_with_google(as_admin1, google, cluster1):
    invite(as_admin1, "alice@example.com", role="viewer")

    response = sign_up(link_token(), credential=id_token(google), tokenDelivery="body")

    assert response.status_code == 200, response.content
    user = User.objects.get(email="alice@example.com")
    assert not user.has_usable_password() and GoogleAccount.objects.filter(user=user).exists()
    assert Grant.objects.get(user=user).role == "viewer"
    me = APIClient(HTTP_AUTHORIZATION=f"Bearer {response.json()['accessToken']}").get("/api/auth/me")
    assert me.json()["scopes"] == ["client1"]


def test_a_google_sign_up_with_the_browsers_nonce_works_there_only(as_admin1, google, cluster1):
    invite(as_admin1, "alice@example.com", role="viewer")
    browser = APIClient()
    credential = id_token(google, nonce=browser.get("/api/auth/google/nonce").json()["nonce"])
    body = {"token": link_token(), "credential": credential}

    copied = APIClient().post("/api/invitations/sign-up", body, format="json")
    assert (copied.status_code, copied.json()["code"]) == (401, "invalid_google_token")
    assert not User.objects.filter(email="alice@example.com").exists()

    joined = browser.post("/api/invitations/sign-up", body, format="json")
    assert joined.status_code == 200, joined.content
    assert Grant.objects.get(user__email="alice@example.com").role == "viewer"


def test_google_for_another_address_cannot_take_the_invitation(as_admin1, google):
    invite(as_admin1, "bob@example.com")
    response = sign_up(link_token(), credential=id_token(google))  # alice@example.com's Google account
    assert (response.status_code, response.json()["code"]) == (403, "invitation_email_mismatch")
    assert not User.objects.filter(email="alice@example.com").exists()


def test_an_existing_user_signs_in_and_accepts(as_admin1, user2, auth_client, cluster1):
    invite(as_admin1, user2.email, role="viewer")
    token = link_token()
    preview = APIClient().post("/api/invitations/preview", {"token": token}, format="json").json()
    assert preview["accountExists"] is True
    assert sign_up(token, password=b64("a long new passphrase")).json()["code"] == "account_exists"

    member = auth_client(user2)
    accepted = member.post("/api/invitations/accept", {"token": token}, format="json")

    assert accepted.status_code == 200, accepted.content
    assert accepted.json() == {"client": "client1", "role": "viewer"}
    assert sorted(c["slug"] for c in member.get("/api/clients").json()) == ["client1", "client2"]


@pytest.mark.parametrize(
    ("held", "detail"),
    [
        (None, "as operator; invited by admin1@example.com"),
        ("viewer", "viewer -> operator; invited by admin1@example.com"),
        ("admin", "already admin; invited by admin1@example.com as operator"),
    ],
    ids=["new member", "raised", "already above"],
)
def test_an_acceptance_is_on_the_trail_as_one_with_its_inviter_whatever_the_invitee_held(
    held, detail, as_admin1, user2, auth_client, client1, operator_staff
):
    """An operator made the invitee a member meanwhile: their acceptance still reads as the
    invitation's, never as a member raising their own role."""
    invite(as_admin1, user2.email, role="operator")
    if held:
        grant_set(user=user2, client=client1, role=held, actor=operator_staff)

    accepted = auth_client(user2).post("/api/invitations/accept", {"token": link_token()}, format="json")

    assert accepted.status_code == 200, accepted.content
    newest = as_admin1.get("/api/clients/client1/audit").json()[0]
    assert (newest["type"], newest["actor"], newest["target"], newest["detail"]) == (
        "invitation_accepted",
        user2.email,
        user2.email,
        detail,
    )
    assert not ClientAuditEvent.objects.filter(type="member_role_changed", actor=user2).exists()


def test_only_the_addressee_accepts(as_admin1, auth_client, user2):
    invite(as_admin1, "someone.else@example.com")
    response = auth_client(user2).post("/api/invitations/accept", {"token": link_token()}, format="json")
    assert (response.status_code, response.json()["code"]) == (403, "invitation_email_mismatch")
    assert not Grant.objects.filter(user=user2, client__slug="client1").exists()


def test_an_invitation_expires_after_seven_days_and_can_be_revoked(as_admin1):
    invite(as_admin1, "late@example.com")
    late = link_token()
    with time_machine.travel(timezone.now() + timedelta(days=7, minutes=1)):
        assert sign_up(late, password=b64("a long new passphrase")).json()["code"] == "invitation_invalid"
        assert Invitation.objects.get(email="late@example.com").state == "expired"

    invite(as_admin1, "revoked@example.com")
    revoked = link_token()
    invitation_id = as_admin1.get(INVITATIONS).json()[0]["id"]
    assert as_admin1.get(f"{INVITATIONS}/{invitation_id}").json()["email"] == "revoked@example.com"
    assert as_admin1.delete(f"{INVITATIONS}/{invitation_id}").status_code == 204
    again = as_admin1.delete(f"{INVITATIONS}/{invitation_id}")
    assert (again.status_code, again.json()["code"]) == (409, "invitation_not_pending")
    assert "revoked" in again.json()["detail"]
    assert sign_up(revoked, password=b64("a long new passphrase")).json()["code"] == "invitation_invalid"
    assert [i["email"] for i in as_admin1.get(INVITATIONS).json()] == ["late@example.com"]


def test_an_expired_invitation_stays_listed_until_an_admin_revokes_it(as_admin1):
    invite(as_admin1, "late@example.com")
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    [late] = as_admin1.get(INVITATIONS).json()
    assert (late["email"], late["state"]) == ("late@example.com", "expired")
    assert as_admin1.delete(f"{INVITATIONS}/{late['id']}").status_code == 204
    assert as_admin1.get(INVITATIONS).json() == []


def test_a_new_invitation_replaces_the_open_one(as_admin1):
    invite(as_admin1, "twice@example.com", role="viewer")
    first = link_token()
    invite(as_admin1, "Twice@example.com", role="admin")
    assert sign_up(first, password=b64("a long new passphrase")).json()["code"] == "invitation_invalid"
    assert sign_up(link_token(), password=b64("a long new passphrase")).status_code == 200
    assert Grant.objects.get(user__email="twice@example.com").role == "admin"
    # The trail says the first link died, and why, as it does for a revocation on the Team page.
    trail = [
        (event.type, event.detail)
        for event in ClientAuditEvent.objects.filter(target_email="twice@example.com").order_by("pk")
    ]
    assert trail[:3] == [
        ("member_invited", "as viewer"),
        ("invitation_revoked", "as viewer; replaced by a new invitation"),
        ("member_invited", "as admin"),
    ]


def test_replacing_an_expired_invitation_revokes_nothing_on_the_trail(as_admin1):
    invite(as_admin1, "late@example.com", role="viewer")
    with time_machine.travel(timezone.now() + timedelta(days=30)):  # long past INVITATION_TTL
        invite(as_admin1, "late@example.com", role="viewer")
    assert not ClientAuditEvent.objects.filter(type="invitation_revoked").exists()


def test_members_and_bad_input_are_refused(as_admin1, user1):
    assert invite(as_admin1, user1.email).json()["code"] == "already_member"
    assert list(invite(as_admin1, "not an address").json()["fields"]) == ["email"]
    assert list(invite(as_admin1, role="owner").json()["fields"]) == ["role"]
    weak = sign_up(invite(as_admin1) and link_token(), password=b64("123"))
    assert (weak.status_code, list(weak.json()["fields"])) == (400, ["password"])


def test_an_old_invitation_cannot_grant_more_than_its_inviter_now_holds(
    as_admin1, admin1, client1, bearer_client, operator_staff
):
    invite(as_admin1, "escalate@example.com", role="admin")
    token = link_token()
    grant_set(user=admin1, client=client1, role=Grant.Role.OPERATOR, actor=operator_staff)  # demoted since

    response = sign_up(token, password=b64("a long new passphrase"))

    assert (response.status_code, response.json()["code"]) == (400, "invitation_invalid")  # it ended
    assert not User.objects.filter(email="escalate@example.com").exists()
    # Operators rank above every role: theirs still work.
    staff = bearer_client(operator_staff)
    assert (
        staff.post(INVITATIONS, {"email": "escalate@example.com", "role": "admin"}, format="json").status_code
        == 201
    )
    assert sign_up(link_token(), password=b64("a long new passphrase")).status_code == 200


def test_a_deactivated_admins_open_invitations_grant_nothing(as_admin1, admin1, client1, operator_staff):
    """An operator deactivates a (perhaps compromised) client admin: the links they sent die too."""
    invite(as_admin1, "mallory@example.com", role="admin")
    token = link_token()
    assert user_deactivate(user=admin1, actor=operator_staff)

    response = sign_up(token, password=b64("a long new passphrase"))

    assert (response.status_code, response.json()["code"]) == (400, "invitation_invalid")  # it ended
    assert not User.objects.filter(email="mallory@example.com").exists()
    assert not Grant.objects.filter(client=client1, user__email="mallory@example.com").exists()


def test_a_deleted_accounts_open_invitations_do_not_make_it_again(as_admin1, user_factory, operator_staff):
    """An operator deletes someone's account: a link left in their mailbox must not bring it back."""
    leaver = user_factory(email="leaver@example.com")
    assert invite(as_admin1, "leaver@example.com", role="operator").status_code == 201
    token = link_token()

    assert account_delete(user=leaver, actor=operator_staff)

    response = sign_up(token, password=b64("a long new passphrase"))
    assert (response.status_code, response.json()["code"]) == (400, "invitation_invalid")
    assert not User.objects.filter(email="leaver@example.com").exists()
    revoked = ClientAuditEvent.objects.get(type="invitation_revoked")
    assert (revoked.target_email, revoked.detail) == (
        "leaver@example.com",
        "as operator; the account was deleted",
    )


def test_only_admins_invite(auth_client, user1, viewer1):
    for member in (user1, viewer1):
        response = invite(auth_client(member))
        assert (response.status_code, response.json()["code"]) == (403, "permission_denied")
    assert mail.outbox == []


def test_a_signed_in_mfa_user_who_signs_up_with_google_still_needs_the_second_factor(as_admin1, google, user):
    # alice@example.com exists (the `user` fixture) with a second factor: the Google link is made,
    # and the sign-in goes on with its second step.
    from accounts.models import TotpDevice
    from config.crypto import TOTP_SECRETS, field_encrypt

    TotpDevice.objects.create(
        user=user, secret_encrypted=field_encrypt(plaintext="JBSWY3DPEHPK3PXP", purpose=TOTP_SECRETS),
        confirmed_at=timezone.now(),
    )  # fmt: skip
    invite(as_admin1, user.email)
    response = sign_up(link_token(), credential=id_token(google))
    assert response.status_code == 200 and response.json()["mfaRequired"] is True
    assert Grant.objects.get(user=user).role == "operator"
    assert login(APIClient(), user, DEFAULT_PASSWORD).json()["mfaRequired"] is True


def test_without_a_public_address_an_invitation_is_refused_and_nothing_is_kept(as_admin1, settings):
    settings.PUBLIC_URL = ""  # the email's link would lead nowhere

    response = invite(as_admin1)

    assert (response.status_code, response.json()["code"]) == (503, "email_unavailable")
    assert Invitation.objects.count() == 0 and mail.outbox == []


def test_one_user_cannot_make_the_portal_flood_an_address(
    as_admin1, auth_client, user_factory, client1, settings
):
    settings.INVITATION_THROTTLE = "3/hour"
    for _ in range(3):
        assert invite(as_admin1, email="target@example.com").status_code == 201

    refused = invite(as_admin1, email="target@example.com")

    assert (refused.status_code, refused.json()["code"]) == (429, "throttled")
    assert int(refused["Retry-After"]) > 0
    assert len(mail.outbox) == 3
    assert as_admin1.get(INVITATIONS).status_code == 200  # reading the list is not limited
    # the limit is the sender's own: another admin's invitation goes out
    other_admin = user_factory(email="admin2@example.com")
    grant_set(user=other_admin, client=client1, role=Grant.Role.ADMIN)
    assert invite(auth_client(other_admin), email="target@example.com").status_code == 201
    assert len(mail.outbox) == 4


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_accepting_while_an_admin_invites_the_same_address_again_ends_one_way_or_the_other(
    admin1, client1, user_factory
):
    """Both change the same invitation and the same team: they queue up, and never deadlock
    (which would answer 503, as if the database were down)."""
    from functools import partial

    from clusters.services import grant_remove, invitation_accept, invitation_create
    from config.errors import AlreadyMember, InvitationInvalid
    from tests.helpers import concurrent_writers_required, race

    concurrent_writers_required()
    invitee = user_factory(email="racer@example.com")

    def invite():
        return invitation_create(client=client1, email=invitee.email, role="viewer", actor=admin1)

    for _ in range(25):
        invite()
        token = link_token()
        accepted, invited = race(partial(invitation_accept, token=token, user=invitee), invite)

        assert (isinstance(accepted, Grant) and isinstance(invited, AlreadyMember)) or (
            isinstance(accepted, InvitationInvalid) and isinstance(invited, Invitation)
        ), (accepted, invited)
        grant_remove(user=invitee, client=client1)
        open_ones = Invitation.objects.filter(client=client1, accepted_at=None, revoked_at=None)
        open_ones.update(revoked_at=timezone.now())


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_invitation_accepted_while_its_client_is_deactivated_joins_nothing(admin1, client1, user_factory):
    from clusters.services import client_update, invitation_accept, invitation_create
    from config.errors import InvitationInvalid
    from tests.helpers import Racer, concurrent_writers_required

    concurrent_writers_required()
    invitee = user_factory(email="racer@example.com")
    invitation_create(client=client1, email=invitee.email, role="viewer", actor=admin1)
    token = link_token()
    deactivating = Racer(lambda: client_update(client=client1, name=client1.name, active=False), held=True)
    accepting = Racer(lambda: invitation_accept(token=token, user=invitee))

    deactivating.start()
    assert deactivating.called.wait(timeout=30)
    accepting.start()
    accepting.join(timeout=0.5)  # it reads the invitation (its client still active), then waits
    deactivating.finish()

    assert isinstance(accepting.finish(), InvitationInvalid)
    assert not Grant.objects.filter(user=invitee, client=client1).exists()
