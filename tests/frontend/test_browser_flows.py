"""The browser app end to end in headless Chromium, against the real server (live_server).

One client's day: sign in, see only its cluster, scale it (and find the commit in the git
remote), read and copy the credentials, keep working across an access-token expiry, get
sent back to sign-in when the session itself expires, manage sessions, sign out. And a
second client who can see nothing of the first. Each page is saved as a screenshot.
The page hooks used here are listed in dom_ids.md.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.test import Client as DjangoClient

from accounts.models import Session
from clusters.models import ClusterChange
from clusters.selectors import cluster_credentials
from gitops.repository import commits_list
from tests.conftest import b64

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"


@pytest.fixture
def short_access_tokens(settings):
    settings.JWT_ACCESS_TTL = timedelta(seconds=2)


def _sign_in(page, base_url: str, email: str, password: str = PASSWORD) -> None:
    page.goto(base_url + "/#/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_selector('[data-testid="cluster-row"], #clusters-empty')


def test_a_client_signs_in_scales_reads_credentials_and_signs_out(
    live_server,
    new_page,
    page_problems,
    screenshot,
    git_server,
    short_access_tokens,
    settings,
    user1,
    cluster1,
    cluster2,
):
    page = new_page()
    base = live_server.url

    # Sign in: only client1's cluster is listed.
    _sign_in(page, base, "client1@example.com")
    rows = page.locator('[data-testid="cluster-row"]')
    assert rows.count() == 1
    assert rows.first.get_attribute("data-client") == "client1"
    assert page.locator('[data-client="client2"]').count() == 0
    screenshot(page, "clusters")

    # Tokens stay out of reach of page JavaScript.
    assert "accessToken" not in page.evaluate("document.cookie")
    assert "refreshToken" not in page.evaluate("document.cookie")

    # Scale to 3: the commit id is shown and the remote has that commit.
    page.locator('[data-testid="cluster-link"]').first.click()
    page.wait_for_selector("#scale-form")
    page.fill("#replicas", "3")
    page.click("#save-replicas")
    page.wait_for_selector("#revision-commit[data-commit]")
    commit = page.get_attribute("#revision-commit", "data-commit")
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    assert "replicas 2 -> 3" in page.text_content("#revision-message")
    assert commit in {c.id for c in commits_list(repository=git_server)}
    assert ClusterChange.objects.get(commit=commit).actor == user1
    page.wait_for_selector(f'[data-testid="history-row"][data-commit="{commit}"]')
    screenshot(page, "cluster-detail")

    # Credentials: hidden until revealed, then copied to the clipboard.
    page.goto(base + "/#/clients/client1/clusters/main/credentials")
    page.wait_for_selector("#api-key")
    keys = cluster_credentials(cluster=cluster1)
    assert keys.api_key not in page.text_content("#api-key")
    screenshot(page, "credentials")
    page.click("#reveal-keys")
    page.wait_for_selector('#api-key[data-masked="false"]')
    assert page.text_content("#api-key").strip() == keys.api_key
    page.click("#copy-api-key")
    page.wait_for_selector("#copy-status:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == keys.api_key
    screenshot(page, "credentials-revealed")

    # The access token expires (2 s here): the next action refreshes silently and succeeds.
    time.sleep(3)
    page.goto(base + "/#/clients/client1/clusters/main")
    page.wait_for_selector("#scale-form")
    page.fill("#replicas", "4")
    page.click("#save-replicas")
    page.wait_for_selector("#revision-message:has-text('replicas 3 -> 4')")
    assert page.url.endswith("/#/clients/client1/clusters/main")

    # Sessions: this device is marked; another device's session is revoked from here.
    other_device = DjangoClient(HTTP_USER_AGENT="Other device")
    assert (
        other_device.post(
            "/api/auth/login",
            {"email": "client1@example.com", "password": b64(PASSWORD), "tokenDelivery": "body"},
            content_type="application/json",
        ).status_code
        == 200
    )
    page.goto(base + "/#/sessions")
    page.wait_for_selector('[data-testid="session-row"][data-current="false"]')
    assert page.locator('[data-testid="session-row"][data-current="true"]').count() == 1
    screenshot(page, "sessions")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator('[data-testid="session-row"][data-current="false"] .revoke-session').click()
    page.wait_for_selector('[data-testid="session-row"][data-current="false"]', state="detached")
    assert Session.objects.filter(user=user1, revoked_at=None).count() == 1

    # Sign out: back to sign-in; the session is revoked on the server.
    page.click("#signout")
    page.wait_for_selector("#login-form")
    assert Session.objects.filter(user=user1, revoked_at=None).count() == 0
    assert page_problems == []


def test_an_expired_session_sends_the_user_to_sign_in_with_a_message(
    live_server, new_page, page_problems, screenshot, settings, user1, cluster1
):
    page = new_page()
    _sign_in(page, live_server.url, "client1@example.com")
    settings.JWT_TTL = timedelta(seconds=1)  # the idle timeout, from the next request on
    page.goto(live_server.url + "/#/sessions")
    page.wait_for_selector('[data-testid="session-row"]')
    time.sleep(2.5)

    page.goto(live_server.url + "/#/clusters")
    page.wait_for_selector("#login-form")
    assert "Your session has expired" in page.text_content("#session-message")
    screenshot(page, "session-expired")
    assert page_problems == []


def test_a_second_client_sees_nothing_of_the_first(
    live_server, new_page, page_problems, screenshot, user2, cluster1, cluster2
):
    page = new_page(viewport={"width": 390, "height": 844})  # a phone
    _sign_in(page, live_server.url, "client2@example.com")
    assert [
        row.get_attribute("data-client") for row in page.locator('[data-testid="cluster-row"]').all()
    ] == ["client2"]

    page.goto(live_server.url + "/#/clients/client1/clusters/main")
    page.wait_for_selector("#page-error")
    assert "Insufficient permissions" in page.text_content("#page-error")
    assert page.locator("#scale-form").count() == 0
    page.goto(live_server.url + "/#/clients/client1/clusters/main/credentials")
    page.wait_for_selector("#page-error")
    assert "Insufficient permissions" in page.text_content("#page-error")
    assert cluster_credentials(cluster=cluster1).api_key not in page.content()
    screenshot(page, "insufficient-permissions-phone")
    assert page_problems == []
