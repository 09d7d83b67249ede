"""Operators keep managing teams in the Django admin: members (grants with the admin role), sign-in
policies, invitations, personal access tokens and the audit trail, all through the services."""

from __future__ import annotations

from django.core import mail
from rest_framework.test import APIClient

from accounts.models import PersonalAccessToken, User
from clusters.models import Client, ClientAuditEvent, Grant, Invitation, RemovedMember, SignInPolicy
from clusters.services import grant_set, invitation_create, invitation_revoke
from tests.accounts.test_admin import user_change_form_data
from tests.clusters.test_admin import _inline_management


def _client_form(client1, **policy) -> dict:
    return {
        "name": client1.name,
        "active": "on",
        **_inline_management("grants", 0),
        **_inline_management("sign_in_policy", 1),
        **_inline_management("clusters", 0),
        **{f"sign_in_policy-0-{name}": value for name, value in policy.items()},
    }


def test_an_operator_sets_a_clients_policy_on_its_page(
    admin_browser, client1, bearer_client, user1, cluster1, settings
):
    settings.GOOGLE_CLIENT_IDS = ["portal.apps.googleusercontent.com"]
    member = bearer_client(user1)
    assert member.get("/api/clients/client1/clusters").status_code == 200

    response = admin_browser.post(
        f"/admin/clusters/client/{client1.pk}/change/",
        _client_form(client1, allowed_methods=["google"], jit_role="viewer", max_session_length="8:00:00"),
    )

    assert response.status_code == 302, response.content.decode()[-2000:]
    policy = SignInPolicy.objects.get(client=client1)
    assert policy.allowed_methods == ["google"] and policy.updated_by_email == "root@example.com"
    assert ClientAuditEvent.objects.filter(type="policy_changed", actor_email="root@example.com").exists()
    assert member.get("/api/clients/client1/clusters").json()["code"] == "step_up_required"


def test_a_policy_that_makes_no_sense_is_a_form_error_in_the_admin(admin_browser, client1):
    response = admin_browser.post(
        f"/admin/clusters/client/{client1.pk}/change/",
        _client_form(client1, allowed_methods=["password"], jit_provisioning="on", jit_role="viewer"),
    )
    assert response.status_code == 200
    assert "Provisioning takes people from one Google Workspace" in response.content.decode()
    assert not SignInPolicy.objects.exists()


def test_a_google_only_policy_on_a_portal_without_google_is_a_form_error(admin_browser, client1, settings):
    """No self-lockout check guards an operator: this keeps them from locking out every member."""
    settings.GOOGLE_CLIENT_IDS = []

    response = admin_browser.post(
        f"/admin/clusters/client/{client1.pk}/change/",
        _client_form(client1, allowed_methods=["google"], jit_role="viewer"),
    )

    assert response.status_code == 200
    assert "Google sign-in is not set up on this portal" in response.content.decode()
    assert not SignInPolicy.objects.exists()


def test_a_stored_google_only_policy_does_not_block_saving_its_client(admin_browser, client1, settings):
    settings.GOOGLE_CLIENT_IDS = ["portal.apps.googleusercontent.com"]
    policy_form = _client_form(client1, allowed_methods=["google"], jit_role="viewer")
    assert admin_browser.post(f"/admin/clusters/client/{client1.pk}/change/", policy_form).status_code == 302
    settings.GOOGLE_CLIENT_IDS = []  # Google sign-in switched off later
    policy = SignInPolicy.objects.get(client=client1)

    form = _client_form(client1, allowed_methods=["google"], jit_role="viewer")
    form.update({"name": "Renamed", "sign_in_policy-0-id": policy.pk, "sign_in_policy-0-client": client1.pk})
    form.update(_inline_management("sign_in_policy", 1, initial=1))
    response = admin_browser.post(f"/admin/clusters/client/{client1.pk}/change/", form)

    assert response.status_code == 302, response.content.decode()[-2000:]
    client1.refresh_from_db()
    assert client1.name == "Renamed"


def test_an_operator_makes_a_member_admin_in_the_members_list(admin_browser, client1, user1):
    grant = Grant.objects.get(user=user1)
    assert (
        admin_browser.post(f"/admin/clusters/grant/{grant.pk}/change/", {"role": "admin"}).status_code == 302
    )
    assert Grant.objects.get(user=user1).role == "admin"
    assert ClientAuditEvent.objects.get(type="member_role_changed").detail == "operator -> admin"


def test_an_operator_invites_and_revokes_in_the_admin(admin_browser, client1, user1):
    refused = admin_browser.post(
        "/admin/clusters/invitation/add/", {"client": client1.pk, "email": user1.email, "role": "admin"}
    )
    assert refused.status_code == 200 and "already a member" in refused.content.decode()

    added = admin_browser.post(
        "/admin/clusters/invitation/add/",
        {"client": client1.pk, "email": "Friend@Example.com", "role": "admin"},
    )

    assert added.status_code == 302
    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.invited_by_email) == ("friend@example.com", "root@example.com")
    assert mail.outbox[0].to == ["friend@example.com"]
    revoked = admin_browser.post(
        "/admin/clusters/invitation/", {"action": "revoke", "_selected_action": [invitation.pk]}, follow=True
    )
    assert Invitation.objects.get().state == "revoked"
    said = [str(message) for message in revoked.context["messages"]]
    assert said[-1] == "Revoked 1 invitation(s): their links no longer work."
    assert admin_browser.get("/admin/clusters/clientauditevent/").status_code == 200


def test_a_deactivated_client_is_taken_for_no_invitation_and_no_new_cluster(admin_browser, client1, client2):
    """Its invitation links would never open, and its clusters would be seen by nobody."""
    client2.active = False
    client2.save()
    for path, form in (
        ("/admin/clusters/invitation/add/", {"email": "friend@example.com", "role": "viewer"}),
        (
            "/admin/clusters/cluster/add/",
            {"slug": "ghost", "replicas": 1, "storage_gi": 10, "version": "v1.19.0"},
        ),
    ):
        # Not offered (test_admin_at_scale: the client search), nor taken when posted anyway.
        refused = admin_browser.post(path, {"client": client2.pk, **form})
        assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert not Invitation.objects.exists() and not client2.clusters.exists()


def test_the_policy_form_offers_only_the_roles_provisioning_gives(admin_browser, client1):
    page = admin_browser.get(f"/admin/clusters/client/{client1.pk}/change/").content.decode()
    offered = page.split('name="sign_in_policy-0-jit_role"')[1].split("</select>")[0]
    assert 'value="viewer"' in offered and 'value="operator"' in offered and 'value="admin"' not in offered


def test_an_operator_revokes_a_personal_access_token(admin_browser, auth_client, user1, cluster1):
    created = (
        auth_client(user1)
        .post("/api/auth/tokens", {"name": "CI", "clients": {"client1": ["view"]}}, format="json")
        .json()
    )
    token = APIClient(HTTP_AUTHORIZATION=f"Bearer {created['token']}")
    assert token.get("/api/clients/client1/clusters").status_code == 200

    listing = admin_browser.get("/admin/accounts/personalaccesstoken/")
    assert created["prefix"] in listing.content.decode() and created["token"] not in listing.content.decode()
    admin_browser.post(
        "/admin/accounts/personalaccesstoken/",
        {"action": "revoke_selected", "_selected_action": [created["id"]], "post": "yes"},
    )

    assert PersonalAccessToken.objects.get().revoked_by_email == "root@example.com"
    assert token.get("/api/clients/client1/clusters").json()["code"] == "token_not_valid"


def test_operators_are_not_bound_by_the_last_admin_rule_in_the_admin(admin_browser, client1, user1):
    grant = grant_set(user=user1, client=client1, role=Grant.Role.ADMIN)
    assert admin_browser.post(f"/admin/clusters/grant/{grant.pk}/delete/", {"post": "yes"}).status_code == 302
    assert not Grant.objects.filter(client=client1).exists()
    assert ClientAuditEvent.objects.filter(type="member_removed", target_email=user1.email).exists()


def test_operators_see_the_removed_members_that_google_sign_in_does_not_bring_back(
    admin_browser, client1, user1
):
    grant = Grant.objects.get(client=client1, user=user1)
    admin_browser.post(f"/admin/clusters/grant/{grant.pk}/delete/", {"post": "yes"})

    listing = admin_browser.get("/admin/clusters/removedmember/").content.decode()
    assert user1.email in listing and "root@example.com" in listing
    assert admin_browser.get("/admin/clusters/removedmember/add/").status_code == 403  # read-only
    removal = RemovedMember.objects.get(client=client1)
    assert admin_browser.get(f"/admin/clusters/removedmember/{removal.pk}/delete/").status_code == 403

    grant_set(user=user1, client=client1, role=Grant.Role.VIEWER)  # a member again: it ends
    assert user1.email not in admin_browser.get("/admin/clusters/removedmember/").content.decode()


def test_an_invitations_page_cannot_be_saved_again(admin_browser, client1, operator):
    """Saving would send a new invitation: a revoked one stays revoked, and nobody is emailed."""
    invitation = invitation_create(client=client1, email="friend@example.com", role="admin", actor=operator)
    invitation_revoke(client=client1, invitation_id=invitation.pk, actor=operator)
    mail.outbox.clear()
    page = admin_browser.get(f"/admin/clusters/invitation/{invitation.pk}/change/")
    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    saved = admin_browser.post(f"/admin/clusters/invitation/{invitation.pk}/change/", {"_save": "Save"})
    assert saved.status_code == 403
    assert [i.state for i in Invitation.objects.all()] == ["revoked"] and mail.outbox == []


def test_inviting_without_a_public_address_is_a_form_error(admin_browser, client1, settings):
    settings.PUBLIC_URL = ""
    response = admin_browser.post(
        "/admin/clusters/invitation/add/", {"client": client1.pk, "email": "x@example.com", "role": "viewer"}
    )
    assert response.status_code == 200 and "PUBLIC_URL" in response.content.decode()
    assert not Invitation.objects.exists() and mail.outbox == []


def _limited_staff_browser(user_factory, *codenames, **flags):
    from django.contrib.auth.models import Permission
    from django.test import Client as BrowserClient

    staff = user_factory(email="helpdesk@example.com", is_staff=True, **flags)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    browser = BrowserClient()
    browser.force_login(staff)
    return staff, browser


def test_staff_who_are_not_operators_act_on_no_client_whatever_their_permissions(
    user_factory, client1, user1
):
    """The admin acts on every client; staff who are not operators reach only their grants' clients."""
    staff, browser = _limited_staff_browser(
        user_factory,
        "view_client",
        "change_client",
        "add_grant",
        "change_grant",
        "delete_grant",
        "view_grant",
    )
    grant_set(user=staff, client=client1, role=Grant.Role.OPERATOR)
    grant_set(user=user1, client=client1, role=Grant.Role.ADMIN)
    own = Grant.objects.get(user=staff)
    form = _client_form(client1)
    form.update({**_inline_management("grants", 1, initial=1), **_inline_management("sign_in_policy", 0)})
    form.update({"grants-0-id": own.pk, "grants-0-user": staff.pk, "grants-0-role": "admin"})

    assert browser.get(f"/admin/clusters/client/{client1.pk}/change/").status_code == 403
    assert browser.post(f"/admin/clusters/client/{client1.pk}/change/", form).status_code == 403
    assert browser.get("/admin/clusters/client/add/").status_code == 403

    assert Grant.objects.get(user=staff).role == "operator"
    index = browser.get("/admin/").content.decode()
    assert "System status" in index and "Clients" not in index


def test_an_operator_below_superuser_may_still_act_with_the_permissions_given(user_factory, client1, user1):
    staff, browser = _limited_staff_browser(
        user_factory, "view_client", "change_client", "change_grant", "view_grant", is_operator=True
    )
    grant = grant_set(user=user1, client=client1, role=Grant.Role.VIEWER)

    assert browser.post(f"/admin/clusters/grant/{grant.pk}/change/", {"role": "admin"}).status_code == 302
    assert Grant.objects.get(user=user1).role == "admin"
    assert browser.get("/admin/clusters/grant/add/").status_code == 403  # not given add_grant
    assert browser.get("/admin/clusters/client/add/").status_code == 403  # nor add_client


def test_every_admin_page_but_the_system_status_is_closed_to_staff_who_are_not_operators(user_factory, rf):
    from django.contrib import admin
    from django.contrib.auth.models import Permission

    staff = user_factory(email="helpdesk@example.com", is_staff=True)
    staff.user_permissions.add(*Permission.objects.all())  # every permission there is
    request = rf.get("/admin/")
    request.user = User.objects.get(pk=staff.pk)

    reachable = {
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if model_admin.has_module_permission(request) or model_admin.has_view_permission(request)
    }

    assert reachable == {"operations.SystemStatus"}


def test_an_operator_deletes_a_member_who_signed_in_and_the_client_trail_says_so(
    admin_browser, operator, bearer_client, user1, client1
):
    api = bearer_client(user1)  # signed in: a session row the operator may not delete by hand
    made = api.post("/api/auth/tokens", {"name": "CI", "clients": {"client1": ["view"]}}, format="json")
    assert made.status_code == 201  # and a token, read-only in the admin too
    confirm = admin_browser.get(f"/admin/accounts/user/{user1.pk}/delete/")
    assert confirm.status_code == 200 and not confirm.context["perms_lacking"]

    response = admin_browser.post(f"/admin/accounts/user/{user1.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not User.objects.filter(pk=user1.pk).exists()
    removed = ClientAuditEvent.objects.get(client=client1, type=ClientAuditEvent.Type.MEMBER_REMOVED)
    assert (removed.actor, removed.target_email) == (operator, "client1@example.com")
    assert api.get("/api/auth/validate").json()["code"] == "account_disabled"  # deactivated, then deleted


def test_a_members_deactivation_and_reactivation_are_on_each_of_their_clients_trails(
    admin_browser, operator, as_admin1, user1, client1, client2
):
    """An auditor asks a client's admin when someone lost access, and who did it."""
    grant_set(user=user1, client=client2, role=Grant.Role.VIEWER)
    admin_browser.post(
        "/admin/accounts/user/", {"action": "deactivate_selected", "_selected_action": [user1.pk]}
    )
    page = admin_browser.get(f"/admin/accounts/user/{user1.pk}/change/")
    data = user_change_form_data(page)
    data.update(email=user1.email, name=user1.name, is_active="on")
    for name in ("date_joined", "last_login"):
        data.pop(name, None)
    assert admin_browser.post(f"/admin/accounts/user/{user1.pk}/change/", data).status_code == 302

    trail = [
        (event["type"], event["actor"], event["target"])
        for event in as_admin1.get("/api/clients/client1/audit").json()
        if event["type"].startswith("member_")
    ]
    assert trail[:2] == [
        ("member_reactivated", operator.email, user1.email),
        ("member_deactivated", operator.email, user1.email),
    ]
    assert ClientAuditEvent.objects.filter(client=client2, type="member_deactivated").count() == 1
    assert User.objects.get(pk=user1.pk).is_active


def test_an_operator_cannot_delete_their_own_account(admin_browser, operator):
    page = admin_browser.get(f"/admin/accounts/user/{operator.pk}/delete/")
    assert "your own account" in page.content.decode()
    admin_browser.post(f"/admin/accounts/user/{operator.pk}/delete/", {"post": "yes"})
    assert User.objects.filter(pk=operator.pk).exists()


def test_deleting_an_account_through_the_service_records_each_removal(operator, user1, client1, client2):
    from clusters.services import account_delete

    grant_set(user=user1, client=client2, role=Grant.Role.VIEWER)

    account_delete(user=user1, actor=operator)

    removed = ClientAuditEvent.objects.filter(type=ClientAuditEvent.Type.MEMBER_REMOVED)
    assert sorted(event.client.slug for event in removed) == ["client1", "client2"]
    assert {event.target_email for event in removed} == {"client1@example.com"}
    assert not User.objects.filter(email="client1@example.com").exists()


def _members(client1, count: int) -> None:
    for index in range(Grant.objects.filter(client=client1).count(), count):
        member = User.objects.create_user(email=f"member{index}@example.com", password=None)
        Grant.objects.create(user=member, client=client1, role="viewer")


def test_a_clients_members_list_costs_the_same_queries_with_many_members_as_with_few(
    admin_browser, client1, django_assert_max_num_queries
):
    _members(client1, 2)
    with django_assert_max_num_queries(100) as few:
        assert admin_browser.get("/admin/clusters/grant/?client=client1").status_code == 200
    _members(client1, 40)
    with django_assert_max_num_queries(len(few.captured_queries)):
        listed = admin_browser.get("/admin/clusters/grant/?client=client1").context["cl"].result_list
    assert len(listed) == 40
    page = admin_browser.get(f"/admin/clusters/client/{client1.pk}/change/").content.decode()
    assert '<a href="/admin/clusters/grant/?client=client1">40 member(s)</a>' in page


def test_a_client_with_hundreds_of_members_keeps_a_page_that_saves(admin_browser, client1):
    """Its members were rows on its page: past about 320 the save posted more fields than Django takes."""
    _members(client1, 400)
    page = admin_browser.get(f"/admin/clusters/client/{client1.pk}/change/")
    form = {"name": "Renamed", "active": "on"}
    for inline in page.context["inline_admin_formsets"]:  # posted back as the browser would
        management = inline.formset.management_form
        form.update({management.add_prefix(name): value for name, value in management.initial.items()})
        for row in inline.formset.forms:
            for field in row:
                value = field.value()
                if value not in (None, False, ""):
                    form[field.html_name] = "on" if value is True else value

    response = admin_browser.post(f"/admin/clusters/client/{client1.pk}/change/", form)

    assert response.status_code == 302, response.content.decode()[-2000:]
    assert Client.objects.get(pk=client1.pk).name == "Renamed"


def test_adding_a_member_already_there_is_refused_not_merged(admin_browser, client1, user1):
    role_before = Grant.objects.get(user=user1, client=client1).role
    response = admin_browser.post(
        "/admin/clusters/grant/add/", {"user": user1.pk, "client": client1.pk, "role": "admin"}
    )
    assert response.status_code == 200
    assert (
        "client1@example.com is already a member of client1: change their row instead."
        in response.content.decode()
    )
    assert Grant.objects.get(user=user1, client=client1).role == role_before


def test_a_new_row_on_a_users_page_for_a_client_they_are_in_is_refused_not_merged(
    admin_browser, client1, user1
):
    """Saved rows are not re-checked (GrantInlineForm); a new one must still not overwrite a member."""
    existing = Grant.objects.get(user=user1, client=client1)
    page = admin_browser.get(f"/admin/accounts/user/{user1.pk}/change/")
    form = user_change_form_data(page)
    form.update(_inline_management("grants", 2, initial=1))
    form.update(
        {"grants-1-user": str(user1.pk), "grants-1-client": str(client1.pk), "grants-1-role": "admin"}
    )

    response = admin_browser.post(f"/admin/accounts/user/{user1.pk}/change/", form)

    assert response.status_code == 200
    assert "client1@example.com is already a member" in response.content.decode()
    assert Grant.objects.get(pk=existing.pk).role == existing.role
