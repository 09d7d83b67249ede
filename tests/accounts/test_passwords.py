"""Password change and reset by email, through the API."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pyotp
import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent, Session
from tests.conftest import DEFAULT_PASSWORD, b64, login

NEW_PASSWORD = "a quite new passphrase 42"


def test_a_password_change_ends_every_other_session_and_keeps_this_one(auth_client, user):
    other, client = auth_client(user), auth_client(user)
    body = {"currentPassword": b64(DEFAULT_PASSWORD), "newPassword": b64(NEW_PASSWORD)}
    assert client.post("/api/auth/password", body, format="json").status_code == 204
    assert client.get("/api/auth/me").status_code == 200
    assert other.get("/api/auth/me").json()["code"] == "token_not_valid"
    assert login(APIClient(), user, NEW_PASSWORD).status_code == 200
    assert login(APIClient(), user, DEFAULT_PASSWORD).status_code == 401
    assert AuditEvent.objects.filter(type="password_changed").count() == 1


@pytest.mark.parametrize(
    ("current", "new", "field"),
    [
        ("wrong password", NEW_PASSWORD, "currentPassword"),
        (DEFAULT_PASSWORD, "password", "newPassword"),  # one of the common passwords
        (DEFAULT_PASSWORD, "short", "newPassword"),
        (DEFAULT_PASSWORD, "alice@example.com", "newPassword"),  # too like the email
    ],
)
def test_a_wrong_current_password_or_a_weak_new_one_is_refused(auth_client, user, current, new, field):
    response = auth_client(user).post(
        "/api/auth/password", {"currentPassword": b64(current), "newPassword": b64(new)}, format="json"
    )
    assert (response.status_code, list(response.json()["fields"])) == (400, [field])
    assert login(APIClient(), user).status_code == 200  # unchanged


def _reset_link() -> tuple[str, str]:
    (message,) = [message for message in mail.outbox if "/#/reset/" in message.body]  # security notices aside
    uid, token = re.search(r"https://portal\.example\.com/#/reset/([^/\s]+)/([^/\s]+)", message.body).groups()
    assert message.alternatives and uid in message.alternatives[0][0]
    return uid, token


def _confirm(uid: str, token: str, password: str = NEW_PASSWORD):
    return APIClient().post(
        "/api/auth/password/reset/confirm",
        {"uid": uid, "token": token, "newPassword": b64(password)},
        format="json",
    )


def test_a_reset_email_links_to_the_app_and_ends_every_session(auth_client, user):
    browser = auth_client(user)
    assert (
        APIClient()
        .post("/api/auth/password/reset", {"email": "Alice@Example.com"}, format="json")
        .status_code
        == 202
    )
    uid, token = _reset_link()
    assert mail.outbox[0].to == ["alice@example.com"]
    assert _confirm(uid, token).status_code == 204
    assert browser.get("/api/auth/me").json()["code"] == "token_not_valid"
    assert Session.objects.get().revoked_reason == "password_reset"
    assert login(APIClient(), user, NEW_PASSWORD).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_sent_in_the_background_the_reset_email_still_arrives(user, settings):
    # Rendered and sent on a thread of its own once the answer is given (EMAIL_SEND_IN_BACKGROUND).
    settings.EMAIL_SEND_IN_BACKGROUND = True
    response = APIClient().post("/api/auth/password/reset", {"email": user.email}, format="json")
    assert response.status_code == 202
    deadline = time.monotonic() + 10
    while not mail.outbox and time.monotonic() < deadline:
        time.sleep(0.01)
    assert mail.outbox[0].to == ["alice@example.com"]
    assert "/#/reset/" in mail.outbox[0].body and "/#/reset/" in mail.outbox[0].alternatives[0][0]


@pytest.mark.parametrize(
    "email", [0, "alice", "alice@", "not an email", "clıent2@example.com", ["alice@example.com"], None]
)
def test_a_reset_for_what_is_no_email_address_says_so_and_sends_nothing(user, email):
    """A typo is told at once, as at sign-in; only a valid address gets the same 202 for all."""
    response = APIClient().post("/api/auth/password/reset", {"email": email}, format="json")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
    assert list(response.json()["fields"]) == ["email"]
    assert mail.outbox == []
    assert (
        APIClient()
        .post("/api/auth/password/reset", {"email": "nobody@example.com"}, format="json")
        .status_code
        == 202
    )


def test_a_reset_never_gives_a_password_to_an_account_without_one(user):
    """An operator turned password sign-in off (or the account came from Google): the same 202,
    and no link that would turn it back on."""
    user.set_unusable_password()
    user.save(update_fields=["password"])

    response = APIClient().post("/api/auth/password/reset", {"email": user.email}, format="json")

    assert response.status_code == 202
    assert mail.outbox == []
    assert AuditEvent.objects.get(type="password_reset_requested").detail == "no password sign-in"


def test_a_reset_link_works_once(user):
    APIClient().post("/api/auth/password/reset", {"email": user.email}, format="json")
    uid, token = _reset_link()
    assert _confirm(uid, token).status_code == 204
    response = _confirm(uid, token, "yet another passphrase 7")
    assert (response.status_code, response.json()["code"]) == (400, "invalid_reset_token")


def _check(uid: object, token: object):
    return APIClient().post("/api/auth/password/reset/check", {"uid": uid, "token": token}, format="json")


def test_a_reset_link_is_checked_before_its_user_types_a_password_and_the_check_changes_nothing(user):
    APIClient().post("/api/auth/password/reset", {"email": user.email}, format="json")
    uid, token = _reset_link()
    checked = _check(uid, token)
    assert (checked.status_code, checked.json()) == (200, {"email": "alice@example.com"})
    assert _check(uid, token).status_code == 200  # checking twice uses nothing up
    user.refresh_from_db()
    assert user.check_password(DEFAULT_PASSWORD)  # the old password still (signing in would end the link)
    assert _confirm(uid, token).status_code == 204
    used = _check(uid, token)
    assert (used.status_code, used.json()["code"]) == (400, "invalid_reset_token")


@pytest.mark.parametrize(
    ("uid", "token"), [("MQ", "nope"), ("!!", "x"), ("", ""), (None, "x"), (1, 2), ("MQ", "x" * 500)]
)
def test_a_reset_link_that_never_worked_is_refused_by_the_check(user, uid, token):
    response = _check(uid, token)
    assert response.status_code == 400
    assert response.json()["code"] in ("invalid_reset_token", "invalid_request")


def test_an_expired_reset_link_is_refused(user, settings):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        APIClient().post("/api/auth/password/reset", {"email": user.email}, format="json")
        uid, token = _reset_link()
        traveller.shift(timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT + 1))
        assert _confirm(uid, token).json()["code"] == "invalid_reset_token"


def test_asking_again_and_again_sends_one_email_and_the_link_sent_keeps_working(user, settings):
    """A stranger cannot flood the inbox, nor keep the owner from resetting."""
    settings.PASSWORD_RESET_EMAIL_INTERVAL = timedelta(minutes=15)
    for addresses in range(4):  # from four addresses: under every per-address limit
        answer = APIClient(REMOTE_ADDR=f"203.0.113.{addresses}").post(
            "/api/auth/password/reset", {"email": user.email}, format="json"
        )
        assert answer.status_code == 202
    assert len(mail.outbox) == 1
    uid, token = _reset_link()  # what the owner, asking too, finds in the inbox
    assert _confirm(uid, token).status_code == 204


def test_a_sign_in_which_kills_the_link_sent_lets_a_new_one_go_at_once(user, settings):
    settings.PASSWORD_RESET_EMAIL_INTERVAL = timedelta(minutes=15)
    APIClient().post("/api/auth/password/reset", {"email": user.email}, format="json")
    uid, token = _reset_link()
    assert login(APIClient(), user).status_code == 200  # Django's reset token includes the last sign-in

    APIClient().post("/api/auth/password/reset", {"email": user.email}, format="json")

    assert len(mail.outbox) == 2
    assert _confirm(uid, token).json()["code"] == "invalid_reset_token"
    mail.outbox.pop(0)
    assert _confirm(*_reset_link()).status_code == 204


@pytest.mark.parametrize("email", ["nobody@example.com", "Alice@Example.org", "alice+x@example.com"])
def test_an_unknown_address_is_answered_exactly_like_a_known_one(user, email):
    known = APIClient().post("/api/auth/password/reset", {"email": user.email}, format="json")
    unknown = APIClient().post("/api/auth/password/reset", {"email": email}, format="json")
    assert (unknown.status_code, unknown.content) == (known.status_code, known.content) == (202, b"")
    assert len(mail.outbox) == 1  # only the known address got mail


def test_a_reset_never_removes_the_second_factor(auth_client, user):
    client = auth_client(user)
    secret = client.post("/api/auth/mfa/totp").json()["secret"]
    client.post("/api/auth/mfa/totp/confirm", {"code": pyotp.TOTP(secret).now()}, format="json")
    APIClient().post("/api/auth/password/reset", {"email": user.email}, format="json")
    assert _confirm(*_reset_link()).status_code == 204
    assert login(APIClient(), user, NEW_PASSWORD).json()["mfaRequired"] is True


def test_guessing_the_current_password_through_a_change_is_throttled(auth_client, user, settings):
    settings.LOGIN_THROTTLE_ACCOUNT = "3/min"
    client = auth_client(user)
    guess = {"currentPassword": b64("a guess"), "newPassword": b64(NEW_PASSWORD)}
    for _ in range(3):
        assert client.post("/api/auth/password", guess, format="json").status_code == 400
    right = {"currentPassword": b64(DEFAULT_PASSWORD), "newPassword": b64(NEW_PASSWORD)}
    response = client.post("/api/auth/password", right, format="json")
    assert (response.status_code, response.json()["code"]) == (429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert login(APIClient(), user).status_code == 200  # the password did not change


def test_a_stolen_sessions_guesses_do_not_refuse_the_owner_the_change_that_shuts_it_out(
    auth_client, user, settings
):
    settings.LOGIN_THROTTLE_ACCOUNT = "3/min"
    stolen, owner = auth_client(user), auth_client(user)
    guess = {"currentPassword": b64("a guess"), "newPassword": b64(NEW_PASSWORD)}
    for _ in range(4):
        stolen.post("/api/auth/password", guess, format="json")
    right = {"currentPassword": b64(DEFAULT_PASSWORD), "newPassword": b64(NEW_PASSWORD)}
    assert owner.post("/api/auth/password", right, format="json").status_code == 204
    assert stolen.get("/api/auth/me").json()["code"] == "token_not_valid"  # shut out


@pytest.mark.parametrize("path", ["/api/auth/password/reset/check", "/api/auth/password/reset/confirm"])
def test_asking_whether_reset_links_work_is_limited_per_address(user, settings, path):
    """A weak password sent to confirm answers the check's question (400 on newPassword once the
    link is accepted): both count against one limit per address."""
    settings.LOGIN_THROTTLE_IP = "3/min"
    body = {"uid": "MQ", "token": "not-a-token", "newPassword": b64("a")}
    answers = [APIClient().post(path, body, format="json") for _ in range(4)]
    assert [answer.status_code for answer in answers] == [400, 400, 400, 429]
    assert answers[-1].json()["code"] == "throttled" and "Retry-After" in answers[-1]


def test_changepassword_ends_the_accounts_sessions_and_tokens_as_an_operators_set_does(
    user1, bearer_client, monkeypatch, capsys
):
    """An operator resetting a compromised account from a shell: nothing the old password made lives on."""
    from django.core.management import call_command

    from accounts.models import AuditEvent, Session
    from tests.helpers import access_token_made

    api = bearer_client(user1)
    token, _ = access_token_made(user1, clients={"client1": ["view"]})
    answers = iter(["a brand new passphrase", "a brand new passphrase"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)  # an operator at a terminal

    call_command("changepassword", "CLIENT1@example.com")

    user1.refresh_from_db()
    assert user1.check_password("a brand new passphrase") and user1.password_version == 1
    assert not Session.objects.filter(user=user1, revoked_at=None).exists()
    assert api.get("/api/auth/me").status_code == 403
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert AuditEvent.objects.filter(user=user1, type="password_changed").exists()
    assert "their sessions and personal access tokens have ended" in capsys.readouterr().out


def test_changepassword_without_a_terminal_says_so_and_changes_nothing(user1, monkeypatch):
    """kubectl exec without -it: a clear refusal, not getpass's traceback."""
    from django.core.management import CommandError, call_command

    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(CommandError, match="run it in a terminal"):
        call_command("changepassword", user1.email)
    user1.refresh_from_db()
    assert user1.password_version == 0


def test_changepassword_needs_the_email_it_is_for(db):
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="arguments are required: email"):
        call_command("changepassword")
