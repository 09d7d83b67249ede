"""Device cookies: a stranger's guesses cannot lock an account's owner out of a browser they used."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.conftest import DEFAULT_PASSWORD, b64, login

DEVICE = "__Secure-loginDevice"


@pytest.fixture
def throttled(settings):
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "5/min", "1000/min"


def _owners_browser(user) -> APIClient:
    """A browser the owner has signed in with before: it holds the device cookie."""
    browser = APIClient(REMOTE_ADDR="192.0.2.10")
    assert login(browser, user).status_code == 200
    return browser


def _attacker_locks_out(user) -> None:
    """Wrong guesses from many addresses until the account's bucket refuses even the right password."""
    statuses = [login(APIClient(REMOTE_ADDR=f"198.51.100.{n}"), user, "guess").status_code for n in range(6)]
    assert statuses[-1] == 429 and set(statuses) == {401, 429}
    assert login(APIClient(REMOTE_ADDR="198.51.100.99"), user).status_code == 429


def test_a_successful_sign_in_gives_the_browser_a_strict_http_only_device_cookie(api_client, user):
    response = login(api_client, user)
    cookie = response.cookies[DEVICE]
    assert cookie["httponly"] and cookie["secure"] and cookie["samesite"] == "Strict"
    assert cookie["path"] == "/api/auth/" and int(cookie["max-age"]) == 180 * 86400


def test_the_owners_browser_signs_in_while_a_stranger_has_locked_the_account(throttled, user):
    browser = _owners_browser(user)
    _attacker_locks_out(user)
    assert login(browser, user).status_code == 200


@pytest.mark.parametrize("cookie", ["forged", "another account's", "none"])
def test_without_a_valid_device_cookie_for_this_account_the_lockout_holds(
    throttled, user, user_factory, cookie
):
    browser = APIClient(REMOTE_ADDR="192.0.2.10")
    if cookie == "another account's":
        other = user_factory(email="bob@example.com")
        assert login(browser, other).status_code == 200
    elif cookie == "forged":
        value = _owners_browser(user).cookies[DEVICE].value
        browser.cookies[DEVICE] = value[:-4] + ("AAAA" if not value.endswith("AAAA") else "BBBB")
    _attacker_locks_out(user)
    assert login(browser, user, DEFAULT_PASSWORD).status_code == 429


def test_signing_in_again_keeps_the_browsers_device_cookie(user):
    browser = _owners_browser(user)
    first = browser.cookies[DEVICE].value
    assert login(browser, user).status_code == 200
    assert DEVICE not in login(browser, user).cookies and browser.cookies[DEVICE].value == first


def test_a_device_cookie_that_collects_failures_is_throttled_in_its_own_bucket(throttled, user):
    browser = _owners_browser(user)
    for _ in range(5):
        assert login(browser, user, "typo").status_code == 401
    assert login(browser, user).status_code == 429
    assert login(APIClient(REMOTE_ADDR="203.0.113.5"), user).status_code == 200  # the account is not locked


NEW_PASSWORD = "a brand new passphrase 42"


def _password_change(client: APIClient, current: str = DEFAULT_PASSWORD):
    body = {"currentPassword": b64(current), "newPassword": b64(NEW_PASSWORD)}
    return client.post("/api/auth/password", body, format="json")


@pytest.mark.parametrize("how", ["changed on another browser", "set by an operator"])
def test_a_device_cookie_earned_before_the_password_changed_no_longer_escapes_the_lockout(
    throttled, user, auth_client, how
):
    stolen_browser = _owners_browser(user)
    if how == "set by an operator":
        user.set_password(NEW_PASSWORD)
        user.save()
    else:
        assert _password_change(auth_client(user)).status_code == 204
    _attacker_locks_out(user)
    assert login(stolen_browser, user, NEW_PASSWORD).status_code == 429
    # Nor does it buy attempts of its own: guessing with it counts against the account.
    assert login(stolen_browser, user, "guess").status_code == 429


def test_the_browser_that_changes_the_password_stays_a_known_device(throttled, user, auth_client):
    browser = auth_client(user)
    response = _password_change(browser)
    assert response.status_code == 204 and DEVICE in response.cookies
    _attacker_locks_out(user)
    assert login(browser, user, NEW_PASSWORD).status_code == 200
    assert DEVICE not in login(browser, user, NEW_PASSWORD).cookies  # the renewed cookie is kept


def test_a_browser_that_signs_in_with_the_new_password_gets_a_device_cookie_again(throttled, user):
    browser = _owners_browser(user)
    user.set_password(NEW_PASSWORD)
    user.save()
    assert DEVICE in login(browser, user, NEW_PASSWORD).cookies
    _attacker_locks_out(user)
    assert login(browser, user, NEW_PASSWORD).status_code == 200


# --- Clients without cookies (tokenDelivery "body") ----------------------------------------


def _body_login(user, password: str = DEFAULT_PASSWORD, address: str = "192.0.2.20", **extra):
    return login(APIClient(REMOTE_ADDR=address), user, password, tokenDelivery="body", **extra)


def test_a_client_without_cookies_gets_a_device_token_in_the_body_and_no_cookie(user):
    response = _body_login(user)
    assert response.status_code == 200
    assert response.json()["deviceToken"] and DEVICE not in response.cookies
    # Sent back, it is known: no new one.
    again = _body_login(user, deviceToken=response.json()["deviceToken"])
    assert again.status_code == 200 and "deviceToken" not in again.json()


def test_a_script_that_keeps_its_device_token_signs_in_while_a_stranger_has_locked_the_account(
    throttled, user, user_factory
):
    device_token = _body_login(user).json()["deviceToken"]
    others = _body_login(user_factory(email="bob@example.com")).json()["deviceToken"]
    _attacker_locks_out(user)
    assert _body_login(user, deviceToken=device_token).status_code == 200
    assert _body_login(user).status_code == 429
    assert _body_login(user, deviceToken=others).status_code == 429  # another account's counts for nothing
    forged = device_token[:-4] + ("AAAA" if not device_token.endswith("AAAA") else "BBBB")
    assert _body_login(user, deviceToken=forged).status_code == 429


def test_a_device_token_is_a_string(user):
    response = _body_login(user, deviceToken=["not", "a", "token"])
    assert (response.status_code, list(response.json()["fields"])) == (400, ["deviceToken"])


def test_the_owners_browser_stays_known_across_a_secret_key_rotation(throttled, user, settings):
    """Rotated the documented way (the old key in DJANGO_SECRET_KEY_FALLBACKS): no lockout for the owner."""
    browser = _owners_browser(user)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "z" * 40
    _attacker_locks_out(user)
    assert login(browser, user).status_code == 200

    settings.SECRET_KEY_FALLBACKS = []  # the old key retired: the sign-in above made the cookie out anew
    assert login(browser, user).status_code == 200  # the account is still locked for strangers
