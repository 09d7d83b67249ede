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

import pytest
from django.core import mail
from rest_framework.test import APIClient

from accounts.models import PersonalAccessToken
from clusters.models import ClientAuditEvent, Grant, SignInPolicy
from clusters.services import PolicyInput, sign_in_policy_set
from tests.frontend.conftest import first_factor, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_admin_runs_the_team_and_an_invitee_joins(
    live_server, new_page, page_problems, screenshot, admin1, user1, viewer1, cluster1
):
    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.wait_for_selector('[data-testid="cluster-row"]')
    page.click('[data-client="client1"] .team-link')
    page.wait_for_selector('[data-testid="member-row"][data-email="viewer1@example.com"]')
    assert page.locator('[data-testid="member-row"]').count() == 3

    # A role change applies at once.
    page.select_option('[data-email="viewer1@example.com"] .member-role', "operator")
    page.wait_for_selector("#members-status:has-text('viewer1@example.com is now operator')")
    assert Grant.objects.get(user=viewer1).role == "operator"

    # An invitation goes out by email and waits in the list.
    page.fill("#invite-email", "newcomer@example.com")
    page.select_option("#invite-role", "viewer")
    page.click("#send-invite")
    page.wait_for_selector('[data-testid="invitation-row"][data-email="newcomer@example.com"]')
    (message,) = mail.outbox
    (link,) = re.findall(r"https://portal\.example\.com(/#/invitations/[A-Za-z0-9_-]+)", message.body)

    # A removal asks first, then takes the member off.
    page.click('[data-email="client1@example.com"] .remove-member')
    page.click("#confirm-remove-member")
    page.wait_for_selector('[data-testid="member-row"][data-email="client1@example.com"]', state="detached")
    assert not Grant.objects.filter(user=user1).exists()
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


def test_an_admin_sets_the_sign_in_policy_and_a_member_is_offered_the_step_up(
    live_server, new_page, page_problems, screenshot, admin1, user1, cluster1, settings
):
    page = new_page()
    sign_in(page, live_server.url, admin1.email)
    page.wait_for_selector('[data-testid="cluster-row"]')
    page.click('[data-client="client1"] .settings-link')
    page.wait_for_selector("#policy-form")
    page.check("#policy-mfa")
    page.fill("#policy-max-hours", "8")
    page.click("#save-policy")
    page.wait_for_selector("#policy-error:has-text('would leave you out')")  # the admin has no second factor
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
    first_factor(member, live_server.url, user1.email)
    member.wait_for_selector('[data-testid="restricted-client"][data-client="client1"]')
    assert "signing in with Google" in member.text_content("#step-up")
    assert member.locator('[data-testid="cluster-row"]').count() == 0
    screenshot(member, "step-up")
    member.click('[data-client="client1"] .step-up-sign-in')
    member.wait_for_selector("#session-message:has-text('Sign in with Google to reach Client One')")
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
    page.check("#token-perm-client1-view")
    page.check("#token-perm-client1-configure")
    page.click("#create-token")
    page.wait_for_selector("#token-created:not([hidden])")
    secret = page.text_content("#token-secret").strip()
    assert re.fullmatch(r"qpt_[0-9A-Za-z]{49}", secret)
    page.click("#copy-token")
    page.wait_for_selector("#token-copy-status:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    row = page.locator('[data-testid="token-row"]')
    assert row.count() == 1 and "client1: configure, view" in row.text_content()
    screenshot(page, "tokens")

    ci = APIClient(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert ci.get("/api/clients/client1/clusters").status_code == 200

    # Only the hash is kept: a reload shows the prefix, never the secret again.
    page.reload()
    page.wait_for_selector('[data-testid="token-row"]')
    assert secret not in page.content()
    page.click(".revoke-token")
    page.click("#confirm-revoke-token")
    page.wait_for_selector("#tokens-empty:not([hidden])")
    assert PersonalAccessToken.objects.get().revoked_at is not None
    assert ci.get("/api/clients/client1/clusters").json()["code"] == "token_not_valid"
    assert page_problems == []
