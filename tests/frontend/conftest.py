"""Browser tests: Playwright drives Debian's Chromium against Django's live_server.

They are skipped, with the reason, when Chromium is not installed; with
PORTAL_REQUIRE_BROWSER=1 (set by .ci/run) a missing browser is a failure instead.
The DOM ids and test ids they rely on are listed in dom_ids.md beside this file.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.db import connections

import accounts.google
from accounts.google import CachingRequest
from accounts.models import PersonalAccessToken
from tests.accounts.google_tokens import CLIENT_ID as GOOGLE_CLIENT_ID
from tests.accounts.google_tokens import KID, FakeGoogle, certificate_pem, id_token, private_key
from tests.conftest import DEFAULT_PASSWORD
from tests.helpers import access_token_made

CHROMIUM = os.environ.get("PORTAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

# Playwright's sync API runs an event loop in the test thread; the ORM calls made by the
# tests themselves are still synchronous, so Django's async-safety guard must stand aside.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _chromium_available() -> bool:
    return os.path.exists(CHROMIUM) or shutil.which("chromium") is not None


@pytest.fixture(scope="session")
def browser():
    if not _chromium_available():
        message = f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium`"
        if os.environ.get("PORTAL_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
            headless=True,
            args=CHROMIUM_ARGS,
        )
        yield browser
        browser.close()


@pytest.fixture(autouse=True)
def _the_test_uses_the_live_servers_database_connection(request):
    """The test's own ORM calls and the live server share one connection, as Django intends.

    Playwright's sync API marks its event loop as running on this thread between its calls, so
    Django's thread-critical connection store answers per context instead of per thread: the
    test would open a second connection to the in-memory SQLite database. Shared-cache table
    locks fail at once instead of waiting, so a test's write while the server read the same table
    (a page polling) failed with "database table is locked". The server's connection, put in the
    store this test reads, after the browser has started (empty on other databases).
    """
    if "live_server" not in request.fixturenames:
        return
    if "new_page" in request.fixturenames or "browser" in request.fixturenames:
        request.getfixturevalue("browser")
    live_server = request.getfixturevalue("live_server")
    for alias, connection in live_server.thread.connections_override.items():
        connections[alias] = connection


class PageProblems(list):
    """Policy violations and uncaught exceptions seen by a page.

    Chromium also logs every 4xx fetch as a console error ("Failed to load resource"); the
    app handles those itself, so they are not problems.
    """


def _is_problem(message: str) -> bool:
    return "Failed to load resource" not in message


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def new_page(browser, page_problems):
    contexts = []

    def make(viewport: dict | None = None):
        context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
        context.grant_permissions(["clipboard-read", "clipboard-write"])
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        page.on(
            "console",
            lambda m: m.type == "error" and _is_problem(m.text) and page_problems.append(m.text),
        )
        page.on("pageerror", lambda e: page_problems.append(str(e)))
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def screenshot():
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


# --- Signing in through the page -----------------------------------------------------------

PASSWORD = DEFAULT_PASSWORD


@pytest.fixture(autouse=True)
def _generous_login_throttles(settings):
    """Browser flows sign in many times a minute; the throttles have tests of their own."""
    settings.LOGIN_THROTTLE_ACCOUNT = "100/min"
    settings.LOGIN_THROTTLE_IP = "100/min"


def first_factor(page, base_url: str, email: str, password: str = PASSWORD, next_path: str = "") -> None:
    """Submits the sign-in form; what follows (the clusters, a second step, a step-up) is the caller's."""
    page.goto(base_url + "/#/login" + (f"?next={next_path}" if next_path else ""))
    page.wait_for_selector("#login-form")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()  # not "Sign in with a passkey"


def sign_in(page, base_url: str, email: str, password: str = PASSWORD) -> None:
    """Signs in with the password alone and waits for the clusters page."""
    first_factor(page, base_url, email, password)
    page.wait_for_selector('[data-testid="cluster-row"], #clusters-empty')


def client1_token(user, name: str) -> PersonalAccessToken:
    """A personal access token of ``user`` that views client1, as the Tokens page makes one."""
    token, _ = access_token_made(user, name=name, clients={"client1": ["view"]})
    return token


@pytest.fixture
def google_key(settings, monkeypatch):
    """Google sign-in on, verified with this key's certificate (only Google's certificate
    download is faked); pages get Google's button with ``fake_google(page, google_key)``."""
    key = private_key()
    settings.GOOGLE_CLIENT_IDS = [GOOGLE_CLIENT_ID]
    monkeypatch.setattr(
        accounts.google, "_google_request", CachingRequest(FakeGoogle({KID: certificate_pem(key)}))
    )
    return key


# Google's script, served by the test in its place (the browser has no internet): it renders a
# button that hands the page an ID token the test makes with its key, carrying the nonce the
# page gave Google's script, as Google's popup would.
FAKE_GOOGLE_SCRIPT = """
window.google = { accounts: { id: {
  initialize(options) { window.fakeGoogleOptions = options; },
  renderButton(holder) {
    const button = document.createElement("button");
    button.type = "button";
    button.id = "fake-google-button";
    button.textContent = "Sign in with Google";
    button.addEventListener("click", async () => {
      const options = window.fakeGoogleOptions;
      options.callback({ credential: await window.googleIdToken(options.client_id, options.nonce || null) });
    });
    holder.replaceChildren(button);  // as Google's does, on each render
  },
} } };
"""


def fake_google(page, key, **claims) -> list[dict]:
    """Google's script on ``page``, signing with ``key`` (``claims`` override id_token's); what it
    handed the page: each token and the nonce it carried."""
    minted = []

    def google_id_token(client_id: str, nonce: str | None) -> str:
        credential = id_token(key, **{"aud": client_id, "azp": client_id, "nonce": nonce, **claims})
        minted.append({"credential": credential, "nonce": nonce})
        return credential

    page.expose_function("googleIdToken", google_id_token)
    page.route(
        "https://accounts.google.com/gsi/client",
        lambda route: route.fulfill(content_type="text/javascript", body=FAKE_GOOGLE_SCRIPT),
    )
    return minted
