"""The login page loads in Chromium under the strict policy (hooks: dom_ids.md)."""

import pytest


@pytest.mark.browser
def test_login_page_renders_in_chromium_without_policy_violations(
    live_server, new_page, page_problems, screenshot
):
    page = new_page()
    page.goto(live_server.url + "/")
    page.wait_for_selector("#login-form")
    assert page.get_by_label("Email").is_visible()
    assert page.locator("#google-signin").count() == 0
    screenshot(page, "login")
    assert page_problems == []
