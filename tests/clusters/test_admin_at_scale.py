"""The admin stays usable for an installation with hundreds of clients and long audit logs: pages
link to a client's rows instead of holding them, filters list no client but the one chosen, and
no list scans its whole table to draw date links."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from clusters.services import client_create, cluster_create, grant_set, invitation_create


@pytest.fixture
def many_clients(client1, cluster1, client2, cluster2, user_factory, operator):
    for number in range(3, 8):
        client = client_create(slug=f"client{number}", name=f"Client {number}")
        cluster_create(client=client, slug="main", actor=None, replicas=1)
        grant_set(user=user_factory(), client=client, role="admin")  # a member_added audit row each
        invitation_create(client=client, email=f"new{number}@example.com", role="viewer", actor=operator)
    invitation_create(client=client2, email="new2@example.com", role="viewer", actor=operator)
    grant_set(user=user_factory(), client=client2, role="viewer")


def test_a_clients_page_links_to_its_clusters_instead_of_holding_them(admin_browser, many_clients, client2):
    page = admin_browser.get(f"/admin/clusters/client/{client2.pk}/change/").content.decode()

    assert "clusters-TOTAL_FORMS" not in page  # no rows to post back: a big client stays savable
    assert '<a href="/admin/clusters/cluster/?client=client2">1 cluster(s) in service</a>' in page
    listed = admin_browser.get("/admin/clusters/cluster/?client=client2").context["cl"].result_list
    assert [str(cluster) for cluster in listed] == ["client2/main"]


@pytest.mark.parametrize(
    "changelist, row_client",
    [
        ("cluster", lambda row: row.client.slug),
        ("clusterchange", lambda row: row.cluster.client.slug),
        ("invitation", lambda row: row.client.slug),
        ("clientauditevent", lambda row: row.client.slug),
    ],
)
def test_a_list_filters_by_the_client_chosen_without_listing_every_client(
    admin_browser, many_clients, changelist, row_client
):
    unfiltered = admin_browser.get(f"/admin/clusters/{changelist}/").content.decode()
    assert "?client=client5" not in unfiltered  # the sidebar does not list the installation's clients

    page = admin_browser.get(f"/admin/clusters/{changelist}/?client=client2")

    rows = list(page.context["cl"].result_list)
    assert rows and {row_client(row) for row in rows} == {"client2"}
    assert "client2" in page.content.decode().split('id="changelist-filter"')[1]  # shown as chosen


@pytest.mark.parametrize(
    "changelist",
    [
        "/admin/accounts/auditevent/",
        "/admin/accounts/session/",
        "/admin/clusters/clientauditevent/",
        "/admin/clusters/clusterchange/",
    ],
)
def test_a_log_list_does_not_scan_its_table_for_date_links(admin_browser, many_clients, changelist):
    with CaptureQueriesContext(connection) as queries:
        page = admin_browser.get(changelist)
    assert not [query["sql"] for query in queries if "DISTINCT" in query["sql"].upper()]
    assert "Past 7 days" in page.content.decode()  # an indexed date range instead


def test_the_session_list_lists_no_user_in_its_sidebar(admin_browser, user_factory, bearer_client):
    for number in range(3):
        bearer_client(user_factory(email=f"member{number}@example.com"))  # signs in: a session each

    page = admin_browser.get("/admin/accounts/session/").content.decode()

    assert "member0@example.com" in page  # in the list itself
    assert "user__id__exact" not in page
    assert "?q=member1" not in page
    found = admin_browser.get("/admin/accounts/session/?q=member1").context["cl"].result_list
    assert [session.user.email for session in found] == ["member1@example.com"]


@pytest.mark.parametrize("model", ["cluster", "invitation", "grant"])
def test_an_add_form_searches_for_its_client_instead_of_listing_every_client(
    admin_browser, many_clients, model
):
    page = admin_browser.get(f"/admin/clusters/{model}/add/").content.decode()

    assert ">client5</option>" not in page  # no option per client to scroll through
    assert "admin-autocomplete" in page


@pytest.mark.parametrize(
    "model, field", [("cluster", "client"), ("invitation", "client"), ("grant", "client")]
)
def test_the_client_search_of_an_add_form_offers_active_clients_only(
    admin_browser, many_clients, model, field
):
    from clusters.models import Client
    from clusters.services import client_update

    client_update(client=Client.objects.get(slug="client6"), name="Client 6", active=False, actor=None)

    found = admin_browser.get(
        "/admin/autocomplete/",
        {"app_label": "clusters", "model_name": model, "field_name": field, "term": "client"},
    ).json()["results"]

    offered = {row["text"] for row in found}
    assert "client5" in offered
    assert "client6" not in offered  # deactivated: a cluster, invitation or grant there would be dead


def test_the_user_search_of_the_grant_form_offers_active_accounts_only(admin_browser, user_factory):
    user_factory(email="kept@example.com")
    user_factory(email="gone@example.com", is_active=False)

    found = admin_browser.get(
        "/admin/autocomplete/",
        {"app_label": "clusters", "model_name": "grant", "field_name": "user", "term": "example.com"},
    ).json()["results"]

    offered = " ".join(row["text"] for row in found)
    assert "kept@example.com" in offered and "gone@example.com" not in offered
