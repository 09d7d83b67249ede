"""The Grants list refuses what it must with a message, never a 500, and adds no dead grant."""

from __future__ import annotations

from django.test import Client as BrowserClient

from clusters.models import Grant
from clusters.services import client_update


def test_a_refused_removal_is_a_message_and_removes_nothing(user_factory, client1, admin1):
    """A superuser who is no operator is held to the API's rank rule, like any client member."""
    superuser = user_factory(email="su@example.com", is_staff=True, is_superuser=True, is_operator=False)
    browser = BrowserClient()
    browser.force_login(superuser)
    grant = Grant.objects.get(user=admin1, client=client1)

    single = browser.post(f"/admin/clusters/grant/{grant.pk}/delete/", {"post": "yes"}, follow=True)
    bulk = browser.post(
        "/admin/clusters/grant/",
        {"action": "delete_selected", "_selected_action": [grant.pk], "post": "yes"},
        follow=True,
    )

    for response in (single, bulk):
        assert response.status_code == 200
        assert "You cannot" in response.content.decode()
    assert Grant.objects.filter(pk=grant.pk).exists()


def test_no_grant_goes_to_a_deactivated_account_or_client(admin_browser, user_factory, client1, client2):
    gone = user_factory(email="gone@example.com", is_active=False)
    live = user_factory(email="live@example.com")
    client_update(client=client2, name=client2.name, active=False)

    to_gone = admin_browser.post(
        "/admin/clusters/grant/add/", {"user": gone.pk, "client": client1.pk, "role": "admin"}
    )
    on_gone = admin_browser.post(
        "/admin/clusters/grant/add/", {"user": live.pk, "client": client2.pk, "role": "admin"}
    )

    assert (to_gone.status_code, on_gone.status_code) == (200, 200)  # the form again, with the error
    assert not Grant.objects.filter(user__in=[gone, live]).exists()


def test_a_users_page_gives_no_grant_on_a_deactivated_client(admin_browser, user_factory, client2):
    from tests.accounts.test_admin import user_change_form_data
    from tests.clusters.test_admin import _inline_management

    member = user_factory(email="member@example.com")
    client_update(client=client2, name=client2.name, active=False)
    form = user_change_form_data(admin_browser.get(f"/admin/accounts/user/{member.pk}/change/"))
    form.update(_inline_management("grants", 1))
    form.update(
        {"grants-0-user": str(member.pk), "grants-0-client": str(client2.pk), "grants-0-role": "viewer"}
    )

    response = admin_browser.post(f"/admin/accounts/user/{member.pk}/change/", form)

    assert response.status_code == 200  # the page again, with the error on the row
    assert not Grant.objects.filter(user=member).exists()
