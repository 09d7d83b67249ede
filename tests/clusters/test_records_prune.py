"""``manage.py records_prune``: audit trails and ended sessions older than AUDIT_RETENTION are
deleted; recent events and live sessions, however old, stay and keep working."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.audit import audit_event_record
from accounts.models import AuditEvent, AuditEventType, Session
from clusters.models import ClientAuditEvent
from clusters.services.audit import client_audit_record
from config.retention import rows_delete_in_batches
from tests.conftest import login

AUDIT = "/api/clients/client1/audit"


def _days_ago(days: int):
    return timezone.now() - timedelta(days=days)


def _prune(*arguments: str) -> str:
    out = StringIO()
    call_command("records_prune", *arguments, stdout=out)
    return out.getvalue()


@pytest.fixture
def retention_30_days(settings):
    settings.AUDIT_RETENTION = timedelta(days=30)


def _client_event(client, detail: str, days: int) -> None:
    event = client_audit_record(
        client=client, type=ClientAuditEvent.Type.POLICY_CHANGED, actor=None, detail=detail
    )
    ClientAuditEvent.objects.filter(pk=event.pk).update(at=_days_ago(days))


def test_a_client_admin_no_longer_sees_events_past_the_retention(retention_30_days, as_admin1, client1):
    _client_event(client1, "last year", days=31)
    _client_event(client1, "last week", days=7)
    assert {"last year", "last week"} <= {event["detail"] for event in as_admin1.get(AUDIT).json()}

    assert "1 client audit events" in _prune()

    details = {event["detail"] for event in as_admin1.get(AUDIT).json()}
    assert "last week" in details and "last year" not in details


def test_old_sign_in_events_go_and_recent_ones_stay(retention_30_days, user1):
    old = audit_event_record(type=AuditEventType.LOGIN_FAILED, user=user1, detail="wrong password")
    AuditEvent.objects.filter(pk=old.pk).update(at=_days_ago(40))
    assert login(APIClient(), user1).status_code == 200

    _prune()

    assert list(AuditEvent.objects.filter(user=user1).values_list("type", flat=True)) == [
        AuditEventType.LOGIN_SUCCEEDED
    ]


def test_a_live_session_however_old_keeps_working_and_an_ended_one_goes(retention_30_days, settings, user1):
    settings.JWT_SESSION_MAX = timedelta(days=400)
    live, ended = APIClient(), APIClient()
    assert login(live, user1).status_code == 200
    assert login(ended, user1).status_code == 200
    live_session, ended_session = Session.objects.filter(user=user1).order_by("created_at")
    Session.objects.filter(pk=live_session.pk).update(
        created_at=_days_ago(100), authenticated_at=_days_ago(100)
    )
    stolen_refresh = ended.cookies["__Secure-refreshToken"].value
    assert ended.post("/api/auth/logout").status_code == 204
    Session.objects.filter(pk=ended_session.pk).update(revoked_at=_days_ago(31))

    assert "1 ended sessions" in _prune()

    assert list(Session.objects.filter(user=user1)) == [live_session]
    assert live.post("/api/auth/refresh").status_code == 200
    refused = ended.post("/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {stolen_refresh}")
    assert refused.status_code in (401, 403) and refused.json()["code"]


def test_a_dry_run_counts_and_deletes_nothing(retention_30_days, client1, user1):
    _client_event(client1, "last year", days=365)
    old = audit_event_record(type=AuditEventType.LOGIN_FAILED, user=user1)
    AuditEvent.objects.filter(pk=old.pk).update(at=_days_ago(40))

    out = _prune("--dry-run")

    assert out.startswith(
        "Would delete 1 sign-in audit events, 0 ended sessions, 0 ended personal access tokens, "
        "1 client audit events, 0 ended invitations, 0 cluster changes' addresses"
    )
    assert AuditEvent.objects.filter(pk=old.pk).exists()
    assert ClientAuditEvent.objects.filter(detail="last year").exists()


def test_older_than_overrides_the_setting(client1):
    _client_event(client1, "ten days ago", days=10)
    assert "0 client audit events" in _prune()  # the default keeps a year
    assert "1 client audit events" in _prune("--older-than", "7d")


@pytest.mark.parametrize(
    ("value", "message"),
    [("a week", "--older-than: not a duration: 'a week'; for example 90d."), ("1", "at least 1d")],
)
def test_a_bad_or_tiny_older_than_is_refused_and_deletes_nothing(client1, value, message):
    _client_event(client1, "ten days ago", days=10)
    with pytest.raises(CommandError, match=message):
        _prune("--older-than", value)
    assert ClientAuditEvent.objects.filter(detail="ten days ago").exists()


def test_batches_delete_every_matching_row_and_nothing_else(client1):
    for number in range(5):
        _client_event(client1, f"old {number}", days=60)
    _client_event(client1, "new", days=1)

    deleted = rows_delete_in_batches(
        ClientAuditEvent.objects.filter(at__lt=_days_ago(30)), dry_run=False, batch_size=2
    )

    assert deleted == 5
    assert list(ClientAuditEvent.objects.values_list("detail", flat=True)) == ["new"]


def test_the_cluster_history_forgets_from_where_old_changes_came_but_keeps_them(
    retention_30_days, as_user1, as_admin1, cluster1
):
    from clusters.models import ClusterChange

    history = "/api/clients/client1/clusters/main/history"
    assert as_user1.patch(
        "/api/clients/client1/clusters/main", {"replicas": 3}, format="json"
    ).status_code in (
        200,
        202,
    )
    old = ClusterChange.objects.filter(action="update").get()
    ClusterChange.objects.filter(pk=old.pk).update(created_at=_days_ago(31))
    as_user1.patch("/api/clients/client1/clusters/main", {"replicas": 4}, format="json")

    assert "1 cluster changes' addresses" in _prune()

    entries = {entry["id"]: entry for entry in as_admin1.get(history).json()}
    assert (entries[old.pk]["via"], entries[old.pk]["ip"]) == (None, None)
    assert "client1@example.com" in str(entries[old.pk]["author"])  # the change and its author stay
    recent = ClusterChange.objects.filter(action="update").latest("id")
    assert entries[recent.pk]["via"].startswith("session ") and entries[recent.pk]["ip"]


def test_ended_access_tokens_go_and_a_live_one_however_old_keeps_working(retention_30_days, user1):
    from accounts.models import PersonalAccessToken
    from tests.helpers import access_token_made

    live, live_secret = access_token_made(user1, name="live", clients={"client1": ["view"]})
    ended, _ = access_token_made(user1, name="ended", clients={"client1": ["view"]})
    PersonalAccessToken.objects.filter(pk=live.pk).update(created_at=_days_ago(100))
    PersonalAccessToken.objects.filter(pk=ended.pk).update(
        created_at=_days_ago(100), revoked_at=_days_ago(31)
    )

    assert "1 ended personal access tokens" in _prune()

    assert list(PersonalAccessToken.objects.values_list("name", flat=True)) == ["live"]
    by_token = APIClient(HTTP_AUTHORIZATION=f"Bearer {live_secret}")
    assert by_token.get("/api/clients/client1/clusters").status_code == 200


def test_ended_invitations_go_and_pending_ones_stay(retention_30_days, as_admin1, client1):
    from clusters.models import Invitation

    for email in ("never-joined@example.com", "still-invited@example.com"):
        response = as_admin1.post(
            "/api/clients/client1/invitations", {"email": email, "role": "viewer"}, format="json"
        )
        assert response.status_code == 201, response.json()
    Invitation.objects.filter(email="never-joined@example.com").update(
        created_at=_days_ago(40), expires_at=_days_ago(33)
    )

    assert "1 ended invitations" in _prune()

    listed = as_admin1.get("/api/clients/client1/invitations").json()
    assert [invitation["email"] for invitation in listed] == ["still-invited@example.com"]
