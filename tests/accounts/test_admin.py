"""The admin: sessions (filter, revoke), users (deactivate, password change revoke), read-only audit."""

from datetime import timedelta

import pytest
import time_machine
from django.core.cache import caches
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent, Session, User
from tests.accounts.test_sessions import DEAD_REDIS
from tests.conftest import DEFAULT_PASSWORD, login


@pytest.fixture
def operator_browser(client, user_factory):
    # As `createsuperuser` makes one: an operator too.
    admin = user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)
    client.force_login(admin)
    return client


def test_operator_revokes_selected_sessions(operator_browser, bearer_client, user):
    api = bearer_client(user)
    session = Session.objects.get(user=user)
    selection = {"action": "revoke_selected", "_selected_action": [str(session.pk)]}

    asked = operator_browser.post("/admin/accounts/session/", selection)
    assert "Each session ends now" in asked.content.decode()  # asks first, revokes nothing
    assert api.get("/api/auth/me").status_code == 200

    response = operator_browser.post("/admin/accounts/session/", {**selection, "post": "yes"})
    assert response.status_code == 302
    session.refresh_from_db()
    assert session.revoked_reason == "operator"
    assert api.get("/api/auth/me").json()["code"] == "token_not_valid"


@pytest.mark.parametrize(("state", "shown"), [("active", True), ("revoked", False)])
def test_session_list_filters_by_state_and_user(operator_browser, bearer_client, user, state, shown):
    bearer_client(user)
    response = operator_browser.get(f"/admin/accounts/session/?state={state}&user__id__exact={user.pk}")
    assert response.status_code == 200
    assert ([row.user.email for row in response.context["cl"].result_list] == ["alice@example.com"]) is shown


def test_a_session_that_timed_out_idle_is_not_listed_as_active(
    operator_browser, bearer_client, user, settings
):
    """The API refuses it after JWT_TTL unused: the admin must not say it is live."""
    bearer_client(user)  # signed in, then unused for longer than JWT_TTL:
    Session.objects.filter(user=user).update(
        last_seen_at=timezone.now() - settings.JWT_TTL - timedelta(minutes=1)
    )
    listed = {
        state: [
            row.user.email
            for row in operator_browser.get(
                f"/admin/accounts/session/?state={state}&user__id__exact={user.pk}"
            )
            .context["cl"]
            .result_list
        ]
        for state in ("active", "idle")
    }
    assert listed == {"active": [], "idle": ["alice@example.com"]}


def test_deactivating_a_user_in_the_admin_revokes_their_sessions(operator_browser, bearer_client, user):
    api = bearer_client(user)
    response = operator_browser.post(
        "/admin/accounts/user/", {"action": "deactivate_selected", "_selected_action": [str(user.pk)]}
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert not user.is_active
    assert api.get("/api/auth/me").json()["code"] == "account_disabled"


def test_deactivating_says_whom_and_never_deactivates_the_operator_doing_it(
    operator_browser, user_factory, user
):
    me = User.objects.get(email="root@example.com")
    gone = user_factory(email="gone@example.com", is_active=False)

    page = operator_browser.post(
        "/admin/accounts/user/",
        {"action": "deactivate_selected", "_selected_action": [str(me.pk), str(user.pk)]},
        follow=True,
    ).content.decode()

    assert "You cannot deactivate yourself" in page and "Deactivated alice@example.com;" in page
    me.refresh_from_db()
    user.refresh_from_db()
    assert me.is_active and not user.is_active
    assert operator_browser.get("/admin/").status_code == 200  # still signed in
    again = operator_browser.post(
        "/admin/accounts/user/",
        {"action": "deactivate_selected", "_selected_action": [str(gone.pk)]},
        follow=True,
    ).content.decode()
    assert "Nobody was deactivated" in again and "Deactivated " not in again


def user_change_form_data(page) -> dict:
    """What the user change page posts back unchanged: the user's fields and every inline's rows."""
    form = page.context["adminform"].form
    data = {
        k: v
        for k, v in form.initial.items()
        if v is not None and k not in {"password", "groups", "user_permissions"}
    }
    data.update(date_joined_0="2026-01-01", date_joined_1="00:00:00")
    for inline in page.context["inline_admin_formsets"]:
        formset = inline.formset
        management = formset.management_form
        data.update({management.add_prefix(name): value for name, value in management.initial.items()})
        for row in formset.initial_forms:
            data.update({row.add_prefix(name): value for name, value in row.initial.items()})
            data[row.add_prefix(formset.model._meta.pk.name)] = row.instance.pk
            data[row.add_prefix(formset.fk.name)] = formset.instance.pk
    return data


def test_unticking_active_on_the_user_form_revokes_their_sessions(operator_browser, bearer_client, user):
    api = bearer_client(user)
    page = operator_browser.get(f"/admin/accounts/user/{user.pk}/change/")
    data = user_change_form_data(page)
    data.update(email=user.email, name=user.name)
    data.pop("is_active", None)
    data.pop("date_joined", None)
    data.pop("last_login", None)
    response = operator_browser.post(f"/admin/accounts/user/{user.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    user.refresh_from_db()
    assert not user.is_active
    assert Session.objects.get(user=user).revoked_reason == "deactivated"
    assert api.get("/api/auth/validate").json()["code"] == "account_disabled"


def test_an_operator_cannot_untick_active_on_their_own_user_form(operator_browser):
    me = User.objects.get(email="root@example.com")
    page = operator_browser.get(f"/admin/accounts/user/{me.pk}/change/")
    data = user_change_form_data(page)
    data.update(email=me.email, name=me.name)
    for name in ("is_active", "date_joined", "last_login"):
        data.pop(name, None)

    response = operator_browser.post(f"/admin/accounts/user/{me.pk}/change/", data)

    assert response.status_code == 200
    assert "You cannot deactivate yourself" in str(response.context["adminform"].form.errors["is_active"])
    assert User.objects.get(pk=me.pk).is_active


def test_an_admin_password_change_revokes_the_users_sessions(operator_browser, bearer_client, user):
    api = bearer_client(user)
    response = operator_browser.post(
        f"/admin/accounts/user/{user.pk}/password/",
        {
            "password1": "A brand new passphrase 77",
            "password2": "A brand new passphrase 77",
            "usable_password": "true",
        },
    )
    assert response.status_code == 302
    assert api.get("/api/auth/me").json()["code"] == "token_not_valid"
    assert Session.objects.get(user=user).revoked_reason == "password_change"
    revoked = AuditEvent.objects.get(type="session_revoked")
    assert revoked.detail == "reason: password_change; by root@example.com"  # who did it is on record
    assert login(APIClient(), user, "A brand new passphrase 77").status_code == 200


def test_an_operator_turns_password_sign_in_off_and_the_account_has_no_password_at_all(
    operator_browser, bearer_client, user
):
    """Django's "Password-based authentication: Disabled" leaves no password, not the empty one."""
    api = bearer_client(user)
    disable = {"usable_password": "false", "unset-password": "1"}  # the button the form offers
    response = operator_browser.post(f"/admin/accounts/user/{user.pk}/password/", disable, follow=True)
    assert [str(message) for message in response.context["messages"]] == [
        "Password-based authentication was disabled."
    ]
    user.refresh_from_db()
    assert not user.has_usable_password() and not user.check_password("")
    assert api.get("/api/auth/me").json()["code"] == "token_not_valid"  # its sessions ended, as for a new one
    assert login(APIClient(), user, DEFAULT_PASSWORD).status_code == 401


def test_audit_events_are_read_only(operator_browser, user):
    login(APIClient(), user, "wrong")
    event = AuditEvent.objects.get(type="login_failed")
    assert operator_browser.get("/admin/accounts/auditevent/").status_code == 200
    assert operator_browser.get("/admin/accounts/auditevent/add/").status_code == 403
    assert (
        operator_browser.post(f"/admin/accounts/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_the_user_page_shows_linked_google_accounts_and_unlinks_one(operator_browser, user):
    from accounts.models import GoogleAccount

    account = GoogleAccount.objects.create(user=user, sub="110169484474386276334", email="alice@corp.example")
    page = operator_browser.get(f"/admin/accounts/user/{user.pk}/change/")
    assert page.status_code == 200
    content = page.content.decode()
    assert "110169484474386276334" in content and "alice@corp.example" in content

    data = user_change_form_data(page)
    data.update(email=user.email, name=user.name, is_active="on")
    data["google_accounts-0-DELETE"] = "on"
    response = operator_browser.post(f"/admin/accounts/user/{user.pk}/change/", data)

    assert response.status_code == 302, response.context and response.context["errors"]
    assert not GoogleAccount.objects.filter(pk=account.pk).exists()
    event = AuditEvent.objects.get(type="google_unlinked")
    assert event.user == user
    assert "110169484474386276334" in event.detail and "root@example.com" in event.detail


def test_the_user_page_grants_a_client_through_the_service(operator_browser, user, client1):
    from clusters.models import Grant

    page = operator_browser.get(f"/admin/accounts/user/{user.pk}/change/")
    data = user_change_form_data(page)
    data.update(email=user.email, name=user.name, is_active="on")
    prefix = next(
        inline.formset.prefix
        for inline in page.context["inline_admin_formsets"]
        if inline.formset.model is Grant
    )
    data.update({f"{prefix}-TOTAL_FORMS": 1, f"{prefix}-0-client": client1.pk, f"{prefix}-0-role": "viewer"})
    claims_version = user.claims_version

    response = operator_browser.post(f"/admin/accounts/user/{user.pk}/change/", data)

    assert response.status_code == 302, response.context and response.context["errors"]
    assert Grant.objects.get(user=user).client == client1
    user.refresh_from_db()
    assert user.claims_version > claims_version  # tokens are re-issued with the new scope


def test_deactivating_during_a_cache_outage_goes_through_and_the_cache_catches_up(
    in_process_cache, operator_browser, bearer_client, user, settings
):
    settings.CLAIMS_CACHE_TTL = timedelta(seconds=30)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        api = bearer_client(user)
        with override_settings(CACHES=DEAD_REDIS):
            response = operator_browser.post(
                "/admin/accounts/user/",
                {"action": "deactivate_selected", "_selected_action": [str(user.pk)]},
                follow=True,
            )
            caches["default"].close()
        assert response.status_code == 200
        assert "session store (Redis) could not be reached" in response.content.decode()
        user.refresh_from_db()
        assert not user.is_active and Session.objects.get(user=user).revoked_reason == "deactivated"
        refresh = APIClient().post(
            "/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {api.tokens['refreshToken']}"
        )
        assert refresh.json()["code"] == "token_not_valid"  # no new token: a refresh reads the row
        traveller.shift(timedelta(seconds=31))
        for path in ("/api/auth/me", "/api/auth/validate"):
            assert api.get(path).json()["code"] == "account_disabled", path


def test_once_the_cache_is_back_the_gateway_refuses_the_deactivated_user_without_waiting_for_expiry(
    in_process_cache, operator_browser, bearer_client, user, settings, monkeypatch
):
    import time

    from accounts import session_cache

    monkeypatch.setattr(session_cache, "CATCH_UP_INTERVAL", 0.05)
    settings.CLAIMS_CACHE_TTL = timedelta(minutes=10)  # long: only the catch-up can explain a refusal
    api = bearer_client(user)
    assert api.get("/api/auth/validate").status_code == 200  # the claims are cached as active
    with override_settings(CACHES=DEAD_REDIS):
        operator_browser.post(
            "/admin/accounts/user/", {"action": "deactivate_selected", "_selected_action": [str(user.pk)]}
        )
        caches["default"].close()

    deadline = time.monotonic() + 5
    while api.get("/api/auth/validate").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert api.get("/api/auth/validate").json()["code"] in {"account_disabled", "token_not_valid"}


# --- what limited staff may do --------------------------------------------------------------


def limited_staff_browser(client, user_factory, *codenames: str):
    """An operator who is not a superuser, given only these permissions (staff who are not
    operators hold none: accounts/backends.py)."""
    from django.contrib.auth.models import Permission

    staff = user_factory(email="support@example.com", is_staff=True, is_operator=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(staff)
    return client


@pytest.mark.parametrize("action", ["deactivate_selected", "reset_second_factors"])
def test_staff_who_may_only_view_users_cannot_run_the_write_actions(client, user_factory, user, action):
    from accounts.models import TotpDevice

    TotpDevice.objects.create(user=user, secret_encrypted="x", confirmed_at=timezone.now())
    browser = limited_staff_browser(client, user_factory, "view_user")
    assert action not in browser.get("/admin/accounts/user/").content.decode()
    browser.post("/admin/accounts/user/", {"action": action, "_selected_action": [str(user.pk)]})
    user.refresh_from_db()
    assert user.is_active and TotpDevice.objects.filter(user=user).exists()


@pytest.mark.parametrize(
    "privilege",
    [{"is_superuser": True, "is_staff": True}, {"is_operator": True, "is_staff": True}, {"is_staff": True}],
    ids=["superuser", "operator", "staff"],
)
def test_staff_who_may_change_users_cannot_take_over_a_privileged_account(
    client, user_factory, bearer_client, privilege
):
    """Setting its password or resetting its factors would let them sign in as it."""
    from accounts.models import TotpDevice

    root = user_factory(email="root@example.com", **privilege)
    root_api = bearer_client(root)
    TotpDevice.objects.create(user=root, secret_encrypted="x", confirmed_at=timezone.now())
    browser = limited_staff_browser(client, user_factory, "view_user", "change_user", "delete_user")
    unused = user_factory(email="root2@example.com", **privilege)  # nothing else to delete with it
    assert browser.post(f"/admin/accounts/user/{unused.pk}/delete/", {"post": "yes"}).status_code == 403
    browser.post(
        "/admin/accounts/user/", {"action": "delete_selected", "_selected_action": [unused.pk], "post": "yes"}
    )
    assert User.objects.filter(pk=unused.pk).exists()
    for action in ("reset_second_factors", "deactivate_selected"):
        page = browser.post(
            "/admin/accounts/user/",
            {"action": action, "_selected_action": [str(root.pk)], "post": "yes"},
            follow=True,
        )
        assert "Only a superuser can change root@example.com" in page.content.decode()
    assert browser.get(f"/admin/accounts/user/{root.pk}/password/").status_code == 403
    root.refresh_from_db()
    assert root.is_active and TotpDevice.objects.filter(user=root).exists()
    assert root_api.get("/api/auth/me").status_code == 200


def test_staff_who_may_change_sessions_and_tokens_cannot_end_a_privileged_accounts(
    client, user_factory, bearer_client, user, client1
):
    """Kicking a superuser out (or killing their scripts) is changing their account, too."""
    from tests.helpers import access_token_made

    root = user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)
    root_api, user_api = bearer_client(root), bearer_client(user)
    token, _ = access_token_made(root, clients={"client1": ["view"]})
    browser = limited_staff_browser(
        client, user_factory, "view_session", "change_session", "view_personalaccesstoken",
        "change_personalaccesstoken",
    )  # fmt: skip
    selected = [str(pk) for pk in Session.objects.filter(user__in=[root, user]).values_list("pk", flat=True)]
    page = browser.post(
        "/admin/accounts/session/",
        {"action": "revoke_selected", "_selected_action": selected, "post": "yes"},
        follow=True,
    )
    assert "Only a superuser can change root@example.com" in page.content.decode()
    assert root_api.get("/api/auth/me").status_code == 200
    assert user_api.get("/api/auth/me").json()["code"] == "token_not_valid"  # the others go
    browser.post(
        "/admin/accounts/personalaccesstoken/",
        {"action": "revoke_selected", "_selected_action": [token.pk], "post": "yes"},
    )
    token.refresh_from_db()
    assert token.revoked_at is None


def test_staff_who_may_change_groups_cannot_give_their_group_more_permissions(client, user_factory):
    from django.contrib.auth.models import Group, Permission

    browser = limited_staff_browser(client, user_factory, "view_group", "change_group", "add_group")
    group = Group.objects.create(name="support")
    group.user_set.add(User.objects.get(email="support@example.com"))
    everything = [str(pk) for pk in Permission.objects.values_list("pk", flat=True)]
    response = browser.post(
        f"/admin/auth/group/{group.pk}/change/", {"name": "support", "permissions": everything}
    )
    assert response.status_code == 403
    assert not group.permissions.exists()
    assert browser.get("/admin/auth/group/add/").status_code == 403
    assert browser.get(f"/admin/auth/group/{group.pk}/change/").status_code == 200  # still readable


def test_a_user_page_offers_the_password_form_only_to_whoever_may_use_it(client, user_factory, user):
    root = user_factory(email="root@example.com", is_staff=True, is_superuser=True)
    browser = limited_staff_browser(client, user_factory, "view_user", "change_user")
    own = User.objects.get(email="support@example.com")

    for view_only in (root, own):  # privileged accounts: this operator may only look
        page = browser.get(f"/admin/accounts/user/{view_only.pk}/change/").content.decode()
        assert "Reset password" not in page and "../password/" not in page
        assert browser.get(f"/admin/accounts/user/{view_only.pk}/password/").status_code == 403
    page = browser.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert "Reset password" in page  # and on a page they may change, the button is there


def test_staff_who_may_change_users_cannot_make_anyone_privileged(client, user_factory, user):
    browser = limited_staff_browser(client, user_factory, "view_user", "change_user")
    page = browser.get(f"/admin/accounts/user/{user.pk}/change/")
    data = user_change_form_data(page)
    data.update(email=user.email, name="Alice B", is_active="on")
    data.update(is_superuser="on", is_operator="on", is_staff="on")
    for field in ("date_joined", "last_login"):
        data.pop(field, None)
    response = browser.post(f"/admin/accounts/user/{user.pk}/change/", data)
    assert response.status_code == 302
    user.refresh_from_db()
    assert (user.name, user.is_superuser, user.is_operator, user.is_staff) == ("Alice B", False, False, False)
    own = User.objects.get(email="support@example.com")
    assert browser.get(f"/admin/accounts/user/{own.pk}/password/").status_code == 403  # their own too


def test_an_accounts_deactivation_reactivation_and_deletion_are_on_its_trail_with_who_did_them(
    operator_browser, user_factory
):
    """An auditor asks when an account lost access and who cut it off, even when it had no
    session or client to leave a trace on."""
    user = user_factory(email="plain@example.com", name="Plain")
    operator_browser.post(
        "/admin/accounts/user/", {"action": "deactivate_selected", "_selected_action": [str(user.pk)]}
    )
    data = user_change_form_data(operator_browser.get(f"/admin/accounts/user/{user.pk}/change/"))
    data.update(email=user.email, name=user.name, is_active="on")
    for name in ("date_joined", "last_login"):
        data.pop(name, None)
    assert operator_browser.post(f"/admin/accounts/user/{user.pk}/change/", data).status_code == 302
    operator_browser.post(f"/admin/accounts/user/{user.pk}/delete/", {"post": "yes"})

    trail = AuditEvent.objects.filter(email="plain@example.com").order_by("at", "pk")
    assert [(event.type, event.detail) for event in trail] == [
        ("account_deactivated", "by root@example.com"),
        ("account_reactivated", "by root@example.com"),
        ("account_deactivated", "by root@example.com"),  # deletion deactivates first
        ("account_deleted", "by root@example.com"),
    ]
    listed = operator_browser.get("/admin/accounts/auditevent/?q=plain@example.com").content.decode()
    assert "Account deleted" in listed and "Account reactivated" in listed


def test_resetting_only_accounts_out_of_reach_asks_nothing_and_says_why(client, user_factory, user):
    root = user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)
    browser = limited_staff_browser(client, user_factory, "view_user", "change_user")

    page = browser.post(
        "/admin/accounts/user/",
        {"action": "reset_second_factors", "_selected_action": [str(root.pk)]},
        follow=True,
    ).content.decode()

    assert "Are you sure?" not in page  # nothing to confirm: nobody it may change
    assert "Only a superuser can change root@example.com: left as they were." in page
    assert "had no second factor" not in page  # nobody was looked at


def test_the_reset_confirmation_names_only_the_accounts_it_will_change(client, user_factory, user):
    root = user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)
    browser = limited_staff_browser(client, user_factory, "view_user", "change_user")

    page = browser.post(
        "/admin/accounts/user/",
        {"action": "reset_second_factors", "_selected_action": [str(root.pk), str(user.pk)]},
    ).content.decode()

    asked = page.split("are removed for good")[1]  # the question, then the accounts it acts on
    assert "<li>alice@example.com</li>" in asked
    assert "root@example.com" not in asked
    assert "Only a superuser can change root@example.com" in page
