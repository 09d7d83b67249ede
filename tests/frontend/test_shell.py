"""The HTML shell: served at /, sets the CSRF cookie, strict CSP, no inline code."""

import re

import pytest


def test_shell_sets_csrf_cookie_and_a_strict_policy(client, db):
    response = client.get("/")
    assert response.status_code == 200
    assert "csrftoken" in response.cookies
    policy = response["Content-Security-Policy"]
    assert "script-src 'self';" in policy
    assert "style-src 'self';" in policy
    assert "connect-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert "accounts.google.com" not in policy
    html = response.content.decode()
    # Only the non-executable JSON config block and external module scripts.
    for tag in re.findall(r"<script[^>]*>", html):
        assert 'type="application/json"' in tag or "src=" in tag, tag
    assert " style=" not in html and " onclick=" not in html


def test_google_origins_are_allowed_only_when_google_sign_in_is_configured(client, db, settings):
    settings.GOOGLE_CLIENT_IDS = ["123.apps.googleusercontent.com"]
    response = client.get("/")
    policy = response["Content-Security-Policy"]
    assert "script-src 'self' https://accounts.google.com/gsi/client;" in policy
    assert '"googleClientId": "123.apps.googleusercontent.com"' in response.content.decode()


def test_the_api_origin_is_allowed_to_connect_when_the_app_is_served_elsewhere(client, db, settings):
    settings.API_BASE_URL = "https://api.example.com/"
    policy = client.get("/")["Content-Security-Policy"]
    assert "connect-src 'self' https://api.example.com;" in policy


@pytest.mark.parametrize(("argocd_url", "followed"), [("", "false"), ("https://argocd.example.com", "true")])
def test_the_app_knows_whether_cluster_pages_follow_deployments(client, db, settings, argocd_url, followed):
    """The key rotation's messages point at the Deployment card only where it exists."""
    settings.ARGOCD_URL = argocd_url
    assert f'"deploymentsFollowed": {followed}' in client.get("/").content.decode()
