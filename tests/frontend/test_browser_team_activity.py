"""The Team page's watch on the team (pages/team-activity.js) in headless Chromium: the audit
trail's "Show older" and the tokens reaching the client, for keyboard and screen-reader users.
Hooks: dom_ids.md.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from clusters.models import ClientAuditEvent
from tests.frontend.conftest import client1_token, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AUDIT_UNAVAILABLE = '{"code": "audit_unavailable", "detail": "The audit trail cannot be read now."}'


def _trail_of(client, count: int) -> list[int]:
    """``count`` more events on the client's trail; returns the whole trail's ids, newest first."""
    ClientAuditEvent.objects.bulk_create(
        ClientAuditEvent(
            client=client, type="credentials_revealed", cluster="main", actor_email=f"reader{n}@example.com"
        )
        for n in range(count)
    )
    return list(ClientAuditEvent.objects.filter(client=client).order_by("-id").values_list("id", flat=True))


def _shown_ids(page) -> list[int]:
    return [
        int(each)
        for each in page.eval_on_selector_all(
            '[data-testid="audit-row"]', "rows => rows.map(r => r.dataset.eventId)"
        )
    ]


def _open_team(page, base: str, email: str) -> None:
    sign_in(page, base, email)
    page.goto(base + "/#/clients/client1/team")
    page.wait_for_selector('#audit-list:not([aria-busy]) [data-testid="audit-row"]')


def test_the_audit_trail_pages_back_once_per_press_says_so_and_keeps_the_keyboard(
    live_server, new_page, page_problems, admin1, cluster1
):
    trail = _trail_of(cluster1.client, 105)
    page = new_page()
    _open_team(page, live_server.url, admin1.email)
    assert _shown_ids(page) == trail[:100]

    # A page that cannot be read is said beside the button, not at the top of a long page.
    page.route("**/audit?before=*", lambda route: route.fulfill(status=503, body=AUDIT_UNAVAILABLE))
    page.focus("#audit-more")
    page.keyboard.press("Enter")
    expect(page.locator("#audit-status")).to_have_text("The audit trail cannot be read now.")
    expect(page.locator("#page-error")).to_have_text("")
    assert _shown_ids(page) == trail[:100]
    expect(page.locator("#audit-more")).to_be_focused()
    page.unroute("**/audit?before=*")

    # A double press (two clicks before any answer) asks once and shows the page once; the
    # button goes with the last page and hands the keyboard to the section's heading.
    page.eval_on_selector("#audit-more", "button => { button.click(); button.click(); }")
    expect(page.locator("#audit-status")).to_have_text(f"{len(trail) - 100} older events shown.")
    expect(page.locator("#audit-more")).to_be_hidden()
    assert _shown_ids(page) == trail
    expect(page.locator("#audit-heading")).to_be_focused()
    page_problems[:] = [problem for problem in page_problems if "503" not in problem]  # the refusal we staged
    assert page_problems == []


def test_an_older_page_still_on_its_way_when_the_trail_is_reloaded_is_not_appended(
    live_server, new_page, page_problems, admin1, cluster1
):
    _trail_of(cluster1.client, 105)
    page = new_page()
    _open_team(page, live_server.url, admin1.email)
    held = []  # the first older page waits until the test lets it go
    page.route("**/audit?before=*", lambda route: route.continue_() if held else held.append(route))
    page.click("#audit-more")
    expect(page.locator("#audit-list")).to_have_attribute("aria-busy", "true")

    # An invitation adds an event and reloads the newest page meanwhile.
    page.fill("#invite-email", "newcomer@example.com")
    page.click("#send-invite")
    page.wait_for_selector('[data-testid="audit-row"][data-type="member_invited"]')
    held[0].continue_()
    page.wait_for_selector("#audit-list:not([aria-busy])")  # the older page is in, and was dropped

    trail = list(
        ClientAuditEvent.objects.filter(client=cluster1.client).order_by("-id").values_list("id", flat=True)
    )
    assert _shown_ids(page) == trail[:100]
    page.click("#audit-more")
    expect(page.locator("#audit-status")).to_have_text(f"{len(trail) - 100} older events shown.")
    assert _shown_ids(page) == trail  # none twice, none left out
    assert page_problems == []


def test_revoking_a_tokens_access_leaves_the_keyboard_on_the_next_token_then_on_the_heading(
    live_server, new_page, page_problems, admin1, user1, cluster1
):
    client1_token(user1, "ci one")
    client1_token(user1, "ci two")
    page = new_page()
    _open_team(page, live_server.url, admin1.email)
    rows = page.locator('[data-testid="client-token-row"]')
    expect(rows).to_have_count(2)

    # A refusal is said in the token's row, and the keyboard stays on its button.
    page.route(
        "**/api/clients/client1/tokens/*", lambda route: route.fulfill(status=503, body=AUDIT_UNAVAILABLE)
    )
    rows.first.locator(".revoke-client-token").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#revoke-client-token-dialog[open]")
    page.focus("#confirm-revoke-client-token")
    page.keyboard.press("Enter")
    expect(rows.first.get_by_test_id("client-token-error")).to_have_text(
        "The audit trail cannot be read now."
    )
    expect(page.locator("#page-error")).to_have_text("")
    expect(rows.first.locator(".revoke-client-token")).to_be_focused()
    page.unroute("**/api/clients/client1/tokens/*")

    for left in (1, 0):
        page.keyboard.press("Enter")
        page.wait_for_selector("#revoke-client-token-dialog[open]")
        page.focus("#confirm-revoke-client-token")
        page.keyboard.press("Enter")
        expect(rows).to_have_count(left)
        if left:  # the remaining token's button, where the keyboard user goes on from
            expect(rows.first.locator(".revoke-client-token")).to_be_focused()
    expect(page.locator("#client-tokens-heading")).to_be_focused()  # not lost to <body>
    expect(page.locator("#client-tokens-empty")).to_be_visible()
    page_problems[:] = [problem for problem in page_problems if "503" not in problem]  # the refusal we staged
    assert page_problems == []
