"""Operators who are not superusers, given some permissions: the admin leads them only where they
may go, lets them finish what it offers, and says so in its own frame when they may not."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client as BrowserClient

from clusters.models import Grant
from clusters.services import client_create, client_update


@pytest.fixture
def limited_operator(user_factory):
    """The browser of an operator given only ``codenames``."""

    def make(*codenames: str) -> BrowserClient:
        staff = user_factory(email="helpdesk@example.com", is_staff=True, is_operator=True)
        staff.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
        browser = BrowserClient()
        browser.force_login(staff)
        return browser

    return make


def test_a_clients_page_links_only_to_the_lists_the_operator_may_view(limited_operator, client1, cluster1):
    browser = limited_operator("view_client", "view_grant", "view_invitation")

    page = browser.get(f"/admin/clusters/client/{client1.pk}/change/").content.decode()

    links = set(re.findall(r'href="(/admin/clusters/[a-z]+/\?client=client1)"', page))
    assert links == {"/admin/clusters/grant/?client=client1", "/admin/clusters/invitation/?client=client1"}
    assert "1 cluster(s) in service" in page  # still said, without a link to a list refused
    assert all(browser.get(link).status_code == 200 for link in links)


@pytest.mark.parametrize(
    "model, extra",
    [("grant", ("add_grant", "view_grant", "view_user")), ("cluster", ("add_cluster", "view_cluster"))],
)
def test_an_operator_who_may_not_view_clients_picks_one_from_a_list_of_live_clients(
    limited_operator, client1, model, extra
):
    """Django's client search asks the clients' admin, which refuses them: a search box that
    could never answer would leave the form impossible to finish."""
    gone = client_create(slug="gone", name="Gone")
    client_update(client=gone, name="Gone", active=False, actor=None)
    browser = limited_operator(*extra)

    page = browser.get(f"/admin/clusters/{model}/add/").content.decode()

    field = (
        page.split('name="client"')[0].rsplit("<select", 1)[1]
        + page.split('name="client"')[1].split("</select>")[0]
    )
    assert "admin-autocomplete" not in field
    assert f'<option value="{client1.pk}">client1</option>' in page
    assert f'value="{gone.pk}"' not in page


def test_the_grant_form_searches_for_users_when_the_operator_may_view_them(
    limited_operator, client1, user_factory
):
    newcomer = user_factory(email="newcomer@example.com")
    browser = limited_operator("add_grant", "view_grant", "view_user", "view_client")

    page = browser.get("/admin/clusters/grant/add/").content.decode()
    added = browser.post(
        "/admin/clusters/grant/add/", {"user": newcomer.pk, "client": client1.pk, "role": "viewer"}
    )

    assert page.count("admin-autocomplete") >= 2  # the user and the client: a search each
    assert added.status_code == 302 and Grant.objects.get(user=newcomer, client=client1).role == "viewer"


def test_a_page_the_operator_may_not_open_says_so_in_the_admins_frame(limited_operator):
    browser = limited_operator("view_grant")

    refused = browser.get("/admin/clusters/cluster/")

    page = refused.content.decode()
    assert refused.status_code == 403
    assert "Qdrant Portal operations" in page  # the admin's header, not a bare error page
    assert "Your account may not open this page" in page
    assert 'href="/admin/"' in page  # a way back
