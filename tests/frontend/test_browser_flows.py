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
from playwright.sync_api import expect

from accounts.models import Session, User
from clusters.models import ClientAuditEvent, Cluster, ClusterChange, StorageExpansion
from clusters.selectors import cluster_credentials
from clusters.services import cluster_create, cluster_update, storage_expansion_complete
from gitops.repository import branch_tip, commits_list
from tests.conftest import b64
from tests.frontend.conftest import PASSWORD, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def short_access_tokens(settings):
    # exp is whole seconds, so a token lives 4-5 s: long enough for any one replayed request on
    # a loaded machine, short enough to expire within the test.
    settings.JWT_ACCESS_TTL = timedelta(seconds=5)


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
    sign_in(page, base, "client1@example.com")
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
    assert "replicas 2 -> 3 (scale up)" in page.text_content("#revision-message")
    assert commit in {c.id for c in commits_list(repository=git_server)}
    assert ClusterChange.objects.get(commit=commit).actor == user1
    page.wait_for_selector(f'[data-testid="history-row"][data-commit="{commit}"]')
    # Which credential asked for it, and from where, is for the client's admins (the audit
    # trail's readers); this member is an operator.
    assert page.locator(f'[data-testid="history-row"][data-commit="{commit}"] .change-source').count() == 0
    # Times say their zone and seconds (changes a few seconds apart read apart); the title is UTC.
    when = page.locator(f'[data-testid="history-row"][data-commit="{commit}"] time')
    assert re.search(r"\d:\d\d:\d\d\s?[AP]?M?\s?\S+$", when.text_content().strip())
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", when.get_attribute("title"))
    screenshot(page, "cluster-detail")

    # Credentials: hidden until revealed, then copied to the clipboard.
    # Opening the page for the endpoint reads no key: only a reveal is on the audit trail, once.
    page.goto(base + "/#/clients/client1/clusters/main/credentials")
    page.wait_for_selector("#endpoint-rest:has-text('https://')")
    keys = cluster_credentials(cluster=cluster1)
    assert keys.api_key not in page.content()
    assert not ClientAuditEvent.objects.filter(type="credentials_revealed").exists()
    screenshot(page, "credentials")
    page.click("#reveal-keys")
    page.wait_for_selector('#api-key[data-masked="false"]')
    assert page.text_content("#api-key").strip() == keys.api_key
    page.click("#copy-api-key")
    page.wait_for_selector("#copy-status:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == keys.api_key
    assert ClientAuditEvent.objects.filter(type="credentials_revealed").count() == 1
    screenshot(page, "credentials-revealed")

    # The access token expires (5 s here): the next action refreshes silently and succeeds.
    time.sleep(6)
    page.goto(base + "/#/clients/client1/clusters/main")
    page.wait_for_selector("#scale-form")
    page.wait_for_selector("#main:not([aria-busy])")  # loaded: the page has put the focus on its title
    page.fill("#replicas", "4")
    page.focus("#save-replicas")  # by keyboard: the button is disabled while it saves
    page.keyboard.press("Enter")
    page.wait_for_selector("#revision-message:has-text('replicas 3 -> 4')")
    assert page.url.endswith("/#/clients/client1/clusters/main")
    page.wait_for_selector("#scale-form:not([aria-busy])")  # the save is over, history read
    assert page.evaluate("document.activeElement.id") == "save-replicas"  # focus is back where it was

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
    sign_in(page, live_server.url, "client1@example.com")
    settings.JWT_TTL = timedelta(seconds=1)  # the idle timeout, from the next request on
    page.goto(live_server.url + "/#/sessions")
    page.wait_for_selector('[data-testid="session-row"]')
    time.sleep(2.5)

    page.goto(live_server.url + "/#/clusters")
    page.wait_for_selector("#login-form")
    assert "Your session has ended" in page.text_content("#session-message")
    screenshot(page, "session-expired")
    assert page_problems == []


def test_a_second_client_sees_nothing_of_the_first(
    live_server, new_page, page_problems, screenshot, user2, cluster1, cluster2
):
    page = new_page(viewport={"width": 390, "height": 844})  # a phone
    sign_in(page, live_server.url, "client2@example.com")
    assert [
        row.get_attribute("data-client") for row in page.locator('[data-testid="cluster-row"]').all()
    ] == ["client2"]

    page.goto(live_server.url + "/#/clients/client1/clusters/main")
    page.wait_for_selector("#page-error")
    assert "your role in this client does not allow it" in page.text_content("#page-error")
    assert page.locator("#scale-form").count() == 0
    page.goto(live_server.url + "/#/clients/client1/clusters/main/credentials")
    page.wait_for_selector("#page-error")
    assert "Ask one of its admins" in page.text_content("#page-error")
    assert cluster_credentials(cluster=cluster1).api_key not in page.content()
    screenshot(page, "insufficient-permissions-phone")
    assert page_problems == []


def test_a_scale_down_explains_the_risk_and_is_sent_only_once_confirmed(
    live_server, new_page, page_problems, screenshot, git_server, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + "/#/clients/client1/clusters/main")
    page.wait_for_selector("#scale-form")

    # Fewer replicas: the dialog explains what may be lost; cancelling sends nothing.
    page.fill("#replicas", "1")
    page.click("#save-replicas")
    page.wait_for_selector("#scale-down-dialog[open]")
    text = page.text_content("#scale-down-dialog")
    assert "from 2 replicas to 1 removes 1 Qdrant peer" in text and "does not move shards" in text
    assert "DELETE /cluster/peer/" in text  # and a peer gone without that still votes
    assert page.evaluate("document.activeElement.id") == "cancel-scale-down"  # Enter never confirms
    screenshot(page, "scale-down-dialog")
    page.click("#cancel-scale-down")
    page.wait_for_selector("#scale-down-dialog:not([open])", state="attached")
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 2
    assert not ClusterChange.objects.filter(action="update").exists()

    # Confirmed: committed, and recorded as a scale-down.
    page.click("#save-replicas")
    page.wait_for_selector("#scale-down-dialog[open]")
    page.click("#confirm-scale-down")
    page.wait_for_selector("#revision-message:has-text('replicas 2 -> 1 (scale down)')")
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 1
    commit = page.get_attribute("#revision-commit", "data-commit")
    assert commit in {c.id for c in commits_list(repository=git_server)}
    page.wait_for_selector(f'[data-testid="history-row"][data-commit="{commit}"]')
    assert page_problems == []


def test_a_scale_down_asked_on_a_phone_opens_at_its_title_with_its_buttons_in_view(
    live_server, new_page, page_problems, user1, cluster1
):
    Cluster.objects.filter(pk=cluster1.pk).update(replicas=5)
    page = new_page(viewport={"width": 360, "height": 640})
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + "/#/clients/client1/clusters/main")
    page.fill("#replicas", "1")
    page.press("#replicas", "Enter")
    page.wait_for_selector("#scale-down-dialog[open]")
    dialog = page.locator("#scale-down-dialog")
    assert dialog.evaluate("d => d.scrollHeight > d.clientHeight")  # more than the screen holds

    # Read from the top (what is at risk), with the focused "Keep the replicas" in view too.
    expect(page.locator("#scale-down-dialog-title")).to_be_in_viewport()
    expect(page.locator("#scale-down-dialog-text p").first).to_be_in_viewport()
    expect(page.locator("#cancel-scale-down")).to_be_focused()
    expect(page.locator("#cancel-scale-down")).to_be_in_viewport()
    page.keyboard.press("Escape")
    expect(page.locator("#replicas")).to_be_focused()
    assert page_problems == []


def test_more_storage_waits_for_an_operator_and_the_page_says_so(
    live_server, new_page, page_problems, screenshot, git_server, user1, cluster1, operator_staff
):
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + "/#/clients/client1/clusters/main")
    page.wait_for_selector("#storage-form")
    tip = branch_tip(repository=git_server)
    # Each button sits beside its own field, whatever the length of the hint below it.
    for control, button in (
        ("#replicas", "#save-replicas"),
        ("#version", "#save-version"),
        ("#storage-gi", "#save-storage"),
    ):
        field, action = page.locator(control).bounding_box(), page.locator(button).bounding_box()
        assert abs(field["y"] + field["height"] / 2 - (action["y"] + action["height"] / 2)) < 4, button
        assert 0 < action["x"] - (field["x"] + field["width"]) < 24, button

    page.fill("#storage-gi", "20")
    page.click("#save-storage")
    waiting = "10 Gi → 20 Gi requested, waiting for an operator"
    page.wait_for_selector(f"#storage-request:has-text('{waiting}')")
    assert waiting in page.text_content("#summary-storage")
    assert "keeps 10 Gi" in page.text_content("#save-status")
    # Said once to a screen reader: by the save's status, not by the standing notice too.
    live = page.locator("[aria-live], [role=status], [role=alert]").filter(has_text=waiting)
    expect(live).to_have_count(1)
    assert StorageExpansion.objects.get().state == "pending"
    assert branch_tip(repository=git_server) == tip  # nothing the cluster could not apply
    screenshot(page, "cluster-storage-requested")

    # The user changes their mind.
    page.click("#cancel-storage-request")
    page.wait_for_selector("#save-status:has-text('Storage request cancelled.')")
    assert page.text_content("#summary-storage").strip() == "10 Gi"
    page.wait_for_selector("#cancel-storage-request", state="hidden")
    assert StorageExpansion.objects.get().state == "cancelled"

    # Asked again; the list shows it too; an operator carries it out.
    page.fill("#storage-gi", "20")
    page.click("#save-storage")
    page.wait_for_selector(f"#storage-request:has-text('{waiting}')")
    page.goto(live_server.url + "/#/clusters")
    page.wait_for_selector(f'[data-testid="cluster-row"] .cluster-storage:has-text("{waiting}")')
    storage_expansion_complete(expansion=StorageExpansion.objects.get(state="pending"), actor=operator_staff)
    page.goto(live_server.url + "/#/clients/client1/clusters/main")
    page.wait_for_selector("#summary-storage:text-is('20 Gi')")
    assert page.text_content("#storage-request").strip() == ""
    assert page_problems == []


def test_the_version_select_offers_only_the_allowed_upgrades(
    live_server, new_page, page_problems, user1, client1
):
    cluster_create(client=client1, slug="older", actor=None, version="v1.18.3")
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + "/#/clients/client1/clusters/older")
    page.wait_for_selector("#version-form")
    options = page.eval_on_selector_all("#version option", "options => options.map(o => o.value)")
    assert options == ["v1.18.3", "v1.19.0"]

    page.select_option("#version", "v1.19.0")
    page.click("#save-version")
    page.wait_for_selector("#revision-message:has-text('version v1.18.3 -> v1.19.0')")
    assert page.eval_on_selector_all("#version option", "options => options.map(o => o.value)") == ["v1.19.0"]
    assert page.is_disabled("#version") and page.is_disabled("#save-version")
    assert "No newer version" in page.text_content("#version-hint")
    assert page_problems == []


def test_a_key_rotation_shows_its_phase_and_is_finished_by_the_user(
    live_server, new_page, page_problems, screenshot, git_server, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + "/#/clients/client1/clusters/main/credentials")
    page.wait_for_selector("#rotate-keys")
    assert "two phases" in page.text_content("#rotation-state")
    assert page.is_hidden("#finish-rotation")

    page.click("#rotate-keys")
    page.wait_for_selector("#rotate-dialog[open]")
    assert "next to the current one" in page.text_content("#rotate-dialog")
    page.click("#confirm-rotate")
    page.wait_for_selector("#rotation-state:has-text('Rotation in progress')")
    new_key = cluster_credentials(cluster=Cluster.objects.get(pk=cluster1.pk)).api_key
    assert page.text_content("#api-key").strip() == new_key  # revealed: the key to switch to
    assert page.is_disabled("#rotate-keys")
    screenshot(page, "credentials-rotation")
    page.goto(live_server.url + "/#/clients/client1/clusters/main")
    page.wait_for_selector("#summary-rotation:has-text('the new and the previous API key both work')")

    page.goto(live_server.url + "/#/clients/client1/clusters/main/credentials")
    page.wait_for_selector("#finish-rotation")
    page.click("#finish-rotation")
    page.wait_for_selector("#finish-dialog[open]")
    page.click("#confirm-finish")
    page.wait_for_selector("#rotate-status:has-text('Rotation finished')")
    assert page.is_hidden("#finish-rotation")
    assert not Cluster.objects.get(pk=cluster1.pk).rotation_in_progress
    assert page_problems == []


def test_an_older_version_warns_that_old_keys_fail_once_pods_restart(
    live_server, new_page, page_problems, user1, cluster1, settings, tmp_path
):
    Cluster.objects.filter(pk=cluster1.pk).update(version="v1.16.3")
    settings.GITOPS_REMOTE_URL = str(tmp_path / "unreachable.git")  # and the git remote is down
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + "/#/clients/client1/clusters/main/credentials")
    page.wait_for_selector("#rotate-keys")
    assert "fail once the pods restart" in page.text_content("#rotation-state")
    page.click("#rotate-keys")
    page.wait_for_selector("#rotate-dialog[open]")
    assert "accepts one API key only" in page.text_content("#rotate-dialog")
    page.click("#confirm-rotate")
    page.wait_for_selector("#rotate-status:has-text('Keys rotated')")
    assert "once the cluster has restarted with them" in page.text_content("#rotate-status")  # not at once
    assert "the keys reach the cluster once it does" in page.text_content("#rotate-status")  # 202
    assert page.is_hidden("#finish-rotation")
    assert page_problems == []


def _other_device_signs_in(user_agent: str) -> str:
    """Signs client1 in from another device; returns that device's refresh token."""
    answer = DjangoClient(HTTP_USER_AGENT=user_agent).post(
        "/api/auth/login",
        {"email": "client1@example.com", "password": b64(PASSWORD), "tokenDelivery": "body"},
        content_type="application/json",
    )
    assert answer.status_code == 200
    return answer.json()["refreshToken"]


def test_signing_out_other_devices_goes_on_past_a_device_that_signed_out_meanwhile(
    live_server, new_page, page_problems, user1, cluster1
):
    tokens = [_other_device_signs_in(agent) for agent in ("Device A", "Device B", "Device C")]
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + "/#/sessions")
    page.wait_for_selector('[data-testid="session-row"][data-current="false"]')
    assert page.locator('[data-testid="session-row"][data-current="false"]').count() == 3

    # One device signs out by itself while its row is still on the page: its DELETE answers 404.
    assert (
        DjangoClient().post("/api/auth/logout", HTTP_AUTHORIZATION=f"Bearer {tokens[0]}").status_code == 204
    )
    page.click("#signout-others")
    page.wait_for_selector("#sessions-status:has-text('Signed out 3 other devices.')")
    assert page.text_content("#page-error") == ""
    assert Session.objects.filter(user=user1, revoked_at=None).count() == 1  # this device only
    assert page.locator('[data-testid="session-row"]').count() == 1
    assert page.locator('[data-testid="session-row"][data-current="true"]').count() == 1
    assert page_problems == []


def test_a_scale_down_made_by_someone_else_meanwhile_is_asked_about(
    live_server, new_page, page_problems, git_server, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + "/#/clients/client1/clusters/main")
    page.wait_for_selector("#scale-form")
    page.wait_for_selector("#history-empty, [data-testid='history-row']")
    cluster_update(cluster=cluster1, actor=user1, replicas=5)  # scaled 2 -> 5 elsewhere (another tab)

    # 3 looks like a scale-up to a page loaded at 2: the server asks for a confirmation instead.
    page.fill("#replicas", "3")
    page.click("#save-replicas")
    page.wait_for_selector("#scale-down-dialog[open]")
    assert "from 5 replicas to 3" in page.text_content("#scale-down-dialog")
    assert page.text_content("#summary-replicas").strip() == "5"
    assert "now has 5 replicas" in page.text_content("#save-status")
    assert page.text_content("#save-error") == ""
    page.click("#cancel-scale-down")
    page.wait_for_selector("#scale-down-dialog:not([open])", state="attached")
    assert page.input_value("#replicas") == "3"
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 5
    page.wait_for_selector(
        "[data-testid='history-row'] .changes:has-text('replicas: 2 → 5')"
    )  # kept, and shown

    # Asked again, the user confirms: the scale-down is made.
    page.click("#save-replicas")
    page.wait_for_selector("#scale-down-dialog[open]")
    page.click("#confirm-scale-down")
    page.wait_for_selector("#revision-message:has-text('replicas 5 -> 3 (scale down)')")
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 3
    assert page_problems == []


def test_a_cluster_decommissioned_meanwhile_says_so_and_is_no_longer_listed(
    live_server, new_page, page_problems, operator_staff, user1, cluster1
):
    from clusters.services import cluster_decommission

    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.click('[data-testid="cluster-link"]')
    page.wait_for_selector("#replicas")
    cluster_decommission(cluster=cluster1, actor=operator_staff)

    page.fill("#replicas", "3")  # a save on the page left open
    page.click("#save-replicas")
    expect(page.get_by_text("This cluster was decommissioned").first).to_be_visible()
    # The page shows what a fresh load would: the reason, no live cluster, forms or credentials.
    for gone in ("#replicas", "#summary-replicas", '[href$="/credentials"]'):
        expect(page.locator(gone)).to_have_count(0)
    page.goto(live_server.url + "/#/")
    expect(page.get_by_text("0 clusters in 1 client.")).to_be_visible()  # its only one: none left
    expect(page.get_by_text("No clusters in service.")).to_be_visible()
    assert page.locator('[data-testid="cluster-row"]').count() == 0
    assert page_problems == []


def test_a_storage_request_resolved_meanwhile_is_refused_and_the_page_stays(
    live_server, new_page, page_problems, user1, cluster1
):
    from clusters.services import cluster_update, storage_expansion_cancel

    cluster_update(cluster=cluster1, actor=user1, storage_gi=20)
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.click('[data-testid="cluster-link"]')
    page.wait_for_selector("#cancel-storage-request:not([hidden])")
    storage_expansion_cancel(cluster=cluster1, actor=None)  # another tab, or an operator

    page.click("#cancel-storage-request")
    expect(page.get_by_text("No storage expansion is waiting").first).to_be_visible()
    expect(page.locator("#replicas")).to_be_visible()  # a part's 404 is not the cluster's
    expect(page.locator("#cancel-storage-request")).to_be_hidden()  # shown as it is now
    assert page_problems == []


def test_an_address_with_a_broken_escape_is_page_not_found(
    live_server, new_page, page_problems, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + "/#/clients/client1/clusters/%E0")
    page.wait_for_selector("h1:text-is('Page not found')")
    assert page.get_attribute("#main", "aria-busy") is None
    page.click("text=Go to your clusters")
    page.wait_for_selector('[data-testid="cluster-row"]')
    assert page_problems == []


def test_the_bare_hash_address_is_the_start_page_signed_out_and_in(
    live_server, new_page, page_problems, user1, cluster1
):
    page = new_page()
    page.goto(live_server.url + "/#/")  # as typed or bookmarked
    page.wait_for_selector("#login-form")
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + "/#/")
    page.wait_for_selector('[data-testid="cluster-row"]')
    assert page.locator("h1:text-is('Page not found')").count() == 0
    page.goto(live_server.url + "/#/clients/client1/clusters/main/")  # a trailing slash, as typed
    expect(page.locator("#page-title")).to_have_text("client1 / main")
    page.goto(live_server.url + "/#/clients/client1/clusters/nope")  # says which name missed where
    expect(page.locator("#page-error")).to_have_text("Client One has no cluster named “nope”.")
    page_problems[:] = [problem for problem in page_problems if "404" not in problem]  # the miss we asked for
    assert page_problems == []


def test_a_sign_out_that_fails_is_an_error_the_user_cannot_miss(
    live_server, new_page, page_problems, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.wait_for_selector('[data-testid="cluster-row"]')
    page.route("**/api/auth/logout", lambda route: route.abort())  # the network drops it
    page.click("#signout")
    expect(page.locator("[role=alert]#app-error")).to_contain_text("Sign-out failed, you are still signed in")
    expect(page.locator("#app-status")).to_have_text("")
    page.unroute("**/api/auth/logout")
    page.click("#signout")  # tried again: out, and the error is gone
    page.wait_for_selector("#login-form")
    expect(page.locator("#app-error")).to_have_text("")
    page_problems[:] = [
        problem for problem in page_problems if "ERR_FAILED" not in problem
    ]  # the drop we staged
    assert page_problems == []


def test_a_disabled_account_is_told_why_it_was_signed_out(
    live_server, new_page, page_problems, short_access_tokens, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    User.objects.filter(pk=user1.pk).update(is_active=False)
    time.sleep(6)  # the access token expires: the next request refreshes, and is refused

    page.goto(live_server.url + "/#/sessions")
    page.wait_for_selector("#login-form")
    assert "This account is disabled." in page.text_content("#session-message")
    assert "expired" not in page.text_content("#session-message")
    assert page_problems == []


def test_credentials_are_asked_for_only_by_those_who_may_read_them_and_only_when_used(
    live_server, new_page, page_problems, user1, viewer1, cluster1
):
    viewer = new_page()
    sign_in(viewer, live_server.url, viewer1.email)
    # The cluster page shows a viewer what the role allows, instead of forms a save would refuse.
    viewer.goto(live_server.url + "/#/clients/client1/clusters/main")
    viewer.wait_for_selector("#configure-readonly")
    assert viewer.locator("#scale-form").count() == 0 and viewer.locator("#credentials-link").count() == 0
    viewer.goto(live_server.url + "/#/clients/client1/clusters/main/credentials")
    viewer.wait_for_selector("#page-error:has-text('your role in this client does not allow it')")

    page = new_page()
    sign_in(page, live_server.url, user1.email)
    page.goto(live_server.url + "/#/clients/client1/clusters/main/credentials")
    page.wait_for_selector("#endpoint-rest:has-text('https://')")
    assert not ClientAuditEvent.objects.filter(type="credentials_revealed").exists()
    page.click("#copy-read-only-api-key")  # without revealing first: the keys are asked for now
    page.wait_for_selector("#copy-status:has-text('Copied')")

    keys = cluster_credentials(cluster=cluster1)
    assert page.evaluate("navigator.clipboard.readText()") == keys.read_only_api_key
    assert page.get_attribute("#api-key", "data-masked") == "true"
    assert ClientAuditEvent.objects.filter(type="credentials_revealed").count() == 1
    assert page_problems == []


def test_the_clusters_page_asks_once_for_every_clients_clusters(
    live_server, new_page, page_problems, user1, client2, cluster1, cluster2
):
    """An operator may see hundreds of clients: the page must not ask once per client."""
    from clusters.services import grant_set

    grant_set(user=user1, client=client2, role="viewer")
    page = new_page()
    asked = []
    page.on(
        "request",
        lambda request: (
            asked.append(request.url) if "/api/" in request.url and "clusters" in request.url else None
        ),
    )
    sign_in(page, live_server.url, "client1@example.com")
    expect(page.locator("#page-status")).to_have_text("2 clusters in 2 clients.")
    expect(page.locator('[data-client="client2"] [data-testid="cluster-row"]')).to_have_count(1)

    assert [url.removeprefix(live_server.url) for url in asked] == ["/api/clusters"]
    assert page_problems == []


def test_a_page_that_could_not_load_for_a_passing_reason_offers_to_try_again(
    live_server, new_page, page_problems, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.route(
        "**/api/clients",
        lambda route: route.fulfill(
            status=503,
            json={
                "code": "database_unavailable",
                "detail": "The database is unavailable; try again shortly.",
            },
        ),
    )
    page.goto(live_server.url + "/#/sessions")
    page.goto(live_server.url + "/#/clusters")
    expect(page.locator("#page-error")).to_contain_text("The database is unavailable")
    page.unroute("**/api/clients")
    page.click("#page-retry")
    expect(page.locator('[data-testid="cluster-row"]')).to_have_count(1)
    expect(page.locator("#page-retry")).to_have_count(0)
    # A refusal that would only be refused again offers no retry.
    page.goto(live_server.url + "/#/clients/client1/clusters/nope")
    expect(page.locator("#page-error")).to_contain_text("has no cluster named")
    expect(page.locator("#page-retry")).to_have_count(0)
    page_problems[:] = [problem for problem in page_problems if "503" not in problem and "404" not in problem]
    assert page_problems == []


def test_many_clusters_can_be_searched_by_name_or_client(
    live_server, new_page, page_problems, user1, client1, client2, cluster1, cluster2
):
    from clusters.services import grant_set

    grant_set(user=user1, client=client2, role="viewer")
    for n in range(10):
        cluster_create(client=client1, slug=f"search-{n}", actor=None)
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.wait_for_selector("#clusters-filter")

    page.fill("#clusters-filter", "SEARCH-7")
    assert page.locator('[data-testid="cluster-row"]:visible').count() == 1
    assert page.is_visible('[data-testid="cluster-row"][data-cluster="search-7"]')
    assert not page.is_visible('[data-testid="client-group"][data-client="client2"]')  # nothing of it shown
    assert page.text_content("#clusters-filter-status") == "1 of 12 shown."
    assert "12 clusters in 2 clients" in page.text_content("#page-status")

    page.fill("#clusters-filter", "client two")  # a client's name shows its clusters
    assert page.locator('[data-testid="cluster-row"]:visible').count() == 1
    assert page.is_visible('[data-testid="cluster-row"][data-client="client2"]')
    page.fill("#clusters-filter", "")
    assert page.locator('[data-testid="cluster-row"]:visible').count() == 12
    assert page_problems == []


def test_a_long_history_shows_its_newest_page_and_pages_back_on_request(
    live_server, new_page, page_problems, user1, cluster1
):
    ClusterChange.objects.bulk_create(
        ClusterChange(cluster=cluster1, action="update", message=f"change {n}", changes={})
        for n in range(104)
    )  # with the creation: 105, a page of 100 and five older
    page = new_page()
    sign_in(page, live_server.url, "client1@example.com")
    page.goto(live_server.url + "/#/clients/client1/clusters/main")
    page.wait_for_selector("#history-more:not([hidden])")
    assert page.locator("[data-testid='history-row']").count() == 100
    assert "change 103" in page.text_content("[data-testid='history-row']")  # the newest first

    # An older page that fails keeps what is shown, and says so.
    page.route("**/history?before=*", lambda route: route.fulfill(status=503, body="unavailable"))
    page.click("#history-more")
    expect(page.locator("#history-status")).not_to_have_text("")
    assert page.locator("[data-testid='history-row']").count() == 100
    page.unroute("**/history?before=*")

    page.locator("#history-more").dblclick()  # a second click while the page loads adds nothing
    page.wait_for_selector("#history-more[hidden]", state="attached")
    assert page.locator("[data-testid='history-row']").count() == 105
    assert "create" in page.locator("[data-testid='history-row']").last.text_content()
    assert page.evaluate("document.activeElement.id") == "history-heading"  # not lost with the button
    expect(page.locator("#history-status")).to_have_text("5 older changes shown.")
    page_problems[:] = [problem for problem in page_problems if "503" not in problem]  # the refusal we staged
    assert page_problems == []
