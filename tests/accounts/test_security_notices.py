"""The owner of an account hears by email of each change to how it signs in, made by whoever:
themselves, an operator, or someone who took it over (OWASP's authentication cheat sheets)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.factor_enrolment import second_factors_reset
from accounts.models import AuditEvent
from accounts.passwords import operator_password_set
from accounts.security_notices import NOTICES
from tests.accounts.test_refresh import bearer_refresh
from tests.accounts.test_second_factors import _enrol
from tests.conftest import DEFAULT_PASSWORD, b64

NEW_PASSWORD = "a brand new passphrase 77"


def _notices() -> list:
    return [message for message in mail.outbox if message.subject.endswith("(Qdrant Portal)")]


def test_a_password_change_tells_the_owner_when_and_from_where(auth_client, user):
    client = auth_client(user)
    body = {"currentPassword": b64(DEFAULT_PASSWORD), "newPassword": b64(NEW_PASSWORD)}
    changed = client.post(
        "/api/auth/password",
        body,
        format="json",
        REMOTE_ADDR="203.0.113.7",
        HTTP_USER_AGENT="It was us, ignore this",
    )
    assert changed.status_code == 204

    (notice,) = _notices()
    assert notice.to == ["alice@example.com"]
    assert notice.subject == "Your password was changed (Qdrant Portal)"
    assert "The password of your account was changed. Every other device" in notice.body
    assert "From: 203.0.113.7" in notice.body and " UTC" in notice.body
    assert "https://portal.example.com/#/security" in notice.body
    assert NEW_PASSWORD not in notice.body and b64(NEW_PASSWORD) not in notice.body
    assert "<script" not in notice.alternatives[0][0]
    assert "ignore this" not in notice.body  # the browser's name is the actor's to choose: left out


def test_a_passkey_is_named_as_its_owner_wrote_it():
    event = AuditEvent(type="factor_enrolled", detail="passkey YubiKey 5C NFC")
    _, sentence = NOTICES[event.type]
    assert sentence(event) == "The passkey “YubiKey 5C NFC” was added to your account as a second factor."


def test_a_refused_change_tells_nobody_anything(auth_client, user):
    weak = {"currentPassword": b64(DEFAULT_PASSWORD), "newPassword": b64("password")}
    assert auth_client(user).post("/api/auth/password", weak, format="json").status_code == 400
    assert _notices() == []


def test_second_factor_changes_each_send_a_notice(auth_client, user):
    client = auth_client(user)
    _enrol(client)
    assert _notices()[-1].subject == "A second factor was added (Qdrant Portal)"
    assert "An authenticator app was added to your account as a second factor." in _notices()[-1].body

    assert client.post("/api/auth/mfa/recovery-codes").status_code == 200
    assert _notices()[-1].subject == "New recovery codes (Qdrant Portal)"

    second_factors_reset(user=user, actor=None)
    assert _notices()[-1].subject == "Your second factors were removed (Qdrant Portal)"
    assert "An operator removed every second factor" in _notices()[-1].body
    assert len(_notices()) == 3


@pytest.mark.parametrize(
    ("password", "says"),
    [
        (NEW_PASSWORD, "The password of your account was changed by an operator."),
        (None, "An operator turned password sign-in off for your account."),
    ],
)
def test_an_operator_setting_the_password_tells_the_owner(user, operator_staff, password, says):
    operator_password_set(user=user, password=password, actor=operator_staff)
    (notice,) = _notices()
    assert says in notice.body and notice.to == ["alice@example.com"]
    assert operator_staff.email not in notice.body  # who among the operators stays with the audit log


def test_a_new_personal_access_token_and_a_reused_refresh_token_are_told(
    auth_client, bearer_client, user1, settings
):
    made = auth_client(user1).post(
        "/api/auth/tokens", {"name": "CI", "clients": {"client1": ["view"]}}, format="json"
    )
    assert made.status_code == 201
    assert _notices()[-1].subject == "A personal access token was created (Qdrant Portal)"
    assert made.json()["token"] not in _notices()[-1].body

    stolen = bearer_client(user1).tokens["refreshToken"]
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        bearer_refresh(APIClient(), stolen)
        traveller.shift(settings.JWT_REFRESH_REUSE_GRACE + timedelta(seconds=1))  # no second tab's race
        assert bearer_refresh(APIClient(), stolen).json()["code"] == "refresh_token_reused"
    assert _notices()[-1].subject == "A session was ended (Qdrant Portal)"
    assert stolen not in _notices()[-1].body


def test_a_completed_reset_is_told_but_not_a_request_for_one(user):
    APIClient().post("/api/auth/password/reset", {"email": user.email}, format="json")
    assert _notices() == []  # the reset email itself says what to do if it was not asked for
    (reset_email,) = mail.outbox
    uid, token = reset_email.body.split("/#/reset/")[1].split()[0].split("/")
    body = {"uid": uid, "token": token, "newPassword": b64(NEW_PASSWORD)}
    assert APIClient().post("/api/auth/password/reset/confirm", body, format="json").status_code == 204

    (notice,) = _notices()
    assert notice.subject == "Your password was reset (Qdrant Portal)"
    assert token not in notice.body


def test_an_operator_changing_the_address_tells_the_old_one_and_the_new_one(user_factory, user):
    from django.test import Client as BrowserClient

    from tests.accounts.test_admin import user_change_form_data

    operator = user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)
    browser = BrowserClient()
    browser.force_login(operator)
    form = user_change_form_data(browser.get(f"/admin/accounts/user/{user.pk}/change/"))
    form.update(email="alice@new.example.com", name=user.name)
    for field in ("date_joined", "last_login"):
        form.pop(field, None)

    assert browser.post(f"/admin/accounts/user/{user.pk}/change/", form).status_code == 302

    notices = _notices()
    assert sorted(address for notice in notices for address in notice.to) == [
        "alice@example.com",
        "alice@new.example.com",
    ]
    assert all("from alice@example.com to alice@new.example.com" in notice.body for notice in notices)
    assert "root@example.com" not in notices[0].body


def test_linking_a_google_account_is_told(api_client, user, google_key, google, settings, monkeypatch):
    import accounts.google
    from accounts.google import CachingRequest
    from tests.accounts.google_tokens import CLIENT_ID, id_token

    settings.GOOGLE_CLIENT_IDS, settings.GOOGLE_ALLOWED_DOMAINS = [CLIENT_ID], []
    monkeypatch.setattr(accounts.google, "_google_request", CachingRequest(google))

    signed_in = api_client.post("/api/auth/google", {"credential": id_token(google_key)}, format="json")

    assert signed_in.status_code == 200, signed_in.content
    (notice,) = _notices()
    assert notice.subject == "A Google account was linked (Qdrant Portal)"
