"""Second factors through the API: TOTP enrolment, the second sign-in step, recovery codes,
re-authentication, and the staff policy. Codes come from pyotp, as an authenticator app's would."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import AuditEvent, Session, TotpDevice
from tests.conftest import DEFAULT_PASSWORD, b64, login


def _enrol(client) -> tuple[pyotp.TOTP, list[str]]:
    started = client.post("/api/auth/mfa/totp")
    assert started.status_code == 200, started.content
    body = started.json()
    assert body["otpauthUri"].startswith("otpauth://totp/Qdrant%20Portal:")
    assert body["qrCode"].startswith("data:image/svg+xml")
    totp = pyotp.TOTP(body["secret"])
    confirmed = client.post("/api/auth/mfa/totp/confirm", {"code": totp.now()}, format="json")
    assert confirmed.status_code == 200, confirmed.content
    return totp, confirmed.json()["recoveryCodes"]


@pytest.fixture
def enrolled(auth_client, user):
    """A user with an authenticator app; returns (totp, recovery codes)."""
    return _enrol(auth_client(user))


def _first_step(user) -> dict:
    response = login(APIClient(), user)
    assert response.status_code == 200
    assert not {"__Host-accessToken", "__Secure-refreshToken"} & set(response.cookies)
    return response.json()


def _verify(token: str, **answer):
    return APIClient().post("/api/auth/mfa/verify", {"mfaToken": token, **answer}, format="json")


def _next_code(totp: pyotp.TOTP, traveller) -> str:
    """The code of the next time step: each code works once, as an app shows a new one every 30 s."""
    traveller.shift(timedelta(seconds=30))
    return totp.now()


def test_enrolment_gives_ten_recovery_codes_and_marks_the_session(auth_client, user):
    client = auth_client(user)
    _, codes = _enrol(client)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert TotpDevice.objects.get(user=user).confirmed_at is not None
    assert Session.objects.get().amr == ["password", "totp"]
    assert client.get("/api/auth/mfa").json()["totp"] is True
    assert AuditEvent.objects.filter(type="factor_enrolled", detail="totp").count() == 1


def test_a_password_alone_no_longer_signs_in(enrolled, user):
    body = _first_step(user)
    assert body["mfaRequired"] is True and body["methods"] == ["totp", "recovery"]
    assert "user" not in body and "accessToken" not in body


def test_the_second_step_completes_the_sign_in_with_the_current_code(enrolled, user):
    totp, _ = enrolled
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        token = _first_step(user)["mfaToken"]
        response = _verify(token, code=_next_code(totp, traveller))
    assert response.status_code == 200, response.content
    assert {"__Host-accessToken", "__Secure-refreshToken"} <= set(response.cookies)
    assert Session.objects.filter(revoked_at=None).latest("created_at").amr == ["password", "totp"]


def test_a_wrong_code_is_refused_and_the_token_dies_after_five(enrolled, user):
    token = _first_step(user)["mfaToken"]
    for _ in range(5):
        response = _verify(token, code="000000")
        assert (response.status_code, response.json()["code"]) == (401, "invalid_second_factor")
    assert _verify(token, code=enrolled[0].now()).json()["code"] == "mfa_token_invalid"
    assert AuditEvent.objects.filter(type="factor_failed").count() == 5


def test_wrong_codes_across_many_sign_ins_throttle_the_account(enrolled, user, settings):
    settings.LOGIN_THROTTLE_ACCOUNT = "100/min"
    for _ in range(2):
        token = _first_step(user)["mfaToken"]
        for _ in range(5):
            _verify(token, code="000000")
    response = _verify(_first_step(user)["mfaToken"], code=enrolled[0].now())
    assert (response.status_code, response.json()["code"]) == (429, "throttled")


def test_a_code_works_once(enrolled, user):
    totp, _ = enrolled
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        code = _next_code(totp, traveller)
        assert _verify(_first_step(user)["mfaToken"], code=code).status_code == 200
        assert _verify(_first_step(user)["mfaToken"], code=code).json()["code"] == "invalid_second_factor"


def test_a_recovery_code_works_once_and_is_audited(enrolled, user):
    _, codes = enrolled
    assert _verify(_first_step(user)["mfaToken"], code=codes[0].upper()).status_code == 200
    assert _verify(_first_step(user)["mfaToken"], code=codes[0]).json()["code"] == "invalid_second_factor"
    assert AuditEvent.objects.filter(type="recovery_code_used").count() == 1
    assert Session.objects.filter(revoked_at=None).latest("created_at").amr == ["password", "recovery"]


@pytest.mark.parametrize("misuse", ["replayed", "expired", "another user's code"])
def test_an_mfa_token_cannot_be_replayed_outlive_five_minutes_or_take_another_users_code(
    enrolled, user, user_factory, auth_client, misuse
):
    totp, _ = enrolled
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        token = _first_step(user)["mfaToken"]
        if misuse == "replayed":
            assert _verify(token, code=_next_code(totp, traveller)).status_code == 200
            code = _next_code(totp, traveller)
        elif misuse == "expired":
            traveller.shift(timedelta(minutes=5, seconds=1))
            code = totp.now()
        else:
            other_totp, _ = _enrol(auth_client(user_factory(email="bob@example.com")))
            code = _next_code(other_totp, traveller)
        response = _verify(token, code=code)
    assert response.status_code in (401, 403)
    assert response.json()["code"] in {"mfa_token_invalid", "invalid_second_factor"}
    assert response.json()["code"] == (
        "invalid_second_factor" if misuse == "another user's code" else "mfa_token_invalid"
    )


def test_sensitive_actions_need_a_recent_authentication(auth_client, user):
    with time_machine.travel(timezone.now(), tick=True) as traveller:
        client = auth_client(user)
        traveller.shift(timedelta(minutes=6))
        refused = client.post("/api/auth/mfa/totp")
        assert (refused.status_code, refused.json()["code"]) == (403, "reauthentication_required")
        wrong = client.post("/api/auth/reauthenticate", {"password": "d3Jvbmc="}, format="json")
        assert wrong.json()["code"] == "invalid_second_factor"
        password = b64(DEFAULT_PASSWORD)
        assert (
            client.post("/api/auth/reauthenticate", {"password": password}, format="json").status_code == 204
        )
        assert client.post("/api/auth/mfa/totp").status_code == 200


def test_removing_the_app_needs_a_recent_authentication_and_then_a_password_signs_in(
    enrolled, user, auth_client
):
    client = APIClient()
    totp, _ = enrolled
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        token = _first_step(user)["mfaToken"]
        client.cookies = _verify(token, code=_next_code(totp, traveller)).cookies
        client.credentials(HTTP_X_CSRFTOKEN=client.get("/api/auth/csrf").json()["csrfToken"])
        assert client.delete("/api/auth/mfa/totp").status_code == 204
    assert "accessToken" in str(login(APIClient(), user).cookies)
    assert AuditEvent.objects.filter(type="factor_removed").exists()


# --- The staff policy ------------------------------------------------------------------------


@pytest.fixture
def staff(user_factory, settings):
    settings.MFA_REQUIRED_FOR_STAFF = True
    return user_factory(email="ops@example.com", is_staff=True, is_operator=True)


def test_staff_without_a_second_factor_may_only_set_one_up(staff, bearer_client, auth_client):
    api = bearer_client(staff)
    for path in ("/api/clients", "/api/auth/permissions", "/api/auth/validate"):
        response = api.get(path)
        assert (response.status_code, response.json()["code"]) == (403, "mfa_enrolment_required"), path
    assert api.get("/api/auth/me").status_code == 200
    browser = auth_client(staff)
    _enrol(browser)
    assert browser.get("/api/clients").status_code == 200
    assert browser.get("/api/auth/validate").status_code == 200


def test_staff_without_a_second_factor_is_kept_out_of_the_admin(staff, client):
    client.force_login(staff)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert client.get(response["Location"])["Location"].startswith("/#/login?next=")


def test_the_admin_has_no_password_form_of_its_own(client, db):
    response = client.post("/admin/login/?next=/admin/", {"username": "x", "password": "y"})
    assert (response.status_code, response["Location"]) == (302, "/#/login?next=/admin/")


def test_a_signed_in_staff_user_opens_an_admin_session_through_the_portal(auth_client, user_factory):
    staff = user_factory(email="ops@example.com", is_staff=True, is_superuser=True)
    browser = auth_client(staff)
    assert browser.post("/api/auth/admin-session").status_code == 204
    assert browser.get("/admin/").status_code == 200


def test_a_non_staff_user_gets_no_admin_session(auth_client, user):
    browser = auth_client(user)
    assert browser.post("/api/auth/admin-session").json()["code"] == "permission_denied"
    assert browser.get("/admin/").status_code == 302


def test_an_operator_resets_the_factors_of_a_user_who_lost_them(enrolled, user, client, user_factory):
    operator = user_factory(email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(operator)
    response = client.post(
        "/admin/accounts/user/",
        {"action": "reset_second_factors", "_selected_action": [str(user.pk)]},
        follow=True,
    )
    assert "Removed 1 second factor(s)" in response.content.decode()
    assert "accessToken" in str(login(APIClient(), user).cookies)  # a password signs in again
    assert AuditEvent.objects.get(type="factors_reset").detail == "by root@example.com"


def test_the_user_page_shows_the_factors_and_the_required_flag(enrolled, user, client, user_factory):
    client.force_login(user_factory(email="root@example.com", is_staff=True, is_superuser=True))
    page = client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert "authenticator app, recovery codes" in page and "Second factor required" in page


def test_a_code_re_authenticates_too(enrolled, user, auth_client):
    totp, _ = enrolled
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        browser = APIClient()
        token = _first_step(user)["mfaToken"]
        browser.cookies = _verify(token, code=_next_code(totp, traveller)).cookies
        browser.credentials(HTTP_X_CSRFTOKEN=browser.get("/api/auth/csrf").json()["csrfToken"])
        traveller.shift(timedelta(minutes=6))
        assert browser.post("/api/auth/mfa/recovery-codes").json()["code"] == "reauthentication_required"
        code = _next_code(totp, traveller)
        assert browser.post("/api/auth/reauthenticate", {"code": code}, format="json").status_code == 204
        assert len(browser.post("/api/auth/mfa/recovery-codes").json()["recoveryCodes"]) == 10
