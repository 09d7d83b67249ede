"""Second factors through the API: TOTP enrolment, the second sign-in step, recovery codes,
re-authentication, and the staff policy. Codes come from pyotp, as an authenticator app's would."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pyotp
import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.authentication import access_cookie_name, refresh_cookie_name
from accounts.models import AuditEvent, Session, TotpDevice, User
from accounts.selectors import user_second_factors
from accounts.services import user_deactivate
from tests.accounts.test_admin import user_change_form_data
from tests.conftest import DEFAULT_PASSWORD, b64, login
from tests.helpers import cache_reads_late, token_parts


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


def test_the_first_factor_signs_every_other_session_out(auth_client, user):
    other, enrolling = auth_client(user), auth_client(user)

    _enrol(enrolling)

    assert other.get("/api/auth/me").json()["code"] == "token_not_valid"
    assert other.post("/api/auth/refresh").json()["code"] == "token_not_valid"
    assert enrolling.get("/api/auth/me").status_code == 200
    assert Session.objects.filter(revoked_reason="second_factor_enrolled").count() == 1


def test_the_first_factor_also_ends_the_tokens_made_with_the_password_alone(auth_client, user1, cluster1):
    """Whoever had the password may have made a personal access token: it would outlive the
    sessions the first factor signs out by up to a year."""
    intruder, owner = auth_client(user1), auth_client(user1)
    made = intruder.post(
        "/api/auth/tokens", {"name": "mine", "clients": {"client1": ["view"]}}, format="json"
    )
    token = APIClient()
    token.credentials(HTTP_AUTHORIZATION=f"Bearer {made.json()['token']}")
    assert token.get("/api/clients/client1/clusters").status_code == 200

    _enrol(owner)

    assert token.get("/api/clients/client1/clusters").json()["code"] == "token_not_valid"
    assert owner.get("/api/auth/tokens").json() == []
    assert AuditEvent.objects.filter(type="token_revoked", detail__contains="second factor").exists()


def test_a_staff_session_opened_before_enrolment_gains_nothing_from_it(staff, auth_client):
    """Whoever had the password and signed in before the owner set a factor up stays locked out."""
    early, owner = auth_client(staff), auth_client(staff)
    assert early.get("/api/clients").json()["code"] == "mfa_enrolment_required"

    _enrol(owner)

    assert early.get("/api/clients").json()["code"] == "token_not_valid"
    assert early.get("/api/auth/validate").json()["code"] == "token_not_valid"
    assert early.post("/api/auth/admin-session").status_code == 403
    assert owner.get("/api/clients").status_code == 200


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
    from prometheus_client import REGISTRY

    def throttled_count() -> float:
        return REGISTRY.get_sample_value("portal_login_throttled_total", {"throttle": "mfa_account"}) or 0.0

    settings.LOGIN_THROTTLE_ACCOUNT = "100/min"
    before = throttled_count()
    for _ in range(2):
        token = _first_step(user)["mfaToken"]
        for _ in range(5):
            _verify(token, code="000000")
    response = _verify(_first_step(user)["mfaToken"], code=enrolled[0].now())
    assert (response.status_code, response.json()["code"]) == (429, "throttled")
    assert throttled_count() - before == 1  # operators see it in portal_login_throttled_total


def test_a_stranger_with_the_password_cannot_lock_a_known_device_out_of_the_second_step(
    enrolled, user, settings
):
    """OWASP: a lockout must not become a denial of service. A browser that passed the second
    step before counts its attempts on its own; the password alone never earns that."""
    totp = enrolled[0]
    settings.LOGIN_THROTTLE_ACCOUNT = "100/min"
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        owner = APIClient()  # keeps its cookies, as a browser does
        owner_token = login(owner, user).json()["mfaToken"]
        signed_in = owner.post(
            "/api/auth/mfa/verify",
            {"mfaToken": owner_token, "code": _next_code(totp, traveller)},
            format="json",
        )
        assert signed_in.status_code == 200

        stranger = APIClient()  # knows the password, and gets a device cookie from its first step
        for _ in range(2):
            token = login(stranger, user).json()["mfaToken"]
            for _ in range(5):
                stranger.post("/api/auth/mfa/verify", {"mfaToken": token, "code": "000000"}, format="json")
        token = login(stranger, user).json()["mfaToken"]
        refused = stranger.post(
            "/api/auth/mfa/verify", {"mfaToken": token, "code": _next_code(totp, traveller)}, format="json"
        )
        assert (refused.status_code, refused.json()["code"]) == (429, "throttled")

        token = login(owner, user).json()["mfaToken"]
        again = owner.post(
            "/api/auth/mfa/verify", {"mfaToken": token, "code": _next_code(totp, traveller)}, format="json"
        )
        assert again.status_code == 200, again.json()


def test_a_script_that_passed_the_second_step_counts_on_its_own_with_its_device_token(
    enrolled, user, settings
):
    """The same for a client without cookies: its deviceToken, sent back in the body."""
    totp = enrolled[0]
    settings.LOGIN_THROTTLE_ACCOUNT = "100/min"
    body = {"tokenDelivery": "body"}

    def verify(client: APIClient, token: str, code: str, **extra):
        data = {"mfaToken": token, "code": code, **body, **extra}
        return client.post("/api/auth/mfa/verify", data, format="json")

    with time_machine.travel(timezone.now(), tick=False) as traveller:
        script = APIClient()
        first = login(script, user, **body).json()
        signed_in = verify(
            script, first["mfaToken"], _next_code(totp, traveller), deviceToken=first["deviceToken"]
        )
        assert signed_in.status_code == 200 and not signed_in.cookies
        device_token = signed_in.json()["deviceToken"]  # now marked: it passed the second step

        stranger = APIClient()
        for _ in range(2):
            token = login(stranger, user).json()["mfaToken"]
            for _ in range(5):
                verify(stranger, token, "000000")
        token = login(script, user, **body).json()["mfaToken"]
        refused = verify(script, token, _next_code(totp, traveller))  # without it: the account's count
        assert (refused.status_code, refused.json()["code"]) == (429, "throttled")
        again = verify(script, token, _next_code(totp, traveller), deviceToken=device_token)
        assert again.status_code == 200, again.json()
        assert "deviceToken" not in again.json()  # the one it holds still counts: no other is made


@pytest.mark.django_db(transaction=True)
def test_wrong_codes_sent_together_are_held_to_the_account_limit(enrolled, user, settings, monkeypatch):
    """The account's limit counted each wrong code after checking it: codes sent together all
    passed the check before any was counted. Each cache read here answers late, to make them overlap."""
    if connection.vendor == "sqlite":
        pytest.skip("threads share the in-memory SQLite test database badly; runs on PostgreSQL and MariaDB")
    settings.LOGIN_THROTTLE_ACCOUNT = "100/min"
    tokens = [_first_step(user)["mfaToken"] for _ in range(12)]
    cache_reads_late(monkeypatch)
    barrier, answers = threading.Barrier(len(tokens)), []

    def guess(token: str) -> None:
        try:
            barrier.wait()
            answers.append(_verify(token, code="000000").status_code)
        finally:
            connection.close()

    threads = [threading.Thread(target=guess, args=(token,)) for token in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [401] * 10 + [429] * 2
    assert AuditEvent.objects.filter(type="factor_failed").count() == 10


# Digits of other scripts, which str.isdigit takes: Arabic-Indic and full-width.
@pytest.mark.parametrize(
    "code", ["\u0661\u0662\u0663\u0664\u0665\u0666", "\uff11\uff12\uff13\uff14\uff15\uff16"]
)
def test_digits_of_another_script_are_a_wrong_code_and_count_as_one(enrolled, user, code):
    response = _verify(_first_step(user)["mfaToken"], code=code)
    assert (response.status_code, response.json()["code"]) == (401, "invalid_second_factor")
    assert AuditEvent.objects.filter(type="factor_failed").count() == 1


def test_digits_of_another_script_do_not_confirm_an_app(auth_client, user):
    client = auth_client(user)
    assert client.post("/api/auth/mfa/totp").status_code == 200
    response = client.post("/api/auth/mfa/totp/confirm", {"code": "\uff11" * 6}, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["fields"] == {"code": ["Enter the 6-digit code from your authenticator app."]}
    assert not TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()


def test_wrong_codes_to_turn_the_app_on_count_against_the_account(auth_client, user):
    """Else a stolen session could try every code against an app its owner began to set up,
    turn two-step sign-in on with it and keep the recovery codes (OWASP: limit every OTP check)."""
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        client = auth_client(user)
        totp = pyotp.TOTP(client.post("/api/auth/mfa/totp").json()["secret"])
        for _ in range(10):
            wrong = client.post("/api/auth/mfa/totp/confirm", {"code": "000000"}, format="json")
            assert wrong.status_code == 400, wrong.content
        refused = client.post("/api/auth/mfa/totp/confirm", {"code": totp.now()}, format="json")
        assert (refused.status_code, refused.json()["code"]) == (429, "throttled")
        assert not TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()
        assert AuditEvent.objects.filter(type="factor_failed").count() == 10

        traveller.shift(timedelta(seconds=int(refused["Retry-After"])))
        client = auth_client(user)  # its access token expired meanwhile
        confirmed = client.post("/api/auth/mfa/totp/confirm", {"code": totp.now()}, format="json")
    assert confirmed.status_code == 200, confirmed.content
    assert TotpDevice.objects.get(user=user).confirmed_at is not None


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


def test_recovery_codes_survive_a_secret_key_rotation_with_the_old_key_as_fallback(enrolled, user, settings):
    """Rotating DJANGO_SECRET_KEY the documented way (the old key in DJANGO_SECRET_KEY_FALLBACKS)
    must not lock out everyone who relies on a recovery code."""
    _, codes = enrolled
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-new-secret-key-" + "y" * 40

    assert _verify(_first_step(user)["mfaToken"], code=codes[0]).status_code == 200
    assert _verify(_first_step(user)["mfaToken"], code=codes[0]).json()["code"] == "invalid_second_factor"

    settings.SECRET_KEY_FALLBACKS = []  # the old key retired: codes made under it are gone with it
    assert _verify(_first_step(user)["mfaToken"], code=codes[1]).json()["code"] == "invalid_second_factor"


def test_a_password_change_cancels_a_second_step_begun_with_the_old_password(auth_client, user):
    """Whoever had the old password and a recovery code would otherwise finish signing in after it."""
    owner = auth_client(user)
    _, codes = _enrol(owner)
    halfway = _first_step(user)["mfaToken"]

    new = {"currentPassword": b64(DEFAULT_PASSWORD), "newPassword": b64("a brand new passphrase 77")}
    assert owner.post("/api/auth/password", new, format="json").status_code == 204

    assert _verify(halfway, code=codes[0]).json()["code"] == "mfa_token_invalid"
    assert owner.get("/api/auth/me").status_code == 200  # the session that changed it stays


@pytest.mark.parametrize(
    ("misuse", "status", "code"),
    [
        ("replayed", 403, "mfa_token_invalid"),
        ("expired", 403, "mfa_token_invalid"),
        ("another user's code", 401, "invalid_second_factor"),
    ],
)
def test_an_mfa_token_cannot_be_replayed_outlive_five_minutes_or_take_another_users_code(
    enrolled, user, user_factory, auth_client, misuse, status, code
):
    totp, _ = enrolled
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        token = _first_step(user)["mfaToken"]
        if misuse == "replayed":
            assert _verify(token, code=_next_code(totp, traveller)).status_code == 200
            attempt = _next_code(totp, traveller)
        elif misuse == "expired":
            traveller.shift(timedelta(minutes=5, seconds=1))
            attempt = totp.now()
        else:
            other_totp, _ = _enrol(auth_client(user_factory(email="bob@example.com")))
            attempt = _next_code(other_totp, traveller)
        response = _verify(token, code=attempt)
    assert (response.status_code, response.json()["code"]) == (status, code)


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


def _browser_after_second_step(user, totp: pyotp.TOTP, traveller) -> APIClient:
    """A browser signed in with the password and the app's next code."""
    browser = APIClient()
    token = _first_step(user)["mfaToken"]
    browser.cookies = _verify(token, code=_next_code(totp, traveller)).cookies
    browser.credentials(HTTP_X_CSRFTOKEN=browser.get("/api/auth/csrf").json()["csrfToken"])
    return browser


@pytest.mark.parametrize("proof", ["current code", "recovery code"])
def test_removing_the_app_takes_a_current_code_or_a_recovery_code_then_a_password_signs_in(
    enrolled, user, proof
):
    totp, codes = enrolled
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        browser = _browser_after_second_step(user, totp, traveller)
        code = _next_code(totp, traveller) if proof == "current code" else codes[0]
        assert browser.delete("/api/auth/mfa/totp", {"code": code}, format="json").status_code == 204
    assert not TotpDevice.objects.filter(user=user).exists()
    assert "accessToken" in str(login(APIClient(), user).cookies)
    assert AuditEvent.objects.filter(type="factor_removed").exists()
    assert AuditEvent.objects.filter(type="recovery_code_used").count() == (proof == "recovery code")


@pytest.mark.parametrize(
    ("answer", "status", "code"),
    [({}, 400, "invalid_request"), ({"code": "000000"}, 401, "invalid_second_factor")],
)
def test_removing_the_app_without_a_current_code_is_refused(enrolled, user, answer, status, code):
    totp, _ = enrolled
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        browser = _browser_after_second_step(user, totp, traveller)
        response = browser.delete("/api/auth/mfa/totp", answer, format="json")
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists()
    assert AuditEvent.objects.filter(type="factor_failed").count() == (1 if answer else 0)


def test_wrong_codes_to_remove_the_app_count_against_the_account(enrolled, user):
    totp, _ = enrolled
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        browser = _browser_after_second_step(user, totp, traveller)
        for _ in range(10):
            browser.delete("/api/auth/mfa/totp", {"code": "000000"}, format="json")
        response = browser.delete("/api/auth/mfa/totp", {"code": _next_code(totp, traveller)}, format="json")
    assert (response.status_code, response.json()["code"]) == (429, "throttled")
    assert TotpDevice.objects.filter(user=user).exists()


def test_removing_the_app_still_needs_a_recent_authentication(enrolled, user):
    totp, _ = enrolled
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        browser = _browser_after_second_step(user, totp, traveller)
        traveller.shift(timedelta(minutes=6))
        code = _next_code(totp, traveller)
        refused = browser.delete("/api/auth/mfa/totp", {"code": code}, format="json")
        assert (refused.status_code, refused.json()["code"]) == (403, "reauthentication_required")
        reauthenticated = browser.post("/api/auth/reauthenticate", {"code": code}, format="json")
        assert reauthenticated.status_code == 204
        # The refused request did not spend the code; re-authenticating did, so a new one.
        removed = browser.delete("/api/auth/mfa/totp", {"code": _next_code(totp, traveller)}, format="json")
        assert removed.status_code == 204


def test_an_account_with_a_second_factor_confirms_with_it_not_the_password(enrolled, user):
    """A stolen session plus the password must not add a factor of its own, which would outlive
    a password reset."""
    totp, _ = enrolled
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        browser = _browser_after_second_step(user, totp, traveller)
        traveller.shift(timedelta(minutes=6))
        refused = browser.post("/api/auth/reauthenticate", {"password": b64(DEFAULT_PASSWORD)}, format="json")
        assert (refused.status_code, refused.json()["code"]) == (400, "invalid_request")
        assert "second factor" in refused.json()["fields"]["password"][0]
        planted = browser.post("/api/auth/mfa/passkeys/options")
        assert (planted.status_code, planted.json()["code"]) == (403, "reauthentication_required")
        confirmed = browser.post(
            "/api/auth/reauthenticate", {"code": _next_code(totp, traveller)}, format="json"
        )
        assert confirmed.status_code == 204
        assert browser.post("/api/auth/mfa/passkeys/options").status_code == 200
    assert not AuditEvent.objects.filter(type="factor_failed").exists()  # no guess was counted


def test_a_stranger_with_the_password_cannot_lock_a_signed_in_owner_out_of_confirming(
    auth_client, user, settings
):
    """The owner's session enrolled the app (a second factor proven there): re-authentication
    and removing the app count its attempts on their own, not in the account's full bucket."""
    settings.LOGIN_THROTTLE_ACCOUNT = "100/min"
    owner = auth_client(user)
    totp, _ = _enrol(owner)
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for _ in range(2):  # a stranger who knows the password fills the account's bucket
            token = _first_step(user)["mfaToken"]
            for _ in range(5):
                _verify(token, code="000000")
        assert _verify(_first_step(user)["mfaToken"], code=_next_code(totp, traveller)).status_code == 429
        traveller.shift(timedelta(minutes=6))

        confirmed = owner.post(
            "/api/auth/reauthenticate", {"code": _next_code(totp, traveller)}, format="json"
        )
        assert confirmed.status_code == 204, confirmed.json()
        removed = owner.delete("/api/auth/mfa/totp", {"code": _next_code(totp, traveller)}, format="json")
        assert removed.status_code == 204, removed.json()


def test_a_recovery_code_spent_on_re_authentication_is_audited_and_works_once(enrolled, user):
    totp, codes = enrolled
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        browser = _browser_after_second_step(user, totp, traveller)
        reauthenticated = browser.post("/api/auth/reauthenticate", {"code": codes[3]}, format="json")
        assert reauthenticated.status_code == 204
        again = browser.post("/api/auth/reauthenticate", {"code": codes[3]}, format="json")
    assert again.json()["code"] == "invalid_second_factor"
    used = AuditEvent.objects.get(type="recovery_code_used")
    assert used.session_id == Session.objects.filter(revoked_at=None).latest("created_at").pk


@pytest.mark.parametrize(("steps", "accepted"), [(-1, True), (1, True), (-2, False), (2, False)])
def test_a_code_one_step_off_is_accepted_and_two_steps_off_refused(enrolled, user, steps, accepted):
    totp, _ = enrolled
    with time_machine.travel(timezone.now() + timedelta(minutes=5), tick=False):
        code = totp.at(int(time.time()) + steps * 30)  # an app whose clock is that far off
        response = _verify(_first_step(user)["mfaToken"], code=code)
    assert (response.status_code == 200) is accepted, response.content


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
    asked = client.post(
        "/admin/accounts/user/", {"action": "reset_second_factors", "_selected_action": [str(user.pk)]}
    )  # for good: asked first, naming who
    assert "removed for good" in asked.content.decode() and user.email in asked.content.decode()
    assert not AuditEvent.objects.filter(type="factors_reset").exists()
    response = client.post(
        "/admin/accounts/user/",
        {"action": "reset_second_factors", "post": "yes", "_selected_action": [str(user.pk)]},
        follow=True,
    )
    assert "Removed 1 second factor(s)" in response.content.decode()
    assert "accessToken" in str(login(APIClient(), user).cookies)  # a password signs in again
    assert AuditEvent.objects.get(type="factors_reset").detail == "by root@example.com"
    again = client.post(
        "/admin/accounts/user/",
        {"action": "reset_second_factors", "post": "yes", "_selected_action": [str(user.pk)]},
        follow=True,
    )  # nothing left to remove: not reported as a success
    assert [(m.level_tag, str(m)) for m in again.context["messages"]] == [
        ("info", "Nothing was removed: the users selected had no second factor.")
    ]


def test_resetting_someones_factors_needs_a_recent_sign_in_as_the_apis_factor_changes_do(
    enrolled, user, client, user_factory, settings
):
    operator = user_factory(email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(operator)
    long_ago = timezone.now() - settings.REAUTHENTICATION_WINDOW - timedelta(seconds=1)
    Session.objects.filter(user=operator).update(authenticated_at=long_ago)

    response = client.post(
        "/admin/accounts/user/",
        {"action": "reset_second_factors", "post": "yes", "_selected_action": [str(user.pk)]},
        follow=True,
    )

    assert "Nothing was done: this needs a sign-in within the last 5 minutes." in response.content.decode()
    assert user_second_factors(user=user)  # still there
    assert not AuditEvent.objects.filter(type="factors_reset").exists()


def test_setting_someones_password_in_the_admin_needs_a_recent_sign_in(user, client, user_factory, settings):
    operator = user_factory(email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(operator)
    long_ago = timezone.now() - settings.REAUTHENTICATION_WINDOW - timedelta(seconds=1)
    Session.objects.filter(user=operator).update(authenticated_at=long_ago)
    hash_before = User.objects.get(pk=user.pk).password

    response = client.post(
        f"/admin/accounts/user/{user.pk}/password/",
        {"password1": "a long new passphrase", "password2": "a long new passphrase"},
        follow=True,
    )

    assert "Nothing was done: this needs a sign-in within the last 5 minutes." in response.content.decode()
    assert User.objects.get(pk=user.pk).password == hash_before


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


# --- The admin session is the portal session's ---------------------------------------------


@pytest.fixture
def admin_browser(in_process_cache, auth_client, user_factory):
    """A staff user's browser, signed in to the portal and then to the admin through it (on the
    in-process cache, whose idle timers time-machine can move)."""
    staff = user_factory(email="ops@example.com", is_staff=True, is_superuser=True)
    browser = auth_client(staff)
    assert browser.post("/api/auth/admin-session").status_code == 204
    assert browser.get("/admin/").status_code == 200
    # Django's login() gave the browser a new CSRF token; the app reads the cookie each time.
    browser.credentials(HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value)
    browser.staff = staff
    return browser


def _refused_by_the_admin(client) -> bool:
    response = client.get("/admin/")
    return response.status_code == 302 and response["Location"].startswith("/admin/login/")


@pytest.mark.parametrize("ending", ["revoked from another device", "deactivated", "idle"])
def test_the_admin_session_ends_with_the_portal_session(admin_browser, auth_client, ending):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        if ending == "revoked from another device":
            session = Session.objects.get(user=admin_browser.staff)
            other = auth_client(admin_browser.staff)
            assert other.delete(f"/api/auth/sessions/{session.pk}").status_code == 204
        elif ending == "deactivated":
            user_deactivate(user=admin_browser.staff)
        else:
            traveller.shift(timedelta(minutes=21))  # JWT_TTL: 20 minutes without a request
        assert _refused_by_the_admin(admin_browser)


def test_signing_out_of_the_portal_ends_the_admin_session_on_the_server(admin_browser):
    admin_cookie = admin_browser.cookies["sessionid"].value
    assert admin_browser.post("/api/auth/logout").status_code == 204
    replayed = Client()
    replayed.cookies["sessionid"] = admin_cookie  # a copy kept from before the sign-out
    assert _refused_by_the_admin(replayed)


def test_logging_out_of_the_admin_signs_out_of_the_portal_session_that_opened_it(admin_browser):
    """Else /admin/ would open a new admin session from the app's cookies, without any sign-in."""
    session = Session.objects.get(user=admin_browser.staff)
    response = admin_browser.post("/admin/logout/")
    assert response.status_code == 200  # Django's "Logged out" page
    session.refresh_from_db()
    assert session.revoked_reason == "logout"
    assert all(
        admin_browser.cookies[name].value == "" for name in (access_cookie_name(), refresh_cookie_name())
    )
    assert _refused_by_the_admin(admin_browser)
    assert admin_browser.get("/api/auth/me").status_code == 403


def test_an_admin_session_without_a_portal_session_is_refused(admin_browser):
    session = admin_browser.session
    del session["portal_session_id"]
    session.save()
    assert _refused_by_the_admin(admin_browser)


def test_the_admins_own_password_form_leads_to_the_portals_security_page(admin_browser):
    """Django's form would change the password without asking the current one, ending the
    other sessions and tokens or writing the audit log."""
    staff = admin_browser.staff
    for path in ("/admin/password_change/", "/admin/password_change/done/"):
        assert admin_browser.get(path)["Location"] == "/#/security"
    new = "A completely new passphrase 42"
    answer = admin_browser.post(
        "/admin/password_change/",
        {"old_password": DEFAULT_PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert answer["Location"] == "/#/security"
    staff.refresh_from_db()
    assert staff.check_password(DEFAULT_PASSWORD)


def test_admin_use_keeps_the_portal_session_alive(admin_browser):
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        for _ in range(3):
            traveller.shift(timedelta(minutes=15))  # each under JWT_TTL, together well over it
            assert admin_browser.get("/admin/").status_code == 200
        refreshed = admin_browser.post("/api/auth/refresh")
    assert refreshed.status_code == 200, refreshed.content


def test_an_operator_forces_enrolment_and_the_api_refuses_until_the_user_enrols(
    user, client, user_factory, bearer_client, auth_client
):
    api = bearer_client(user)
    assert api.get("/api/auth/permissions").status_code == 200
    client.force_login(user_factory(email="root@example.com", is_staff=True, is_superuser=True))
    page = client.get(f"/admin/accounts/user/{user.pk}/change/")
    data = {**user_change_form_data(page), "email": user.email, "name": user.name, "mfa_required": "on"}
    assert client.post(f"/admin/accounts/user/{user.pk}/change/", data).status_code == 302
    refused = api.get("/api/auth/permissions")
    assert (refused.status_code, refused.json()["code"]) == (403, "mfa_enrolment_required")
    _enrol(browser := auth_client(user))
    assert browser.get("/api/auth/permissions").status_code == 200
    # The session that signed in with the password alone does not profit: the first factor ended it.
    assert api.get("/api/auth/permissions").json()["code"] == "token_not_valid"


def test_authenticator_codes_still_work_after_the_field_key_rotates(enrolled, user, settings):
    from django.core.management import call_command

    totp, _ = enrolled
    old_key = settings.FIELD_ENCRYPTION_KEY
    settings.FIELD_ENCRYPTION_KEY = f"brand-new-key,{old_key}"
    call_command("field_keys_rotate")
    settings.FIELD_ENCRYPTION_KEY = "brand-new-key"  # the old secret is gone for good
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        response = _verify(_first_step(user)["mfaToken"], code=_next_code(totp, traveller))
    assert response.status_code == 200, response.content


def test_a_secret_no_configured_key_decrypts_fails_closed_and_spends_nothing(
    enrolled, user, settings, caplog
):
    totp, _ = enrolled
    old_key = settings.FIELD_ENCRYPTION_KEY
    with time_machine.travel(timezone.now(), tick=False) as traveller:
        code = _next_code(totp, traveller)
        token = _first_step(user)["mfaToken"]
        settings.FIELD_ENCRYPTION_KEY = "brand-new-key"  # dropped before re-encrypting
        refused = _verify(token, code=code)
        assert (refused.status_code, refused.json()["code"]) == (503, "secrets_unavailable")
        assert "FIELD_ENCRYPTION_KEY" in caplog.text and totp.secret not in caplog.text
        settings.FIELD_ENCRYPTION_KEY = old_key  # the operator restores it: the same code still works
        assert _verify(token, code=code).status_code == 200
    assert not AuditEvent.objects.filter(type="factor_failed").exists()


def test_the_recovery_codes_arrive_even_if_the_session_store_fails_after_the_app_is_on(
    auth_client, user, monkeypatch
):
    from accounts import session_cache
    from config.errors import AuthUnavailable

    client = auth_client(user)
    secret = client.post("/api/auth/mfa/totp").json()["secret"]

    def unreachable(**kwargs):
        raise AuthUnavailable()

    monkeypatch.setattr(session_cache, "session_timer_start", unreachable)
    monkeypatch.setattr(session_cache, "claims_cache_forget", unreachable)
    confirmed = client.post("/api/auth/mfa/totp/confirm", {"code": pyotp.TOTP(secret).now()}, format="json")
    assert confirmed.status_code == 200, confirmed.content
    assert len(confirmed.json()["recoveryCodes"]) == 10
    assert TotpDevice.objects.get(user=user).confirmed_at is not None


def test_an_admin_session_needs_the_second_factor_an_operator_then_requires(
    admin_browser, auth_client, client, user_factory
):
    staff = admin_browser.staff
    client.force_login(user_factory(email="root@example.com", is_staff=True, is_superuser=True))
    page = client.get(f"/admin/accounts/user/{staff.pk}/change/")
    data = {**user_change_form_data(page), "email": staff.email, "name": staff.name, "mfa_required": "on"}
    data.update(is_staff="on", is_superuser="on")
    assert client.post(f"/admin/accounts/user/{staff.pk}/change/", data).status_code == 302
    assert admin_browser.get("/admin/").status_code == 302  # the next admin request, not a later one
    enrolling = auth_client(staff)  # another device
    _enrol(enrolling)
    # The admin's portal session signed in with the password alone: it ended with the first factor.
    assert admin_browser.get("/admin/").status_code == 302
    assert enrolling.post("/api/auth/admin-session").status_code == 204
    assert enrolling.get("/admin/").status_code == 200


def test_until_a_required_factor_is_set_up_the_access_token_reaches_no_client(user_factory, auth_client):
    """Services that verify tokens alone (JWKS) read the scope claim: an operator who must still
    set up a second factor gets a token for nothing, and the right one once enrolled."""
    operator = user_factory(email="op@example.com", is_staff=True, is_operator=True, mfa_required=True)
    browser = auth_client(operator)
    assert token_parts(browser.cookies["__Host-accessToken"].value)[1]["scope"] == ""

    _enrol(browser)

    assert browser.get("/api/auth/me").status_code == 200  # re-issues the access token
    assert token_parts(browser.cookies["__Host-accessToken"].value)[1]["scope"] == "*"


def test_an_operator_requiring_a_factor_empties_the_scope_of_the_users_next_token(
    user_factory, auth_client, client, settings
):
    settings.MFA_REQUIRED_FOR_STAFF = False
    operator = user_factory(email="op@example.com", is_staff=True, is_operator=True)
    browser = auth_client(operator)
    assert token_parts(browser.cookies["__Host-accessToken"].value)[1]["scope"] == "*"
    client.force_login(user_factory(email="root@example.com", is_staff=True, is_superuser=True))
    page = client.get(f"/admin/accounts/user/{operator.pk}/change/")
    data = {
        **user_change_form_data(page),
        "email": operator.email,
        "name": operator.name,
        "mfa_required": "on",
    }
    assert client.post(f"/admin/accounts/user/{operator.pk}/change/", data).status_code == 302

    assert browser.get("/api/auth/me").status_code == 200  # allowed before enrolment: re-issues the token
    assert token_parts(browser.cookies["__Host-accessToken"].value)[1]["scope"] == ""


def test_attempts_refused_for_another_reason_cost_the_account_nothing(auth_client, user):
    browser = auth_client(user)  # no authenticator app to remove
    answers = [browser.delete("/api/auth/mfa/totp", {"code": "123456"}, format="json") for _ in range(12)]
    assert {(response.status_code, response.json()["code"]) for response in answers} == {(404, "not_found")}
    reauthenticated = browser.post(
        "/api/auth/reauthenticate", {"password": b64(DEFAULT_PASSWORD)}, format="json"
    )
    assert reauthenticated.status_code == 204  # not 429: the account's attempts are all there
