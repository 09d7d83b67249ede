"""Teams, access tokens and sign-in policies in headless Chromium, against the real server.

A client's admin runs the team from the Team page (a role change, an invitation, a removal,
the audit trail) and sets the sign-in policy on the client's settings page; the invitee opens
the email's link and joins with a password; a member whose sign-in does not satisfy a policy
is offered the step-up; anyone makes a personal access token on the Tokens page, copies the
secret shown once, uses it, and revokes it. Hooks: dom_ids.md; screenshots in test-artifacts
(copies in docs/screenshots, shown by the README).
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect
from rest_framework.test import APIClient

from accounts.models import PersonalAccessToken
from clusters.models import ClientAuditEvent, Grant, SignInPolicy
from clusters.services import PolicyInput, invitation_create, invitation_revoke, sign_in_policy_set
from tests.frontend.conftest import PASSWORD, client1_token, fake_google, first_factor, sign_in
from tests.helpers import access_token_made

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_runs_the_team_and_an_invitee_joins(
    live_server, new_page, page_problems, screenshot, admin1, user1, viewer1, cluster1
):
    client1_token(user1, "laptop script")
    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.wait_for_selector('[data-testid="cluster-row"]')
    page.click('[data-client="client1"] .team-link')
    page.wait_for_selector('[data-testid="member-row"][data-email="viewer1@example.com"]')
    assert page.locator('[data-testid="member-row"]').count() == 3

    # A role change applies once its button is pressed.
    page.select_option('[data-email="viewer1@example.com"] .member-role', "operator")
    page.click('[data-email="viewer1@example.com"] .save-role')
    page.wait_for_selector("#members-status:has-text('viewer1@example.com is now operator')")
    assert Grant.objects.get(user=viewer1).role == "operator"

    # An invitation goes out by email and waits in the list.
    page.fill("#invite-email", "newcomer@example.com")
    page.select_option("#invite-role", "viewer")
    page.click("#send-invite")
    page.wait_for_selector('[data-testid="invitation-row"][data-email="newcomer@example.com"]')
    # How long the link works, as the server set it (INVITATION_TTL), not a number of its own.
    assert "The link works once, until" in page.text_content("#invite-status")
    (message,) = [message for message in mail.outbox if "/#/invitations/" in message.body]
    (link,) = re.findall(r"https://portal\.example\.com(/#/invitations/[A-Za-z0-9_-]+)", message.body)

    # A removal asks first, then takes the member off.
    page.click('[data-email="client1@example.com"] .remove-member')
    page.click("#confirm-remove-member")
    page.wait_for_selector('[data-testid="member-row"][data-email="client1@example.com"]', state="detached")
    # The keyboard user lands on the next member's button (or the heading), not the page's start.
    assert page.evaluate("document.activeElement.matches('.remove-member, #members-heading')")
    assert not Grant.objects.filter(user=user1).exists()
    # The member's token no longer reaches the client: the list says so without a reload.
    page.wait_for_selector('[data-testid="client-token-row"]', state="detached")
    assert page.is_visible("#client-tokens-empty")
    page.wait_for_selector('[data-testid="audit-row"][data-type="member_removed"]')
    assert page.locator('[data-testid="audit-row"][data-type="member_invited"]').count() == 1
    screenshot(page, "team")

    # The invitee opens the link in another browser and joins with a password.
    invitee = new_page()
    invitee.goto(live_server.url + link)
    invitee.wait_for_selector("#invitation-signup")
    assert "newcomer@example.com" in invitee.text_content("#invitation-summary")
    invitee.fill("#signup-name", "New Comer")
    invitee.fill("#signup-password", "a long new passphrase")
    invitee.fill("#signup-password-confirm", "a long new passphrase")
    screenshot(invitee, "invitation")
    invitee.click("#signup-submit")
    invitee.wait_for_selector('[data-testid="cluster-row"][data-client="client1"]')
    assert "You joined" in invitee.text_content("#app-status") or invitee.url.endswith("#/clusters")
    assert Grant.objects.get(user__email="newcomer@example.com").role == "viewer"
    assert ClientAuditEvent.objects.filter(type="invitation_accepted").count() == 1
    assert page_problems == []


def test_an_invitation_opened_in_someone_elses_session_signs_out_and_keeps_the_link(
    live_server, new_page, page_problems, admin1, user1, user2, cluster1
):
    invitation_create(client=cluster1.client, email=user2.email, role="viewer", actor=admin1)
    (link,) = re.findall(r"https://portal\.example\.com(/#/invitations/[A-Za-z0-9_-]+)", mail.outbox[-1].body)
    page = new_page()
    sign_in(page, live_server.url, user1.email)  # a shared computer: a colleague is still signed in

    page.goto(live_server.url + link)
    expect(page.locator("#invitation-mismatch")).to_contain_text("you are signed in as client1@example.com")
    page.click("#invitation-sign-out")

    page.click("#invitation-sign-in-link")  # the invitation again, now signed out
    page.get_by_label("Email").fill(user2.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.click("#accept-invitation")
    page.wait_for_selector('[data-testid="cluster-row"][data-client="client1"]')
    assert Grant.objects.get(user=user2, client=cluster1.client).role == "viewer"
    assert page_problems == []


def test_an_invitee_of_a_client_that_asks_for_its_google_workspace_joins_with_google_only(
    live_server, new_page, page_problems, google_key, admin1, cluster1
):
    SignInPolicy.objects.create(
        client=cluster1.client, allowed_methods=["google"], google_domain="example.com"
    )
    invitation_create(client=cluster1.client, email="alice@example.com", role="viewer", actor=admin1)
    (link,) = re.findall(r"https://portal\.example\.com(/#/invitations/[A-Za-z0-9_-]+)", mail.outbox[-1].body)

    invitee = new_page()
    minted = fake_google(invitee, google_key)
    invitee.goto(live_server.url + link)
    invitee.wait_for_selector("#fake-google-button")
    # A password account would never meet the policy: no form offers one; the page says why.
    assert invitee.locator("#invitation-signup").count() == 0
    assert invitee.text_content("#invitation-requirement") == (
        "Client One asks its members to sign in with a Google account of example.com."
    )
    invitee.click("#fake-google-button")
    invitee.wait_for_selector('[data-testid="cluster-row"][data-client="client1"]')
    assert Grant.objects.get(user__email="alice@example.com").role == "viewer"
    (token,) = minted
    assert token["nonce"] and len(token["nonce"]) >= 32  # the page gave Google this browser's nonce
    assert page_problems == []


def test_an_admin_sets_the_sign_in_policy_and_a_member_is_offered_the_step_up(
    live_server, new_page, page_problems, screenshot, admin1, user1, cluster1, google_key
):
    page = new_page()
    fake_google(page, google_key)
    sign_in(page, live_server.url, admin1.email)
    page.wait_for_selector('[data-testid="cluster-row"]')
    page.click('[data-client="client1"] .settings-link')
    page.wait_for_selector("#policy-form")
    page.check("#policy-mfa")
    page.fill("#policy-max-hours", "8")
    page.click("#save-policy")
    page.wait_for_selector("#policy-error:has-text('would leave you out')")  # the admin has no second factor
    expect(page.locator("#policy-add-second-factor")).to_have_attribute(
        "href", "#/security"
    )  # the way forward
    page.uncheck("#policy-mfa")
    page.uncheck("#policy-method-passkey")
    page.click("#save-policy")
    page.wait_for_selector("#policy-status:has-text('Saved')")
    policy = SignInPolicy.objects.get()
    assert (policy.allowed_methods, policy.max_session_length.total_seconds()) == (
        ["google", "password"],
        8 * 3600,
    )
    screenshot(page, "client-settings")

    # An operator makes the client Google-only: the member's password session is offered Google.
    wanted = PolicyInput(("google",), "", False, None, False, "viewer")
    sign_in_policy_set(client=cluster1.client, wanted=wanted, actor=None, facts=None)
    member = new_page()
    fake_google(member, google_key)
    first_factor(member, live_server.url, user1.email)
    member.wait_for_selector('[data-testid="restricted-client"][data-client="client1"]')
    assert "signing in with Google" in member.text_content("#step-up")
    assert member.locator('[data-testid="cluster-row"]').count() == 0
    screenshot(member, "step-up")
    # A deep link (from chat, an email) into the client is no dead end: it leads to the card.
    member.goto(live_server.url + "/#/clients/client1/clusters/main")
    expect(member.locator("#page-error")).to_contain_text("asks you to")
    member.click("#step-up-link")
    member.wait_for_selector('[data-testid="restricted-client"][data-client="client1"]')
    member.click('[data-client="client1"] .step-up-sign-in')
    member.wait_for_selector("#session-message:has-text('Sign in with Google to reach Client One')")
    member.wait_for_selector("#fake-google-button")  # Google's button, which this portal offers
    assert page_problems == []


def test_a_portal_without_google_sign_in_offers_no_google_options(
    live_server, new_page, page_problems, settings, admin1, cluster1
):
    settings.GOOGLE_CLIENT_IDS = []
    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.goto(live_server.url + "/#/clients/client1/settings")
    page.wait_for_selector("#policy-form")
    for google_only in ("#policy-method-google", "#policy-google-domain", "#policy-jit"):
        expect(page.locator(google_only)).to_be_hidden()
    expect(page.locator("#policy-method-password")).to_be_visible()
    # The default policy ("any"): unticking the passkey leaves the password, the one box left,
    # not a Google the page never showed.
    page.uncheck("#policy-method-passkey")
    page.click("#save-policy")
    page.wait_for_selector("#policy-status:has-text('Saved')")
    assert SignInPolicy.objects.get().allowed_methods == ["password"]
    # A policy someone saved naming Google among fewer methods keeps it: a save here does not
    # drop it unseen.
    wanted = PolicyInput(("google", "password"), "", False, None, False, "viewer")
    sign_in_policy_set(client=cluster1.client, wanted=wanted, actor=None, facts=None)
    page.reload()
    page.wait_for_selector("#policy-form")
    page.fill("#policy-max-hours", "8")
    page.click("#save-policy")
    page.wait_for_selector("#policy-status:has-text('Saved')")
    assert SignInPolicy.objects.get().allowed_methods == ["google", "password"]
    assert page_problems == []


def test_a_session_length_set_on_a_portal_without_google_changes_nothing_else(
    live_server, new_page, page_problems, settings, admin1, user1, cluster1
):
    """The default policy shows Password and Passkey there: untouched, they stay "any", so
    members' tokens keep the client (a stricter policy would take it out of them)."""
    settings.GOOGLE_CLIENT_IDS = []
    token = client1_token(user1, "nightly backup")
    page = new_page()
    _settings_page(page, live_server.url, admin1.email)
    page.click("#save-policy")
    expect(page.locator("#policy-status")).to_have_text("Nothing to save: the policy is already this.")

    page.fill("#policy-max-hours", "0.0001")  # a number, below the bounds the server states
    page.click("#save-policy")
    expect(page.locator("#policy-error")).to_contain_text("Between 5 min and ")
    page.fill("#policy-max-hours", "8")
    page.click("#save-policy")
    expect(page.locator("#policy-status")).to_contain_text("Saved")  # nobody cut off: no dialog
    [event] = ClientAuditEvent.objects.filter(type="policy_changed")
    assert event.detail == "max session length: none -> 8 h"
    token.refresh_from_db()
    assert token.revoked_at is None and "client1" in token.scopes
    page.click("#save-policy")  # and again: still "any"
    expect(page.locator("#policy-status")).to_have_text("Nothing to save: the policy is already this.")

    # Saved, "any" still shows as the two boxes: unticking one leaves the other, no hidden Google.
    page.reload()
    page.wait_for_selector("#policy-form")
    page.uncheck("#policy-method-passkey")
    page.click("#save-policy")
    page.click("#confirm-policy")
    expect(page.locator("#policy-status")).to_contain_text("Saved")
    assert SignInPolicy.objects.get().allowed_methods == ["password"]
    assert page_problems == []


def test_a_member_missing_only_a_second_factor_is_offered_to_add_one_first(
    live_server, new_page, page_problems, user1, cluster1
):
    wanted = PolicyInput(("password", "google", "passkey"), "", True, None, False, "viewer")
    sign_in_policy_set(client=cluster1.client, wanted=wanted, actor=None, facts=None)
    page = new_page()
    first_factor(page, live_server.url, user1.email)
    card = page.locator('[data-testid="restricted-client"][data-client="client1"]')
    expect(card).to_contain_text("asks for a second factor")
    expect(card.locator(".step-up-security")).to_have_text("Add a second factor")
    # Signing in again only helps with a factor set up already: the button says so.
    expect(card.locator(".step-up-sign-in")).to_have_text("Sign in again with your second factor")
    assert page_problems == []


def test_someone_in_no_client_is_offered_no_token_form_that_could_only_be_refused(
    live_server, new_page, page_problems, user1, cluster1
):
    """A member whose admin removed them from their last client (their tokens lost it too)."""
    from clusters.services import grant_remove

    grant_remove(user=user1, client=cluster1.client)
    page = new_page()
    sign_in(page, live_server.url, user1.email)
    page.goto(live_server.url + "/#/tokens")
    expect(page.locator("#token-no-clients")).to_contain_text("You are a member of no client")
    expect(page.locator("#token-form")).to_have_count(0)
    expect(page.locator("#tokens-empty")).to_be_visible()
    assert page_problems == []


def test_a_token_without_a_permission_is_refused_at_the_checkboxes_that_say_why(
    live_server, new_page, page_problems, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, user1.email)
    page.goto(live_server.url + "/#/tokens")
    page.fill("#token-name", "CI deploys")
    page.click("#create-token")
    why = "Choose at least one permission on one client."
    expect(page.locator("#token-error")).to_have_text(why)
    expect(page.locator("#token-form input[type=checkbox]").first).to_be_focused()
    # Read with the checkboxes' group, on this visit and the next ones.
    expect(page.get_by_role("group", name="client1")).to_have_accessible_description(why)
    assert PersonalAccessToken.objects.count() == 0
    assert page_problems == []


def test_anyone_makes_copies_uses_and_revokes_a_token(
    live_server, new_page, page_problems, screenshot, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, user1.email)
    page.wait_for_selector('[data-testid="cluster-row"]')
    page.click("#nav-tokens")
    page.wait_for_selector("#token-form")
    assert page.locator("#token-perm-client1-members").count() == 0  # tokens never manage teams
    page.fill("#token-name", "CI deploys")
    page.select_option("#token-expires", "90d")
    page.check("#token-perm-client1-configure")  # ticks "view" too: a script reads before it scales
    assert page.is_checked("#token-perm-client1-view")
    page.click("#create-token")
    page.wait_for_selector("#token-created:not([hidden])")
    secret = page.text_content("#token-secret").strip()
    assert re.fullmatch(r"qpt_[0-9A-Za-z]{49}", secret)
    page.click("#copy-token")
    page.wait_for_selector("#token-copy-status:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    row = page.locator('[data-testid="token-row"]')
    assert row.count() == 1 and "client1: configure, view" in row.text_content()
    # Two tokens may share a name: the Revoke a screen reader announces names the token's prefix.
    expect(row.get_by_role("button", name=f"Revoke CI deploys ({secret[:12]}…)")).to_be_visible()
    screenshot(page, "tokens")

    ci = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert ci.get("/api/clients/client1/clusters").status_code == 200

    # Revoked at once (a wrong scope): its secret is no longer offered for copying.
    page.click(".revoke-token")
    page.click("#confirm-revoke-token")
    page.wait_for_selector("#tokens-empty:not([hidden])")
    expect(page.locator("#token-created")).to_be_hidden()
    assert secret not in page.content()
    assert ci.get("/api/clients/client1/clusters").json()["code"] == "token_not_valid"
    page.fill("#token-name", "CI deploys")
    page.check("#token-perm-client1-configure")
    page.click("#create-token")
    page.wait_for_selector("#token-created:not([hidden])")
    secret = page.text_content("#token-secret").strip()
    ci = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert ci.get("/api/clients/client1/clusters").status_code == 200

    # Only the hash is kept: a reload shows the prefix, never the secret again.
    page.reload()
    page.wait_for_selector('[data-testid="token-row"]')
    assert secret not in page.content()
    page.click(".revoke-token")
    page.click("#confirm-revoke-token")
    page.wait_for_selector("#tokens-empty:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "tokens-heading"  # not lost to <body>
    assert PersonalAccessToken.objects.filter(revoked_at=None).count() == 0
    assert ci.get("/api/clients/client1/clusters").json()["code"] == "token_not_valid"
    assert page_problems == []


def test_a_role_changes_only_when_the_admin_presses_change_role(
    live_server, new_page, page_problems, admin1, viewer1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.goto(live_server.url + "/#/clients/client1/team")
    row = f'[data-testid="member-row"][data-email="{viewer1.email}"]'
    page.wait_for_selector(row)
    changes = []
    page.on("request", lambda request: request.method == "PATCH" and changes.append(request.post_data))

    # A keyboard user walks through the roles: nothing changes yet, and focus stays put.
    page.focus(f"{row} .member-role")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    page.wait_for_timeout(300)
    assert changes == []
    assert Grant.objects.get(user=viewer1).role == "viewer"
    assert page.evaluate("document.activeElement.classList.contains('member-role')")

    # Then says so: one change, announced; focus stays on the button.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.classList.contains('save-role')")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#members-status:has-text('{viewer1.email} is now admin')")
    assert len(changes) == 1
    assert Grant.objects.get(user=viewer1).role == "admin"
    assert page.get_attribute(row, "data-role") == "admin"
    assert page.evaluate("document.activeElement.classList.contains('save-role')")
    assert page_problems == []


def _policy_with_session_length(client, length: timedelta) -> None:
    wanted = PolicyInput(("password", "google", "passkey"), "", False, length, False, "viewer")
    sign_in_policy_set(client=client, wanted=wanted, actor=None, facts=None)


def _settings_page(page, base_url: str, email: str) -> None:
    sign_in(page, base_url, email)
    page.goto(base_url + "/#/clients/client1/settings")
    page.wait_for_selector("#policy-form")


def test_a_policy_that_cuts_members_off_is_confirmed_first_and_cancelling_saves_nothing(
    live_server, new_page, page_problems, screenshot, admin1, user1, cluster1
):
    from accounts.audit import RequestOrigin
    from accounts.services import session_start

    session_start(user=user1, method="passkey", origin=RequestOrigin(ip=None, user_agent=""))
    client1_token(user1, "nightly backup")
    page = new_page()
    _settings_page(page, live_server.url, admin1.email)
    page.uncheck("#policy-method-passkey")
    page.click("#save-policy")

    dialog = page.locator("#policy-dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("allowed methods: any -> password.")  # no Google here: not offered
    expect(dialog).to_contain_text("Client One User (client1@example.com): sign in another way.")
    expect(dialog).to_contain_text("1 personal access token loses client1")
    screenshot(page, "policy-confirm")
    page.keyboard.press("Enter")  # Cancel has the focus: Enter never confirms by accident
    expect(page.locator("#policy-status")).to_have_text("Nothing was saved.")
    assert not SignInPolicy.objects.exists()

    page.click("#save-policy")
    page.click("#confirm-policy")
    expect(page.locator("#policy-status")).to_contain_text("Saved")
    assert SignInPolicy.objects.get().allowed_methods == ["password"]
    assert not PersonalAccessToken.objects.filter(revoked_at=None).exists()  # its only client went
    page.click("#save-policy")  # pressed again: nothing to confirm, nothing recorded
    expect(page.locator("#policy-status")).to_have_text("Nothing to save: the policy is already this.")
    assert ClientAuditEvent.objects.filter(type="policy_changed").count() == 1
    assert page_problems == []


def test_an_unreadable_session_length_is_refused_not_taken_for_no_limit(
    live_server, new_page, page_problems, admin1, cluster1
):
    _policy_with_session_length(cluster1.client, timedelta(hours=8))
    page = new_page()
    _settings_page(page, live_server.url, admin1.email)
    assert page.input_value("#policy-max-hours") == "8"

    # "1e" is no number: the field reads as empty, which must not mean "no limit".
    page.click("#policy-max-hours")
    page.keyboard.press("Control+A")
    page.keyboard.type("1e")
    page.click("#save-policy")
    page.wait_for_selector("#policy-error:has-text('number of hours')")
    assert page.get_attribute("#policy-max-hours", "aria-invalid") == "true"
    assert page.evaluate("document.activeElement.id") == "policy-max-hours"
    assert page.text_content("#policy-status") == ""
    assert SignInPolicy.objects.get().max_session_length == timedelta(hours=8)
    assert page_problems == []


def test_an_untouched_session_length_is_saved_to_the_second(
    live_server, new_page, page_problems, admin1, cluster1
):
    # 20 minutes shows as 0.33 hours; an unrelated change keeps it 20 minutes, not 19:48.
    _policy_with_session_length(cluster1.client, timedelta(minutes=20))
    page = new_page()
    _settings_page(page, live_server.url, admin1.email)
    assert page.input_value("#policy-max-hours") == "0.33"
    page.uncheck("#policy-method-passkey")
    page.click("#save-policy")
    page.wait_for_selector("#policy-status:has-text('Saved')")
    policy = SignInPolicy.objects.get()
    assert (policy.allowed_methods, policy.max_session_length) == (["password"], timedelta(minutes=20))
    assert page_problems == []


def test_the_tokens_page_offers_only_lifetimes_the_server_allows(
    live_server, new_page, page_problems, user1, cluster1, settings
):
    settings.PAT_MAX_TTL = timedelta(days=45)  # an operator's choice
    page = new_page()
    sign_in(page, live_server.url, user1.email)
    page.goto(live_server.url + "/#/tokens")
    page.wait_for_selector("#token-form")
    offered = page.eval_on_selector_all(
        "#token-expires option", "all => all.map((o) => [o.value, o.textContent])"
    )
    assert offered == [["7d", "7 days"], ["30d", "30 days"], [str(45 * 86400), "45 days (the longest)"]]
    assert page.input_value("#token-expires") == "30d"

    # The operator shortens it while the page is open: the server refuses, with the reason.
    settings.PAT_MAX_TTL = timedelta(days=30)
    page.fill("#token-name", "CI")
    page.select_option("#token-expires", str(45 * 86400))
    page.check("#token-perm-client1-view")
    page.click("#create-token")
    page.wait_for_selector("#token-error:not(:empty)")
    assert "A token lives at most 30 days" in page.text_content("#token-error")
    assert page.evaluate("document.activeElement.id") == "token-expires"
    assert not PersonalAccessToken.objects.exists()

    page.select_option("#token-expires", "30d")
    page.click("#create-token")
    page.wait_for_selector("#token-created:not([hidden])")
    assert page.get_attribute("#token-expires", "aria-invalid") is None
    lifetime = PersonalAccessToken.objects.get().expires_at - timezone.now()
    assert timedelta(days=29, hours=23) < lifetime <= timedelta(days=30)
    assert page_problems == []


def test_revoking_a_tokens_access_asks_first_and_revoking_an_invitation_says_so(
    live_server, new_page, page_problems, admin1, user1, cluster1
):
    token = client1_token(user1, "ci deploy")
    invitation_create(client=cluster1.client, email="temp@example.com", role="viewer", actor=admin1)
    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.goto(live_server.url + "/#/clients/client1/team")
    page.wait_for_selector('[data-testid="client-token-row"]')
    assert "ci deploy of client1@example.com" in page.text_content('[data-testid="client-token-row"]')
    assert " view; last used never" in page.text_content('[data-testid="client-token-row"]')

    page.click(".revoke-client-token")
    page.wait_for_selector("#revoke-client-token-dialog[open]")
    assert "ci deploy" in page.text_content("#revoke-client-token-dialog")
    page.click("#cancel-revoke-client-token")
    assert page.locator('[data-testid="client-token-row"]').count() == 1
    page.click(".revoke-client-token")
    page.click("#confirm-revoke-client-token")
    page.wait_for_selector('[data-testid="client-token-row"]', state="detached")
    token.refresh_from_db()
    assert token.revoked_at is not None or "client1" not in token.scopes  # its only client: revoked

    page.click('[data-email="temp@example.com"] .revoke-invitation')
    page.wait_for_selector("#invitations-status:has-text('Revoked the invitation of temp@example.com')")
    assert page.evaluate("document.activeElement.id") == "invitations-heading"

    # Revoked elsewhere (another tab, another admin) while this page shows it: the stale row goes.
    stale = invitation_create(client=cluster1.client, email="stale@example.com", role="viewer", actor=admin1)
    page.reload()
    page.wait_for_selector('[data-email="stale@example.com"]')
    invitation_revoke(client=cluster1.client, invitation_id=stale.pk, actor=admin1)
    page.click('[data-email="stale@example.com"] .revoke-invitation')
    page.wait_for_selector("#invitations-status:has-text('This invitation is revoked')")
    expect(page.locator('[data-email="stale@example.com"]')).to_have_count(0)
    assert page_problems == []


def test_an_admin_stepping_down_is_asked_first_and_then_leaves_the_team_page(
    live_server, new_page, page_problems, admin1, user_factory, cluster1
):
    from clusters.services import grant_set

    grant_set(
        user=user_factory(email="other.admin@example.com"), client=cluster1.client, role=Grant.Role.ADMIN
    )
    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.goto(live_server.url + "/#/clients/client1/team")
    mine = f'[data-testid="member-row"][data-email="{admin1.email}"]'
    page.wait_for_selector(mine)

    page.select_option(f"{mine} .member-role", "viewer")
    page.click(f"{mine} .save-role")
    page.wait_for_selector("#own-role-dialog[open]")
    assert "no longer run client1's team" in page.text_content("#own-role-dialog")
    page.click("#cancel-own-role")
    # The choice goes back to the role held (once the dialog has answered, a moment later).
    expect(page.locator(f"{mine} .member-role")).to_have_value("admin")
    assert Grant.objects.get(user=admin1).role == "admin"

    page.select_option(f"{mine} .member-role", "viewer")
    page.click(f"{mine} .save-role")
    page.click("#confirm-own-role")
    page.wait_for_selector('[data-testid="cluster-row"]')  # on the clusters page, not a page it cannot use
    assert "/team" not in page.url
    assert Grant.objects.get(user=admin1).role == "viewer"
    assert page_problems == []


def test_the_last_admins_refused_step_down_is_said_in_their_row_and_keeps_the_role(
    live_server, new_page, page_problems, admin1, user1, cluster1
):
    from clusters.services import grant_set

    page = new_page()
    page.set_viewport_size({"width": 1280, "height": 500})  # the page's own error area is out of view
    sign_in(page, live_server.url, admin1.email)
    page.goto(live_server.url + "/#/clients/client1/team")
    mine = f'[data-testid="member-row"][data-email="{admin1.email}"]'
    page.wait_for_selector(mine)

    page.select_option(f"{mine} .member-role", "operator")
    page.click(f"{mine} .save-role")

    # Said at once, in the row: no dialog first asks about a change that cannot happen.
    said = page.locator(f'{mine} [data-testid="member-error"]')
    expect(said).to_contain_text("keeps at least one admin")
    assert page.locator("dialog[open]").count() == 0
    assert said.get_attribute("role") == "alert" and said.is_visible()
    assert page.evaluate("document.activeElement.className").count("save-role") == 1  # where it was
    expect(page.locator(f"{mine} .member-role")).to_have_value("admin")
    assert page.text_content("#page-error") == ""
    page.click(f"{mine} .remove-member")  # nor for removing the only admin
    expect(said).to_contain_text("keeps at least one admin")
    assert page.locator("dialog[open]").count() == 0

    # With a second admin, stepping down is asked about, in the second person.
    grant_set(user=user1, client=cluster1.client, role="admin")
    page.reload()
    page.wait_for_selector(mine)
    page.click(f"{mine} .remove-member")
    expect(page.locator("dialog[open]")).to_contain_text("You lose access to client1 at once")
    page.keyboard.press("Escape")
    assert Grant.objects.get(user=admin1).role == "admin"
    assert page_problems == []


def test_a_deactivated_admin_does_not_count_as_another_admin_for_stepping_down(
    live_server, new_page, page_problems, admin1, user_factory, cluster1
):
    """As the server's rule: a deactivated admin runs nothing, so the last active admin is asked
    about nothing, and told at once."""
    from clusters.services import account_deactivate, grant_set

    disabled = user_factory(email="disabled-admin@example.com")
    grant_set(user=disabled, client=cluster1.client, role="admin")
    account_deactivate(user=disabled)
    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.goto(live_server.url + "/#/clients/client1/team")
    mine = f'[data-testid="member-row"][data-email="{admin1.email}"]'
    page.wait_for_selector(mine)

    page.select_option(f"{mine} .member-role", "operator")
    page.click(f"{mine} .save-role")

    said = page.locator(f'{mine} [data-testid="member-error"]')
    expect(said).to_contain_text("keeps at least one admin")
    assert page.locator("dialog[open]").count() == 0
    page.click(f"{mine} .remove-member")
    expect(said).to_contain_text("keeps at least one admin")
    assert page.locator("dialog[open]").count() == 0
    # The deactivated admin may go: the active one stays.
    theirs = '[data-testid="member-row"][data-email="disabled-admin@example.com"]'
    page.click(f"{theirs} .remove-member")
    expect(page.locator("dialog[open]")).to_contain_text("disabled-admin@example.com loses access")
    page.keyboard.press("Escape")
    assert Grant.objects.get(user=admin1).role == "admin"
    assert page_problems == []


def test_a_new_invitation_says_it_replaced_the_pending_one_and_clears_the_last_message(
    live_server, new_page, page_problems, admin1, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.goto(live_server.url + "/#/clients/client1/team")
    page.wait_for_selector("#invite-form")
    page.fill("#invite-email", "newbie@example.com")
    page.click("#send-invite")
    page.wait_for_selector("#invite-status:has-text('Invitation sent to newbie@example.com')")
    expect(page.locator("#invite-status")).not_to_contain_text("earlier invitation")
    # Invited again (the first email went astray): the admin learns the first link is dead.
    page.fill("#invite-email", "newbie@example.com")
    page.click("#send-invite")
    expect(page.locator("#invite-status")).to_contain_text("The earlier invitation's link no longer works.")
    expect(page.locator('[data-testid="invitation-row"]')).to_have_count(1)

    page.fill("#invite-email", user1.email)  # a member already
    page.click("#send-invite")
    page.wait_for_selector("#invite-error:has-text('already a member')")
    assert page.text_content("#invite-status") == ""
    assert page_problems == []


def _focused(page) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.tagName")


def test_a_refused_invitation_leaves_the_keyboard_where_it_was_and_marks_the_field(
    live_server, new_page, page_problems, admin1, user1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.goto(live_server.url + "/#/clients/client1/team")
    page.wait_for_selector("#invite-form")

    page.fill("#invite-email", "not-an-email")
    page.focus("#send-invite")
    page.keyboard.press("Enter")
    page.wait_for_selector("#invite-error:has-text('Enter a valid email address')")
    assert page.get_attribute("#invite-email", "aria-invalid") == "true" and _focused(page) == "invite-email"

    page.fill("#invite-email", user1.email)  # a member already: refused by the server
    page.focus("#send-invite")
    page.keyboard.press("Enter")
    page.wait_for_selector("#invite-error:has-text('already a member')")
    assert page.get_attribute("#invite-email", "aria-invalid") == "true"  # that address is the problem
    assert _focused(page) == "send-invite"  # not <body>: the button was busy, not gone
    assert page_problems == []


def test_a_policy_without_a_sign_in_method_is_told_so_at_its_checkboxes(
    live_server, new_page, page_problems, settings, admin1, cluster1
):
    settings.GOOGLE_CLIENT_IDS = ["portal.apps.googleusercontent.com"]  # every method offered
    page = new_page()
    _settings_page(page, live_server.url, admin1.email)
    for box in page.query_selector_all("[id^='policy-method-']"):
        box.uncheck()
    page.focus("#save-policy")
    page.keyboard.press("Enter")

    page.wait_for_selector("#policy-error:has-text('Choose at least one sign-in method.')")
    first = page.get_attribute("[id^='policy-method-']", "id")
    assert _focused(page) == first and page.get_attribute(f"#{first}", "aria-invalid") == "true"
    assert "Ensure this field" not in page.text_content("#policy-error")
    assert page_problems == []


def test_a_token_whose_owner_was_demoted_is_listed_with_what_it_can_do_now(
    live_server, new_page, page_problems, admin1, user1, cluster1
):
    from clusters.services import grant_set

    token, _ = access_token_made(user1, name="deployer", clients={"client1": ["configure"]})
    grant_set(user=user1, client=cluster1.client, role="viewer")
    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.goto(live_server.url + "/#/clients/client1/team")

    row = page.wait_for_selector(f'[data-testid="client-token-row"][data-token-id="{token.pk}"]')
    assert "can do nothing here now" in row.text_content()
    assert page_problems == []


def test_a_long_team_can_be_searched_and_a_short_one_has_no_search_box(
    live_server, new_page, page_problems, admin1, user_factory, client1, cluster1
):
    from clusters.services import grant_set

    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.goto(live_server.url + "/#/clients/client1/team")
    page.wait_for_selector('[data-testid="member-row"]')
    assert page.locator("#members-filter").count() == 0  # two members: nothing to search

    for n in range(11):
        grant_set(
            user=user_factory(email=f"member{n}@example.com", name=f"Member Number {n}"),
            client=client1,
            role="viewer",
        )
    page.reload()
    page.wait_for_selector("#members-filter")
    page.fill("#members-filter", "NUMBER 7")  # the name, in any case
    assert page.locator('[data-testid="member-row"]:visible').count() == 1
    assert page.is_visible('[data-testid="member-row"][data-email="member7@example.com"]')
    assert page.text_content("#members-status") == "1 of 12 shown."
    page.fill("#members-filter", "")
    assert page.locator('[data-testid="member-row"]:visible').count() == 12
    assert page_problems == []
