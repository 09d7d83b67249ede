"""Two operators on the same user (or group) page: a save from a page opened before the other's
save undoes nothing of it (config/admin_stale_edits.py)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from django.test import Client as BrowserClient
from rest_framework.test import APIClient

from accounts.models import AuditEvent, User
from tests.conftest import login
from tests.helpers import change_page_form, concurrent_writers_required, race

STALE = "was changed by someone else while you edited: reload the page to see it."


def _browser(user_factory, email: str) -> BrowserClient:
    operator = user_factory(email=email, is_staff=True, is_superuser=True, is_operator=True)
    browser = BrowserClient()
    browser.force_login(operator)
    return browser


@pytest.fixture
def olga(user_factory) -> BrowserClient:
    return _browser(user_factory, "olga@example.com")


@pytest.fixture
def pavel(user_factory) -> BrowserClient:
    return _browser(user_factory, "pavel@example.com")


def _errors(response) -> str:
    assert response.status_code == 200, response.get("Location")
    return str(response.context["adminform"].form.errors)


def test_a_stale_user_page_cannot_reactivate_a_user_deactivated_meanwhile(olga, pavel, user):
    """Olga deactivated them (their sessions ended); Pavel, on a page opened before, fixed the
    display name: his save used to make the account active again, in his name."""
    url = f"/admin/accounts/user/{user.pk}/change/"
    olgas, pavels = change_page_form(olga, url, "user_form"), change_page_form(pavel, url, "user_form")
    del olgas["is_active"]
    assert olga.post(url, olgas).status_code == 302

    pavels["name"] = ["Alice Liddell"]
    refused = pavel.post(url, pavels)

    assert f"“Is active” {STALE}" in _errors(refused)
    stored = User.objects.get(pk=user.pk)
    assert (stored.is_active, stored.name) == (False, "Alice")
    assert not AuditEvent.objects.filter(type="account_reactivated").exists()
    assert login(APIClient(), user).status_code != 200


def test_a_user_page_opened_after_the_change_saves_as_before(olga, pavel, user):
    url = f"/admin/accounts/user/{user.pk}/change/"
    olgas = change_page_form(olga, url, "user_form")
    del olgas["is_active"]
    assert olga.post(url, olgas).status_code == 302

    pavels = change_page_form(pavel, url, "user_form")
    pavels["name"] = ["Alice Liddell"]
    assert pavel.post(url, pavels).status_code == 302

    stored = User.objects.get(pk=user.pk)
    assert (stored.is_active, stored.name) == (False, "Alice Liddell")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_operators_saving_the_same_user_at_once_never_both_win(olga, pavel, user_factory):
    """One deactivates, the other renames, from pages showing the same account: whichever save
    locks the row first is kept, the other refused; never a deactivation undone."""
    concurrent_writers_required()
    for attempt in range(4):
        member = user_factory(email=f"member{attempt}@example.com", name="Member")
        url = f"/admin/accounts/user/{member.pk}/change/"
        olgas, pavels = change_page_form(olga, url, "user_form"), change_page_form(pavel, url, "user_form")
        del olgas["is_active"]
        pavels["name"] = ["Renamed"]

        saved = race(
            lambda url=url, data=olgas: olga.post(url, data),
            lambda url=url, data=pavels: pavel.post(url, data),
        )

        assert sorted(response.status_code for response in saved) == [200, 302], attempt
        stored = User.objects.get(pk=member.pk)
        olga_won = saved[0].status_code == 302
        assert (stored.is_active, stored.name) == ((False, "Member") if olga_won else (True, "Renamed"))
        assert STALE in _errors(saved[1] if olga_won else saved[0])


def test_a_stale_group_page_cannot_give_back_a_permission_taken_away_meanwhile(olga, pavel):
    group = Group.objects.create(name="support")
    taken, kept = Permission.objects.filter(content_type__app_label="accounts")[:2]
    group.permissions.set([taken, kept])
    url = f"/admin/auth/group/{group.pk}/change/"
    olgas, pavels = change_page_form(olga, url, "group_form"), change_page_form(pavel, url, "group_form")
    olgas["permissions"] = [str(kept.pk)]
    assert olga.post(url, olgas).status_code == 302

    pavels["name"] = ["support desk"]
    refused = pavel.post(url, pavels)

    assert f"“Permissions” {STALE}" in _errors(refused)
    group.refresh_from_db()
    assert (group.name, list(group.permissions.all())) == ("support", [kept])
