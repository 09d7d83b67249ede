"""Account security in headless Chromium, against the real server (live_server).

An authenticator app set up in the page (its codes computed with pyotp from the secret the
page shows), the second step of a sign-in, recovery codes that work once; passkeys made by
Chromium's virtual authenticator (CDP WebAuthn domain) as a second factor and as the only
one; a password change that signs other devices out; a reset by email; the re-authentication
prompt before a key rotation; and the admin, which staff reach only through the portal's
sign-in (and, when the policy says so, only with a second factor). Hooks: dom_ids.md.

The live server listens on localhost, a valid WebAuthn relying-party ID, and with
WEBAUTHN_RP_ID / WEBAUTHN_ORIGINS unset the portal takes the host the browser names.
The new pages are saved as screenshots (test-artifacts/screenshots); the README shows copies
of six of them from docs/screenshots (security*.png, sign-in-second-step.png,
forgot-password.png, reset-password.png), made from throwaway test accounts.
"""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pyotp
import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect
from rest_framework.test import APIClient

from accounts.models import AuditEvent, GoogleAccount, Passkey, Session, TotpDevice
from clusters.models import Cluster
from clusters.selectors import cluster_credentials
from tests.frontend.conftest import PASSWORD, fake_google, first_factor, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NEW_PASSWORD = "a brand new passphrase 42"
VIRTUAL_AUTHENTICATOR = {
    "protocol": "ctap2",
    "transport": "internal",
    "hasResidentKey": True,
    "hasUserVerification": True,
    "isUserVerified": True,
}


def _sign_out(page) -> None:
    page.click("#signout")
    page.wait_for_selector("#login-form")


def _code_after(totp: pyotp.TOTP, used: set[int]) -> str:
    """The code of a time step the server takes now and has not seen: each step's code works
    once, and the server allows one step of drift, so this step's code or the next one's."""
    while True:
        now = int(time.time() // 30)
        for step in (now, now + 1):
            if step > max(used, default=0):
                used.add(step)
                return totp.at(step * 30)
        time.sleep(1)  # both spent: wait for the clock


def _totp_enrol(page, screenshot=None) -> tuple[pyotp.TOTP, list[str], set[int]]:
    """Sets up an authenticator app on #/security; returns it, the recovery codes and the time steps used."""
    page.click("#totp-setup")
    page.wait_for_selector("#totp-qr")
    assert page.get_attribute("#totp-qr", "src").startswith("data:image/svg+xml")
    totp = pyotp.TOTP(page.get_attribute("#totp-secret", "data-secret"))
    if screenshot:
        screenshot(page, "security-totp-enrol")
    used: set[int] = set()
    page.fill("#totp-code", _code_after(totp, used))
    page.click("#totp-confirm")
    page.wait_for_selector("#recovery-codes-panel")
    codes = page.locator("#recovery-codes code").all_text_contents()
    assert len(codes) == 10 and len(set(codes)) == 10
    if screenshot:
        screenshot(page, "security-recovery-codes")
    assert page.is_disabled("#recovery-done")  # not before the user says they saved them
    page.check("#recovery-saved")
    page.click("#recovery-done")
    page.wait_for_selector("#recovery-codes-panel", state="detached")
    page.wait_for_selector("#totp-state:has-text('On')")
    return totp, codes, used


def _second_step(page, code: str) -> None:
    page.wait_for_selector("#mfa-form")
    page.fill("#mfa-code", code)
    page.click("#mfa-submit")


def _google_login_page(new_page, live_server, google_key, user):
    """The sign-in page with Google's button, for ``user``'s linked Google account; the tokens
    the button hands out."""
    GoogleAccount.objects.create(user=user, sub="4242", email=user.email)
    page = new_page()
    minted = fake_google(page, google_key, sub="4242", email=user.email)
    page.goto(live_server.url + "/#/login")
    page.wait_for_selector("#fake-google-button")
    return page, minted


def test_a_wrong_password_marks_the_password_field_until_it_is_typed_again(
    live_server, new_page, page_problems, user1
):
    page = new_page()
    first_factor(page, live_server.url, user1.email, "not the password")
    expect(page.locator("#login-error")).to_contain_text("not correct")
    password = page.locator("#password")
    expect(password).to_be_focused()
    expect(password).to_have_attribute("aria-invalid", "true")  # read as invalid with the error
    page.keyboard.type("another try")
    expect(password).not_to_have_attribute("aria-invalid", "true")
    assert page_problems == []


def test_google_sign_in_binds_the_token_to_this_browser_so_a_copy_signs_nobody_in(
    live_server, new_page, page_problems, google_key, user1, cluster1
):
    page, minted = _google_login_page(new_page, live_server, google_key, user1)
    page.click("#fake-google-button")
    page.wait_for_selector('[data-testid="cluster-row"]')

    (token,) = minted
    assert token["nonce"] and len(token["nonce"]) >= 32
    # The nonce served its sign-in and is gone; the token, copied out of this browser within its
    # hour, signs nobody in anywhere else.
    assert not [c for c in page.context.cookies() if c["name"].endswith("googleNonce")]
    copied = APIClient().post("/api/auth/google", {"credential": token["credential"]}, format="json")
    assert (copied.status_code, copied.json()["code"]) == (401, "invalid_google_token")
    assert Session.objects.filter(user=user1).count() == 1
    assert page_problems == []


def test_a_tab_whose_nonce_another_tab_replaced_asks_again_and_the_next_try_signs_in(
    live_server, new_page, page_problems, google_key, user1, cluster1
):
    page, minted = _google_login_page(new_page, live_server, google_key, user1)

    # Two tabs opened at once while the browser held no nonce: the other's secret won the cookie.
    page.context.clear_cookies(name=re.compile("googleNonce$"))
    other_tab = page.context.new_page()
    with other_tab.expect_response(re.compile(r"/api/auth/google/nonce$")):
        other_tab.goto(live_server.url + "/#/login")
    other_tab.close()

    page.click("#fake-google-button")
    page.wait_for_selector("#google-error:has-text('sign in with Google again')")
    # The page asked for the browser's nonce again: the next try carries it, and signs in.
    page.wait_for_function("(old) => window.fakeGoogleOptions.nonce !== old", arg=minted[0]["nonce"])
    page.click("#fake-google-button")
    page.wait_for_selector('[data-testid="cluster-row"]')
    assert minted[0]["nonce"] != minted[1]["nonce"]
    assert Session.objects.filter(user=user1).count() == 1
    assert page_problems == []


def test_an_authenticator_app_is_set_up_in_the_page_and_then_asked_for_at_sign_in(
    live_server, new_page, page_problems, screenshot, user1, cluster1
):
    page, base = new_page(), live_server.url
    sign_in(page, base, "client1@example.com")
    page.click("#nav-security")
    page.wait_for_selector("#totp-state:has-text('Off')")
    totp, codes, used = _totp_enrol(page, screenshot)
    assert TotpDevice.objects.get(user=user1).confirmed_at is not None
    assert "10 of 10 codes left" in page.text_content("#recovery-state")
    screenshot(page, "security")
    page.reload()  # the codes were shown once
    page.wait_for_selector("#totp-state:has-text('On')")
    assert codes[0] not in page.content()
    _sign_out(page)

    # The password alone is not enough now; a wrong code is refused and says so.
    first_factor(page, base, "client1@example.com")
    page.wait_for_selector("#mfa-form")
    assert "recovery codes" in page.text_content("#mfa-code-hint")
    assert page.evaluate("document.activeElement.id") == "mfa-code"
    screenshot(page, "sign-in-second-step")
    _second_step(page, "000000")
    page.wait_for_selector("#mfa-error:has-text('not valid')")
    assert page.get_attribute("#mfa-code", "aria-invalid") == "true"
    assert Session.objects.filter(user=user1, revoked_at=None).count() == 0

    # The current code signs in; the session says how.
    _second_step(page, _code_after(totp, used))
    page.wait_for_selector('[data-testid="cluster-row"]')
    page.goto(base + "/#/sessions")
    current = page.locator('[data-testid="session-row"][data-current="true"] [data-testid="session-amr"]')
    assert current.text_content() == "password + authenticator app"
    _sign_out(page)

    # A recovery code signs in once.
    first_factor(page, base, "client1@example.com")
    _second_step(page, codes[0])
    page.wait_for_selector('[data-testid="cluster-row"]')
    assert AuditEvent.objects.filter(user=user1, type="recovery_code_used").count() == 1
    _sign_out(page)
    first_factor(page, base, "client1@example.com")
    _second_step(page, codes[0])
    page.wait_for_selector("#mfa-error:has-text('already used')")
    assert page.locator('[data-testid="cluster-row"]').count() == 0
    assert page_problems == []


def test_new_recovery_codes_replace_the_old_and_removing_the_app_takes_a_current_code(
    live_server, new_page, page_problems, user1, cluster1
):
    page, base = new_page(), live_server.url
    sign_in(page, base, "client1@example.com")
    page.goto(base + "/#/security")
    totp, old_codes, used = _totp_enrol(page)

    page.click("#recovery-regenerate")
    page.click("#confirm-recovery")  # "your current recovery codes stop working"
    page.wait_for_selector("#recovery-codes-panel")
    new_codes = page.locator("#recovery-codes code").all_text_contents()
    assert len(new_codes) == 10 and not set(new_codes) & set(old_codes)
    page.check("#recovery-saved")
    page.click("#recovery-done")

    page.click("#totp-remove")
    page.fill("#totp-remove-code", "000000")
    page.click("#totp-remove-confirm")
    page.wait_for_selector("#totp-error:has-text('not valid')")
    assert TotpDevice.objects.filter(user=user1).exists()
    page.fill("#totp-remove-code", _code_after(totp, used))
    page.click("#totp-remove-confirm")
    page.wait_for_selector("#totp-status:has-text('removed')")
    page.wait_for_selector("#totp-state:has-text('Off')")
    assert not TotpDevice.objects.filter(user=user1).exists()
    assert "set up an authenticator app or a passkey first" in page.text_content("#recovery-state")
    _sign_out(page)
    sign_in(page, base, "client1@example.com")  # the password alone again
    assert page_problems == []


def _wrong_codes(page, count: int) -> None:
    for _ in range(count):
        _second_step(page, "000000")
        page.wait_for_selector("#mfa-error:has-text('not valid')")  # cleared on each submit


def test_wrong_codes_end_the_step_then_throttle_the_account(
    live_server, new_page, page_problems, user1, cluster1
):
    page, base = new_page(), live_server.url
    sign_in(page, base, "client1@example.com")
    page.goto(base + "/#/security")
    totp, _, used = _totp_enrol(page)
    _sign_out(page)

    # One sign-in step takes five wrong codes, then it is over: back to sign-in, `next` kept.
    first_factor(page, base, "client1@example.com", next_path="/sessions")
    _wrong_codes(page, 5)
    _second_step(page, totp.now())  # refused with the step, before any code is looked at
    page.wait_for_selector("#login-form")
    assert "sign in again" in page.text_content("#session-message")
    assert "next=%2Fsessions" in page.url

    # Ten wrong codes across sign-ins: even the right code waits, and the page says how long.
    page.get_by_label("Email").fill("client1@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    _wrong_codes(page, 5)
    first_factor(page, base, "client1@example.com")
    _second_step(page, _code_after(totp, used))
    page.wait_for_selector("#mfa-error:has-text('try again in')")
    # Ten in any 15 minutes: the wait runs to the end of the next 15-minute period at most.
    said = page.text_content("#mfa-error")
    minutes = int(re.search(r"try again in (\d+) minutes\.$", said).group(1))
    assert 15 <= minutes <= 30 and said.count("try again") == 1, said  # the wait is said once
    assert Session.objects.filter(user=user1, revoked_at=None).count() == 0
    assert AuditEvent.objects.filter(user=user1, type="factor_failed").count() == 10
    assert page_problems == []


def test_a_passkey_is_registered_and_then_signs_in_as_second_factor_and_alone(
    live_server, new_page, page_problems, screenshot, user1, cluster1
):
    page, base = new_page(), live_server.url
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_AUTHENTICATOR})

    sign_in(page, base, "client1@example.com")
    page.goto(base + "/#/security")
    page.wait_for_selector("#passkeys-empty")
    page.fill("#passkey-name", "Test laptop")
    page.click("#passkey-add")
    page.wait_for_selector('[data-testid="passkey-row"]:has-text("Test laptop")')
    assert "Added the passkey" in page.text_content("#passkeys-status")
    assert Passkey.objects.get(user=user1).name == "Test laptop"

    # Renamed in place.
    page.click(".passkey-rename")
    page.fill(".passkey-rename-form input", "Work laptop")
    page.click(".passkey-rename-form button[type=submit]")
    page.wait_for_selector('[data-testid="passkey-row"]:has-text("Work laptop")')
    screenshot(page, "security-passkeys")
    _sign_out(page)
    screenshot(page, "login-with-passkey")

    # Password, then the passkey as the second factor.
    first_factor(page, base, "client1@example.com")
    page.wait_for_selector("#mfa-passkey")
    assert page.locator("#mfa-form").count() == 0  # no app, no recovery codes: only the passkey
    page.click("#mfa-passkey")
    page.wait_for_selector('[data-testid="cluster-row"]')
    assert Session.objects.filter(user=user1, revoked_at=None).get().amr == ["password", "webauthn"]
    _sign_out(page)

    # The passkey alone (a discoverable credential): no email, no password.
    page.click("#passkey-signin")
    page.wait_for_selector('[data-testid="cluster-row"]')
    assert Session.objects.filter(user=user1, revoked_at=None).get().amr == ["passkey"]
    page.goto(base + "/#/sessions")
    page.wait_for_selector('[data-testid="session-amr"]:text-is("passkey")')

    # Removed: the password alone signs in again.
    page.goto(base + "/#/security")
    page.click(".passkey-remove")
    page.click("#confirm-passkey-remove")
    page.wait_for_selector("#passkeys-empty:visible")
    assert not Passkey.objects.filter(user=user1).exists()
    assert page_problems == []


# What an older browser lacks (Chromium before 129): the app converts the JSON by itself then.
WITHOUT_WEBAUTHN_JSON = """
delete PublicKeyCredential.parseCreationOptionsFromJSON;
delete PublicKeyCredential.parseRequestOptionsFromJSON;
delete PublicKeyCredential.prototype.toJSON;
"""


def test_passkeys_work_in_a_browser_without_the_webauthn_json_helpers(
    live_server, new_page, page_problems, user1, cluster1
):
    page, base = new_page(), live_server.url
    page.add_init_script(WITHOUT_WEBAUTHN_JSON)
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_AUTHENTICATOR})
    sign_in(page, base, "client1@example.com")
    assert page.evaluate("typeof PublicKeyCredential.parseRequestOptionsFromJSON") == "undefined"
    page.goto(base + "/#/security")
    page.click("#passkey-add")
    page.wait_for_selector('[data-testid="passkey-row"]')
    _sign_out(page)
    page.click("#passkey-signin")
    page.wait_for_selector('[data-testid="cluster-row"]')
    assert Session.objects.filter(user=user1, revoked_at=None).get().amr == ["passkey"]
    assert page_problems == []


def test_a_password_change_signs_the_other_device_out(live_server, new_page, page_problems, user1, cluster1):
    base = live_server.url
    page, other = new_page(), new_page()
    sign_in(other, base, "client1@example.com")
    sign_in(page, base, "client1@example.com")
    dom_advice = []
    page.on(
        "console",
        lambda message: "Password forms should have" in message.text and dom_advice.append(message.text),
    )
    page.goto(base + "/#/security")
    page.wait_for_selector("#password-form")
    # Password managers learn whose password changes (Chromium's advice, logged otherwise).
    assert page.get_attribute("#password-username", "autocomplete") == "username"
    assert page.input_value("#password-username") == "client1@example.com"
    page.wait_for_timeout(300)
    assert dom_advice == []

    # The validators' messages are shown under the field they are about.
    page.fill("#current-password", PASSWORD)
    page.fill("#new-password", "password")
    page.fill("#new-password-repeat", "password")
    page.click("#password-submit")
    page.wait_for_selector("#new-password-error:has-text('too common')")
    page.fill("#current-password", "not my password")
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#new-password-repeat", NEW_PASSWORD)
    page.click("#password-submit")
    page.wait_for_selector("#current-password-error:has-text('not correct')")

    page.fill("#current-password", PASSWORD)
    page.fill("#new-password", NEW_PASSWORD)
    page.fill("#new-password-repeat", NEW_PASSWORD)
    page.focus("#password-submit")
    page.keyboard.press("Enter")
    page.wait_for_selector("#password-status:has-text('signed out')")
    assert page.input_value("#new-password") == ""
    # The button was disabled while it worked: the keyboard goes on from it, not from the top.
    expect(page.locator("#password-submit")).to_be_focused()

    other.goto(base + "/#/sessions")  # the other device's session has ended
    other.wait_for_selector("#login-form")
    # Ended by someone, not timed out: "expired" would tell its user nothing happened.
    expect(other.locator("#session-message")).to_have_text("Your session has ended")
    page.goto(base + "/#/clusters")  # this one stays
    page.wait_for_selector('[data-testid="cluster-row"]')
    _sign_out(page)
    sign_in(page, base, "client1@example.com", NEW_PASSWORD)
    assert page_problems == []


def _reset_link() -> str:
    (message,) = [message for message in mail.outbox if "/#/reset/" in message.body]  # notices aside
    return re.search(r"http://\S+/#/reset/\S+", message.body).group(0)


def test_a_forgotten_password_is_reset_by_email_and_the_link_works_once(
    live_server, new_page, page_problems, screenshot, settings, user1, cluster1
):
    settings.PUBLIC_URL = live_server.url
    page, base = new_page(), live_server.url
    page.goto(base + "/#/login")
    page.click("#forgot-link")
    page.wait_for_selector("#forgot-form")
    screenshot(page, "forgot-password")

    # An address the browser takes but that is none (no dot in its domain): told what is wrong.
    page.fill("#forgot-email", "nobody@example")
    page.click("#forgot-submit")
    expect(page.locator("#forgot-error")).to_have_text("Enter a valid email address.")
    expect(page.locator("#forgot-email")).to_have_attribute("aria-invalid", "true")

    # An address without an account gets the same answer, and no email.
    page.fill("#forgot-email", "nobody@example.com")
    page.click("#forgot-submit")
    page.wait_for_selector("#forgot-status:has-text('If an account exists')")
    unknown = page.text_content("#forgot-status").replace("nobody@example.com", "@")
    assert mail.outbox == []
    page.goto(base + "/#/login")
    page.goto(base + "/#/forgot")
    page.fill("#forgot-email", "client1@example.com")
    page.click("#forgot-submit")
    page.wait_for_selector("#forgot-status:has-text('If an account exists')")
    assert page.text_content("#forgot-status").replace("client1@example.com", "@") == unknown
    link = _reset_link()

    # The link opens the app; a new password, typed twice, is set; back to sign-in.
    page.goto(link)
    page.wait_for_selector("#reset-form")
    # The account's address, for the password manager to save the new password under.
    expect(page.locator("#reset-username")).to_have_attribute("autocomplete", "username")
    expect(page.locator("#reset-username")).to_have_value("client1@example.com")
    page.fill("#reset-password", NEW_PASSWORD)
    page.fill("#reset-password-repeat", "something else entirely")
    page.click("#reset-submit")
    page.wait_for_selector("#reset-password-repeat-error:has-text('not the same')")
    page.fill("#reset-password-repeat", NEW_PASSWORD)
    screenshot(page, "reset-password")
    page.click("#reset-submit")
    page.wait_for_selector("#login-form")
    assert "Your password has been changed" in page.text_content("#session-message")
    assert "/reset/" not in page.url  # the token leaves the address bar
    sign_in(page, base, "client1@example.com", NEW_PASSWORD)
    _sign_out(page)

    # The same link again: said at once, before any password is typed, with a way to a new one.
    page.goto(link)
    page.wait_for_selector("#reset-invalid:has-text('used')")
    expect(page.locator("#reset-form")).to_have_count(0)
    page.click("#reset-request-new")
    page.wait_for_selector("#forgot-form")
    assert page_problems == []


def test_a_reset_link_opened_where_another_account_is_signed_in_signs_that_one_out(
    live_server, new_page, page_problems, settings, user1, user2, cluster2
):
    settings.PUBLIC_URL = live_server.url
    page, base = new_page(), live_server.url
    sign_in(page, base, user2.email)
    APIClient().post("/api/auth/password/reset", {"email": user1.email}, format="json")

    page.goto(_reset_link())
    page.wait_for_selector("#reset-form")
    page.fill("#reset-password", NEW_PASSWORD)
    page.fill("#reset-password-repeat", NEW_PASSWORD)
    page.click("#reset-submit")
    page.wait_for_selector("#login-form")

    page.reload()
    page.wait_for_selector("#login-form")  # not signed back in as the other account
    assert not Session.objects.filter(user=user2, revoked_at=None).exists()
    assert page_problems == []


def _sign_in_long_ago(user, window: timedelta) -> None:
    """The user's session proved who they are longer than ``window`` ago: no longer recent."""
    long_ago = timezone.now() - window - timedelta(seconds=1)
    assert Session.objects.filter(user=user, revoked_at=None).update(authenticated_at=long_ago) == 1


def _asked_to_confirm_a_rotation(page, base: str, settings, user, cluster) -> str:
    """On the credentials page, past the window, a key rotation asked for: the prompt is open.
    Returns the API key the cluster had."""
    page.goto(base + "/#/clients/client1/clusters/main/credentials")
    page.wait_for_selector("#rotate-keys")
    old_key = cluster_credentials(cluster=cluster).api_key
    _sign_in_long_ago(user, settings.REAUTHENTICATION_WINDOW)
    page.click("#rotate-keys")
    page.click("#confirm-rotate")
    page.wait_for_selector("#reauth-dialog[open]")
    return old_key


def test_a_key_rotation_after_the_window_asks_to_confirm_it_is_you(
    live_server, new_page, page_problems, screenshot, settings, git_server, user1, cluster1
):
    page, base = new_page(), live_server.url
    sign_in(page, base, "client1@example.com")
    old_key = _asked_to_confirm_a_rotation(page, base, settings, user1, cluster1)

    # Asked to confirm; cancelled: nothing changes, and the page says so.
    assert page.is_hidden("#reauth-code")  # no authenticator app: the password only
    assert page.input_value("#reauth-username") == "client1@example.com"  # for password managers
    page.click("#reauth-cancel")
    page.wait_for_selector("#page-error:has-text('Nothing was changed')")
    assert page.evaluate("document.activeElement.id") == "rotate-keys"  # the keyboard goes on from there
    assert cluster_credentials(cluster=Cluster.objects.get(pk=cluster1.pk)).api_key == old_key

    # A wrong password is refused in the prompt; the right one lets the rotation through.
    page.click("#rotate-keys")
    page.click("#confirm-rotate")
    page.wait_for_selector("#reauth-dialog[open]")
    page.fill("#reauth-password", "not my password")
    page.click("#reauth-submit")
    page.wait_for_selector("#reauth-error:has-text('not right')")
    screenshot(page, "reauthentication-prompt")
    assert cluster_credentials(cluster=Cluster.objects.get(pk=cluster1.pk)).api_key == old_key
    page.fill("#reauth-password", PASSWORD)
    page.click("#reauth-submit")
    page.wait_for_selector("#rotation-state:has-text('Rotation in progress')")
    assert page.is_hidden("#reauth-dialog")
    assert page.text_content("#page-error") == ""
    assert cluster_credentials(cluster=Cluster.objects.get(pk=cluster1.pk)).api_key != old_key
    assert AuditEvent.objects.filter(user=user1, type="reauthenticated").count() == 1
    assert page_problems == []


@pytest.mark.parametrize(
    ("where", "press", "refusal"),
    [
        ("#/security", "#totp-setup", "#totp-error"),
        ("#/tokens", "#create-token", "#token-error"),
    ],
)
def test_cancelling_confirm_it_is_you_gives_the_keyboard_back_to_the_button_pressed(
    live_server, new_page, page_problems, settings, user1, cluster1, where, press, refusal
):
    page, base = new_page(), live_server.url
    sign_in(page, base, "client1@example.com")
    page.goto(base + "/" + where)
    page.wait_for_selector(press)
    if where == "#/tokens":
        page.fill("#token-name", "CI deploys")
        page.check("#token-perm-client1-view")
    _sign_in_long_ago(user1, settings.REAUTHENTICATION_WINDOW)
    page.click(press)
    page.wait_for_selector("#reauth-dialog[open]")
    assert page.evaluate("document.activeElement.id") == "reauth-password"

    page.click("#reauth-cancel")

    page.wait_for_selector(f"{refusal}:has-text('Nothing was changed')")
    # Not lost to <body> (the button was disabled while the prompt was open).
    assert page.evaluate("document.activeElement.id") == press.lstrip("#")
    assert page_problems == []


def test_leaving_the_page_while_asked_to_confirm_it_is_you_runs_nothing(
    live_server, new_page, page_problems, settings, git_server, user1, cluster1
):
    page, base = new_page(), live_server.url
    sign_in(page, base, "client1@example.com")
    page.goto(base + "/#/clients/client1/clusters/main")
    page.wait_for_selector("#cluster-detail, h1")
    old_key = _asked_to_confirm_a_rotation(page, base, settings, user1, cluster1)
    rotations = []
    page.on("request", lambda request: "/rotate" in request.url and rotations.append(request.url))

    page.go_back()  # to the cluster's page, the prompt still open a moment ago

    page.wait_for_selector("#reauth-dialog", state="hidden")
    assert "/credentials" not in page.url
    page.wait_for_timeout(300)
    assert rotations == []
    assert cluster_credentials(cluster=Cluster.objects.get(pk=cluster1.pk)).api_key == old_key
    assert page_problems == []


def test_an_account_with_only_a_passkey_confirms_it_is_them_with_the_passkey(
    live_server, new_page, page_problems, settings, user1, cluster1
):
    page, base = new_page(), live_server.url
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": VIRTUAL_AUTHENTICATOR})
    sign_in(page, base, "client1@example.com")
    page.goto(base + "/#/security")
    page.wait_for_selector("#passkeys-empty")
    page.fill("#passkey-name", "Test laptop")
    page.click("#passkey-add")
    page.wait_for_selector('[data-testid="passkey-row"]:has-text("Test laptop")')
    _sign_in_long_ago(user1, settings.REAUTHENTICATION_WINDOW)

    # The account has a password too, but a second factor now: that is what it confirms with.
    page.click("#recovery-regenerate")
    page.wait_for_selector("#reauth-dialog[open]")
    assert page.is_hidden("#reauth-password") and page.is_hidden("#reauth-code")
    page.click("#reauth-passkey")
    page.wait_for_selector("#recovery-codes-panel")
    assert len(page.locator("#recovery-codes code").all_text_contents()) == 10
    assert AuditEvent.objects.filter(user=user1, type="reauthenticated").count() == 1
    assert page_problems == []


def _admin_index(page) -> None:
    page.wait_for_url(re.compile(r"^http://[^/#]+/admin/$"))  # the page itself, not a `next=/admin/`
    page.wait_for_selector("#site-name, #branding")
    assert "Qdrant Portal operations" in page.content()


def test_staff_without_a_second_factor_enrol_before_the_admin_opens(
    live_server, new_page, page_problems, settings, user_factory
):
    settings.MFA_REQUIRED_FOR_STAFF = True
    user_factory(email="ops@example.com", is_staff=True, is_superuser=True)
    page, base = new_page(), live_server.url

    page.goto(base + "/admin/")  # the admin's own sign-in sends the browser to the portal's
    page.wait_for_selector("#login-form")
    assert "next=/admin/" in page.url or "next=%2Fadmin%2F" in page.url
    page.get_by_label("Email").fill("ops@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()

    page.wait_for_selector("#enrolment-required")
    assert "/#/security" in page.url
    page.goto(base + "/#/clusters")  # nothing else works before a second factor
    page.wait_for_url(re.compile(r"/#/security\?next="))
    page.wait_for_selector("#enrolment-required")
    _totp_enrol(page)
    page.click("#continue-admin")
    _admin_index(page)
    assert page_problems == []


def test_an_operator_past_the_window_confirms_it_is_them_and_repeats_the_admins_rotation(
    live_server, new_page, page_problems, settings, user_factory, git_server, cluster1
):
    settings.MFA_REQUIRED_FOR_STAFF = False
    operator = user_factory(email="ops@example.com", is_staff=True, is_superuser=True)
    page, base = new_page(), live_server.url
    page.goto(base + "/admin/")
    page.wait_for_selector("#login-form")
    page.get_by_label("Email").fill("ops@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    _admin_index(page)
    _sign_in_long_ago(operator, settings.REAUTHENTICATION_WINDOW)  # the admin left open a while

    def rotate() -> None:
        page.goto(base + "/admin/clusters/cluster/")
        page.check(f'input[name="_selected_action"][value="{cluster1.pk}"]')
        page.select_option('select[name="action"]', "rotate_credentials")
        page.click('button[name="index"]')

    rotate()
    page.get_by_role("link", name="Confirm it is you").click()  # not "sign in again": a loop
    page.wait_for_selector("#reauth-dialog[open]")
    page.fill("#reauth-password", PASSWORD)
    page.click("#reauth-submit")
    page.wait_for_url(re.compile(r"^http://[^/#]+/admin/clusters/cluster/$"))
    rotate()
    page.get_by_role("button", name="Yes, rotate their keys").click()  # it asks first, naming the cluster
    page.wait_for_selector("text=New API keys")
    assert page_problems == []


def test_staff_with_a_second_factor_reach_the_admin_through_both_steps(
    live_server, new_page, page_problems, settings, user_factory
):
    settings.MFA_REQUIRED_FOR_STAFF = True
    user_factory(email="ops@example.com", is_staff=True, is_superuser=True)
    page, base = new_page(), live_server.url
    first_factor(page, base, "ops@example.com")
    page.wait_for_selector("#enrolment-required")
    totp, _, used = _totp_enrol(page)
    _sign_out(page)

    page.goto(base + "/admin/")
    page.wait_for_selector("#login-form")
    page.get_by_label("Email").fill("ops@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in", exact=True).click()
    _second_step(page, _code_after(totp, used))
    _admin_index(page)

    # Already signed in: the sign-in page with an admin `next` goes straight on; any other
    # `next` stays inside the app.
    page.goto(base + "/#/login?next=/admin/accounts/user/")
    page.wait_for_url(re.compile(r"^http://[^/#]+/admin/accounts/user/$"))
    page.wait_for_selector("#changelist")
    page.goto(base + "/#/login?next=https://evil.example/admin/")
    page.wait_for_selector('#clusters-empty, [data-testid="cluster-row"]')
    assert page.url.startswith(base)

    # Signing out of the portal ends the admin session too.
    _sign_out(page)
    page.goto(base + "/admin/accounts/user/")
    page.wait_for_selector("#login-form")
    assert page_problems == []
