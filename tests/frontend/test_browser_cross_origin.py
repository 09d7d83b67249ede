"""The README's "Serving the browser app from another origin", in headless Chromium.

Django renders the shell on app.example.test with API_BASE_URL pointing at api.example.test
(both names resolve to the live server). The shell sets a csrftoken cookie on the app's host;
that one is not the API's, so the app must send the API's own token on every write.
"""

from __future__ import annotations

import os
import shutil

import pytest

from accounts.models import Session
from clusters.models import Cluster
from tests.frontend.conftest import CHROMIUM, CHROMIUM_ARGS, PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def two_origins(live_server, settings):
    """(app origin, API origin), configured as the README says, over plain HTTP."""
    port = live_server.url.rsplit(":", 1)[1]
    app, api = f"http://app.example.test:{port}", f"http://api.example.test:{port}"
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "app.example.test", "api.example.test"]
    settings.API_BASE_URL = api
    settings.CORS_ALLOWED_ORIGINS = [app]
    settings.CSRF_TRUSTED_ORIGINS = [*settings.CSRF_TRUSTED_ORIGINS, app]
    settings.AUTH_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    return app, api


@pytest.fixture
def cross_origin_page(browser, page_problems):
    """A page in a second Chromium that resolves *.example.test to this machine."""
    resolving = browser.browser_type.launch(
        executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"),
        headless=True,
        args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP *.example.test 127.0.0.1"],
    )
    page = resolving.new_page()
    page.set_default_timeout(10_000)
    page.on("pageerror", lambda error: page_problems.append(str(error)))
    yield page
    resolving.close()


def test_an_app_served_from_another_origin_saves_and_signs_out(
    two_origins, cross_origin_page, page_problems, git_server, user1, cluster1
):
    app, api = two_origins
    page = cross_origin_page
    writes = []
    page.on("request", lambda r: r.method != "GET" and writes.append((r.url, r.headers.get("x-csrftoken"))))
    page.goto(app + "/#/login")
    page.wait_for_selector("#login-form")
    app_host_token = page.evaluate("document.cookie")  # the shell's csrftoken, on the app's host
    page.fill("#email", user1.email)
    page.fill("#password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector('[data-testid="cluster-row"]')

    page.goto(app + "/#/clients/client1/clusters/main")
    page.wait_for_selector("#scale-form")
    page.fill("#replicas", "3")
    page.click("#save-replicas")
    page.wait_for_selector("#revision-commit[data-commit], #save-error:not(:empty)")
    assert page.text_content("#save-error") == ""  # not "CSRF check failed"
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 3

    page.click("#signout")
    page.wait_for_selector("#login-form")
    assert "You have signed out." in page.text_content("#session-message")
    assert Session.objects.filter(user=user1, revoked_at=None).count() == 0
    assert all(url.startswith(api) for url, _ in writes)
    assert all(token and token not in app_host_token for url, token in writes if "/login" not in url)
    assert page_problems == []
