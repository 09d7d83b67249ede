"""The Django admin as operators see it in Chromium: what a page shows must be readable whole."""

from __future__ import annotations

import re

import pytest

from clusters.models import StorageExpansion
from clusters.services import cluster_decommission, cluster_update
from tests.frontend.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _admin_sign_in(page, base: str) -> None:
    page.goto(base + "/admin/")
    page.wait_for_selector("#login-form")
    page.get_by_label("Email").fill("ops@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(re.compile(r"^http://[^/#]+/admin/$"))


def _runbook_fits(page) -> None:
    runbook = page.locator(".field-runbook pre")
    runbook.wait_for()
    # A clipped line would hide the end of a command the operator must copy whole.
    scroll_width, client_width = runbook.evaluate("pre => [pre.scrollWidth, pre.clientWidth]")
    assert scroll_width <= client_width
    box, row = runbook.bounding_box(), page.locator(".form-row.field-runbook").bounding_box()
    assert box["x"] + box["width"] <= row["x"] + row["width"] + 1  # not cut off by the row either


def test_the_runbooks_long_commands_wrap_inside_the_page(
    live_server, new_page, page_problems, settings, user_factory, git_server, user1, cluster1
):
    settings.MFA_REQUIRED_FOR_STAFF = False
    operator = user_factory(
        email="ops@example.com", is_staff=True, is_superuser=True, is_operator=True, password=PASSWORD
    )
    cluster_update(cluster=cluster1, actor=user1, storage_gi=20)
    expansion = StorageExpansion.objects.get(cluster=cluster1)
    page, base = new_page(), live_server.url
    page.set_viewport_size({"width": 1024, "height": 800})
    _admin_sign_in(page, base)

    page.goto(f"{base}/admin/clusters/storageexpansion/{expansion.pk}/change/")
    _runbook_fits(page)

    cluster_decommission(cluster=cluster1, actor=operator)
    page.goto(f"{base}/admin/clusters/cluster/{cluster1.pk}/change/")
    _runbook_fits(page)
    assert page_problems == []


def test_an_operator_adds_a_cluster_by_searching_for_its_client(
    live_server, new_page, page_problems, settings, user_factory, git_server, client1, client2
):
    settings.MFA_REQUIRED_FOR_STAFF = False
    user_factory(
        email="ops@example.com", is_staff=True, is_superuser=True, is_operator=True, password=PASSWORD
    )
    page, base = new_page(), live_server.url
    _admin_sign_in(page, base)

    page.goto(f"{base}/admin/clusters/cluster/add/")
    page.locator(".field-client .select2-selection").click()
    page.locator(".select2-search__field").fill("client2")
    page.locator(".select2-results__option", has_text="client2").click()
    page.locator("#id_slug").fill("search")
    page.locator("input[name=_save]").click()

    page.wait_for_selector(".messagelist .success")
    assert client2.clusters.filter(slug="search").exists()
    assert not client1.clusters.filter(slug="search").exists()
    assert page_problems == []
