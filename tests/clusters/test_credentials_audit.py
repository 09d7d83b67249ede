"""Every read of a cluster's API keys is on the client's audit trail (who, with which session or
token, from where, which cluster), where its admins and the operators look; a read that cannot
be recorded sends no key."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import IntegrityError, OperationalError
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import PersonalAccessToken, Session
from clusters.models import ClientAuditEvent, Cluster, ClusterChange
from clusters.selectors import cluster_credentials
from tests.helpers import admin_action_confirmed

CREDENTIALS = "/api/clients/client1/clusters/main/credentials"
AUDIT = "/api/clients/client1/audit"


def _reveals(as_admin) -> list[dict]:
    return [event for event in as_admin.get(AUDIT).json() if event["type"] == "credentials_revealed"]


def test_a_reveal_by_a_browser_session_is_on_the_audit_trail_with_actor_cluster_and_ip(
    auth_client, as_admin1, user1, cluster1
):
    browser = auth_client(user1)
    session = Session.objects.filter(user=user1).latest("created_at")

    assert browser.get(CREDENTIALS, REMOTE_ADDR="203.0.113.5").status_code == 200

    [reveal] = _reveals(as_admin1)
    assert reveal["actor"] == "client1@example.com"
    assert (reveal["cluster"], reveal["ip"]) == ("main", "203.0.113.5")
    assert reveal["detail"] == f"session {session.pk}"
    assert reveal["target"] == ""


def test_a_reveal_by_a_personal_access_token_names_the_token(auth_client, as_admin1, user1, cluster1):
    created = auth_client(user1).post(
        "/api/auth/tokens", {"name": "CI deploy", "clients": {"client1": ["credentials"]}}, format="json"
    )
    assert created.status_code == 201, created.content
    token = PersonalAccessToken.objects.get(name="CI deploy")
    script = APIClient(REMOTE_ADDR="198.51.100.23", HTTP_AUTHORIZATION=f"Bearer {created.json()['token']}")

    assert script.get(CREDENTIALS).status_code == 200

    [reveal] = _reveals(as_admin1)
    assert (reveal["actor"], reveal["cluster"], reveal["ip"]) == (
        "client1@example.com",
        "main",
        "198.51.100.23",
    )
    assert reveal["detail"] == f"personal access token #{token.pk} “CI deploy”"


@pytest.mark.parametrize(("hops", "recorded"), [(0, "10.0.0.9"), (1, "192.0.2.77")])
def test_the_recorded_address_trusts_x_forwarded_for_only_behind_the_configured_proxies(
    settings, as_user1, as_admin1, cluster1, hops, recorded
):
    settings.TRUSTED_PROXY_HOPS = hops

    as_user1.get(CREDENTIALS, REMOTE_ADDR="10.0.0.9", HTTP_X_FORWARDED_FOR="203.0.113.66, 192.0.2.77")

    assert [reveal["ip"] for reveal in _reveals(as_admin1)] == [recorded]


def test_each_reveal_is_recorded_and_a_refused_one_is_not(client_for, as_user1, as_admin1, viewer1, cluster1):
    as_user1.get(CREDENTIALS)
    as_user1.get(CREDENTIALS)
    assert client_for(viewer1).get(CREDENTIALS).status_code == 403

    assert [reveal["actor"] for reveal in _reveals(as_admin1)] == ["client1@example.com"] * 2


def test_operators_see_reveals_in_the_admin(admin_browser, as_user1, cluster1):
    as_user1.get(CREDENTIALS, REMOTE_ADDR="203.0.113.5")

    page = admin_browser.get("/admin/clusters/clientauditevent/?type=credentials_revealed").content.decode()

    assert "Cluster API keys revealed" in page
    assert (
        "client1@example.com" in page and "203.0.113.5" in page and '<td class="field-cluster">main' in page
    )


@pytest.mark.parametrize("failure", [OperationalError("disk full"), IntegrityError("refused by a trigger")])
def test_a_reveal_that_cannot_be_recorded_sends_no_key(monkeypatch, as_user1, cluster1, failure, caplog):
    keys = as_user1.get(CREDENTIALS).json()
    recorded = ClientAuditEvent.objects.count()

    def save_fails(self, *args, **kwargs):
        raise failure

    monkeypatch.setattr(ClientAuditEvent, "save", save_fails)
    response = as_user1.get(CREDENTIALS)

    assert (response.status_code, response.json()["code"]) == (503, "audit_unavailable")
    assert response["Retry-After"] == "5" and "no-store" in response["Cache-Control"]
    assert set(response.json()) == {"code", "detail"}
    for key in (keys["apiKey"], keys["readOnlyApiKey"]):
        assert key not in response.content.decode() and key not in caplog.text
    assert ClientAuditEvent.objects.count() == recorded


def test_keys_that_cannot_be_decrypted_leave_no_reveal_on_record(as_user1, cluster1):
    Cluster.objects.filter(pk=cluster1.pk).update(api_key_encrypted="not-a-fernet-token")

    response = as_user1.get(CREDENTIALS)

    assert (response.status_code, response.json()["code"]) == (503, "secrets_unavailable")
    assert not ClientAuditEvent.objects.filter(type="credentials_revealed").exists()


def test_the_keys_a_rotation_answers_with_are_on_the_audit_trail(auth_client, as_admin1, user1, cluster1):
    browser = auth_client(user1)
    session = Session.objects.filter(user=user1).latest("created_at")

    started = browser.post(f"{CREDENTIALS}/rotate", REMOTE_ADDR="203.0.113.8")
    finished = browser.post(f"{CREDENTIALS}/rotate/finish", REMOTE_ADDR="203.0.113.9")

    assert {started.status_code, finished.status_code} <= {200, 202}  # 202: no git remote here
    assert started.json()["apiKey"] and finished.json()["apiKey"]
    assert [(reveal["ip"], reveal["detail"]) for reveal in _reveals(as_admin1)] == [
        ("203.0.113.9", f"session {session.pk}"),
        ("203.0.113.8", f"session {session.pk}"),
    ]


def test_a_rotation_whose_keys_cannot_be_recorded_does_not_happen(monkeypatch, as_user1, cluster1):
    """Else a retry after the 503 would rotate again, and the keys the 503 withheld be lost."""
    keys = as_user1.get(CREDENTIALS).json()

    def save_fails(self, *args, **kwargs):
        raise OperationalError("disk full")

    monkeypatch.setattr(ClientAuditEvent, "save", save_fails)
    response = as_user1.post(f"{CREDENTIALS}/rotate")

    assert (response.status_code, response.json()["code"]) == (503, "audit_unavailable")
    assert set(response.json()) == {"code", "detail"}
    monkeypatch.undo()
    assert as_user1.get(CREDENTIALS).json() == keys  # the same keys, and no rotation under way
    assert not ClusterChange.objects.filter(action="credentials_rotate").exists()


def test_keys_shown_by_the_admin_s_rotation_are_on_the_audit_trail(admin_browser, as_admin1, cluster1):
    page = admin_action_confirmed(
        admin_browser,
        "/admin/clusters/cluster/",
        "rotate_credentials",
        [cluster1.pk],
        follow=True,
        REMOTE_ADDR="198.51.100.4",
    )

    assert "New API keys" in page.content.decode()
    [reveal] = _reveals(as_admin1)
    assert reveal["cluster"] == "main" and reveal["ip"] is None  # an operator's address is not the client's
    assert ClientAuditEvent.objects.get(type="credentials_revealed").ip == "198.51.100.4"
    # The change itself records who, as every change made in the admin: not from where.
    rotation = ClusterChange.objects.get(action="credentials_rotate")
    assert (rotation.actor_email, rotation.credential, rotation.ip) == ("root@example.com", "", None)


@pytest.mark.parametrize("action", ["rotate_credentials", "finish_key_rotation"])
def test_the_admins_key_rotation_needs_a_recent_sign_in_as_the_apis_does(
    admin_browser, settings, cluster1, action
):
    keys = cluster_credentials(cluster=cluster1)
    long_ago = timezone.now() - settings.REAUTHENTICATION_WINDOW - timedelta(seconds=1)
    Session.objects.update(authenticated_at=long_ago)  # the operator's admin browser, left signed in

    page = admin_browser.post(
        "/admin/clusters/cluster/",
        {"action": action, "_selected_action": [cluster1.pk], "post": "yes"},
        follow=True,
    ).content.decode()

    assert "Nothing was done: this needs a sign-in within the last 5 minutes." in page
    assert 'href="/#/confirm?next=/admin/clusters/cluster/"' in page  # confirming comes back here
    assert "New API keys" not in page
    assert cluster_credentials(cluster=Cluster.objects.get(pk=cluster1.pk)) == keys
    assert not ClusterChange.objects.filter(action__startswith="credentials_rotat").exists()


def test_an_operators_reveal_names_them_but_not_their_address_or_session(
    auth_client, as_admin1, operator_staff, cluster1
):
    assert auth_client(operator_staff).get(CREDENTIALS, REMOTE_ADDR="10.20.30.40").status_code == 200

    [reveal] = _reveals(as_admin1)
    assert (reveal["actor"], reveal["cluster"]) == ("ops@example.com", "main")
    assert (reveal["ip"], reveal["detail"]) == (None, "")
    recorded = ClientAuditEvent.objects.get(type="credentials_revealed")
    assert recorded.ip == "10.20.30.40" and recorded.detail.startswith("session ")  # the admin shows them
    # Whether it was an operator is kept with the event: no later demotion or deletion shows them.
    operator_staff.is_operator = False
    operator_staff.save(update_fields=["is_operator"])
    assert [(reveal["ip"], reveal["detail"]) for reveal in _reveals(as_admin1)] == [(None, "")]
    operator_staff.delete()
    assert [(reveal["ip"], reveal["detail"]) for reveal in _reveals(as_admin1)] == [(None, "")]


def test_a_head_request_reveals_nothing_and_records_nothing(client_for, user1, cluster1):
    response = client_for(user1).head("/api/clients/client1/clusters/main/credentials")

    assert response.status_code == 405
    assert not ClientAuditEvent.objects.filter(type="credentials_revealed").exists()
