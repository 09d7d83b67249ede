"""A member leaves a client from the Clusters page in headless Chromium: asked first, the client
goes from the page and from the member's reach at once; the last admin is told why they cannot."""

from __future__ import annotations

import pytest

from clusters.models import Client, ClientAuditEvent, Grant
from clusters.services import grant_set
from tests.frontend.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_member_leaves_one_client_and_keeps_the_other(
    live_server, new_page, page_problems, user1, cluster1
):
    other = Client.objects.create(slug="contractor", name="Contractor Ltd")
    grant_set(user=user1, client=other, role=Grant.Role.VIEWER)
    page = new_page()
    sign_in(page, live_server.url, user1.email)
    page.wait_for_selector('[data-client="contractor"] .leave-client')

    page.click('[data-client="contractor"] .leave-client')
    page.wait_for_selector("#leave-client-dialog[open]")
    assert "You lose access to Contractor Ltd at once" in page.text_content("#leave-client-dialog")
    page.click("#confirm-leave-client")

    page.wait_for_selector("#page-status:has-text('1 cluster in 1 client.')")
    assert page.locator('[data-client="contractor"]').count() == 0
    assert page.locator('[data-client="client1"] [data-testid="cluster-row"]').count() == 1
    assert not Grant.objects.filter(user=user1, client=other).exists()
    assert ClientAuditEvent.objects.get(type="member_removed", client=other).actor_email == user1.email
    assert page_problems == []


def test_the_last_admin_is_told_beside_the_button_why_they_cannot_leave(
    live_server, new_page, page_problems, admin1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.wait_for_selector('[data-client="client1"] .leave-client')

    page.click('[data-client="client1"] .leave-client')
    page.click("#confirm-leave-client")

    error = page.locator('[data-client="client1"] [data-testid="leave-error"]')
    error.wait_for()
    assert "at least one admin" in error.text_content()
    assert Grant.objects.filter(user=admin1, role="admin").exists()
    assert page.evaluate("document.activeElement.classList.contains('leave-client')")
