"""Login throttling per client address and per account: 429 with Retry-After, and the account's
refusals on the audit log once per window."""

import threading

import pytest
import time_machine
from django.core import mail
from rest_framework.test import APIClient

from accounts.models import AuditEvent
from tests.conftest import login
from tests.helpers import cache_reads_late


def test_repeated_guesses_at_one_account_are_throttled_from_any_address(user, settings):
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "3/min", "100/min"
    statuses = [login(APIClient(REMOTE_ADDR=f"198.51.100.{n}"), user, "wrong").status_code for n in range(4)]
    assert statuses == [401, 401, 401, 429]
    response = login(APIClient(REMOTE_ADDR="198.51.100.99"), "ALICE@example.com", "correct horse battery")
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert 0 < int(response["Retry-After"]) <= 120  # at most two of the rate's periods
    assert login(APIClient(), "bob@example.com", "whatever").status_code == 401  # other accounts unaffected


def test_one_address_guessing_many_accounts_is_throttled(db, settings):
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "100/min", "3/min"
    client = APIClient(REMOTE_ADDR="203.0.113.7")
    statuses = [login(client, f"user{n}@example.com", "x").status_code for n in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert login(APIClient(REMOTE_ADDR="203.0.113.8"), "user9@example.com", "x").status_code == 401


@pytest.mark.parametrize(("hops", "throttled"), [(0, True), (1, False)])
def test_x_forwarded_for_counts_only_behind_a_trusted_proxy(db, settings, hops, throttled):
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP, settings.TRUSTED_PROXY_HOPS = (
        "100/min",
        "2/min",
        hops,
    )
    statuses = [
        login(APIClient(HTTP_X_FORWARDED_FOR=f"192.0.2.{n}"), f"u{n}@example.com", "x").status_code
        for n in range(3)
    ]
    assert (statuses[-1] == 429) is throttled


def test_an_address_already_refused_does_not_charge_the_accounts_it_tries(user, settings):
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "3/min", "2/min"
    attacker = APIClient(REMOTE_ADDR="203.0.113.7")
    assert [login(attacker, user, "wrong").status_code for _ in range(5)] == [401, 401, 429, 429, 429]
    # Two guesses reached the account, not five: its owner, elsewhere, is still answered.
    assert login(APIClient(REMOTE_ADDR="198.51.100.1"), user).status_code == 200


def test_addresses_of_one_ipv6_subnet_share_one_bucket(db, settings):
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "100/min", "3/min"
    statuses = [
        login(APIClient(REMOTE_ADDR=f"2001:db8:1:2::{n:x}"), f"user{n}@example.com", "x").status_code
        for n in range(1, 5)
    ]
    assert statuses == [401, 401, 401, 429]  # one /64, one client
    assert login(APIClient(REMOTE_ADDR="2001:db8:1:3::1"), "user9@example.com", "x").status_code == 401


def test_strangers_wrong_passwords_do_not_refuse_the_owner_a_password_reset(user, settings):
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "3/min", "100/min"
    for n in range(4):
        login(APIClient(REMOTE_ADDR=f"198.51.100.{n}"), user, "wrong")
    owner = APIClient(REMOTE_ADDR="192.0.2.10")
    assert login(owner, user).status_code == 429  # the account's bucket is spent ...
    reset = owner.post("/api/auth/password/reset", {"email": user.email}, format="json")
    assert reset.status_code == 202  # ... but the way back in is not


def test_strangers_asking_for_an_address_reset_do_not_refuse_its_owner(user, settings):
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "3/min", "100/min"
    for n in range(5):  # from five addresses, past the address's own limit
        stranger = APIClient(REMOTE_ADDR=f"198.51.100.{n}")
        assert (
            stranger.post("/api/auth/password/reset", {"email": user.email}, format="json").status_code == 202
        )
    owner = APIClient(REMOTE_ADDR="192.0.2.10")
    assert owner.post("/api/auth/password/reset", {"email": user.email}, format="json").status_code == 202
    assert len(mail.outbox) == 1  # the link the first request sent, in the owner's inbox
    requested = AuditEvent.objects.filter(type="password_reset_requested").count()
    assert requested == 3  # past the limit nothing is done, not even recorded


def _refusals_on_record():
    from accounts.models import AuditEvent

    return list(AuditEvent.objects.filter(type="login_throttled").order_by("at", "id"))


def test_a_throttled_account_is_on_the_audit_log_once_per_window(user, settings, in_process_cache):
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "3/min", "100/min"
    with time_machine.travel("2030-01-01 12:00Z", tick=False) as traveller:
        for n in range(3):
            login(APIClient(REMOTE_ADDR=f"198.51.100.{n}"), user, "wrong")
        refused = [login(APIClient(REMOTE_ADDR=f"203.0.113.{n}"), user, "wrong") for n in range(1, 6)]
        assert {response.status_code for response in refused} == {429}

        [event] = _refusals_on_record()
        assert (event.user, event.email, event.ip, event.method) == (
            user,
            "alice@example.com",
            "203.0.113.1",
            "password",
        )
        assert event.detail == "per-account limit 3/min"

        traveller.shift(121)  # past the refusal: guessing again is refused again, and recorded again
        for n in range(3):
            login(APIClient(REMOTE_ADDR=f"198.51.100.{n}"), user, "wrong")
        assert login(APIClient(REMOTE_ADDR="192.0.2.200"), user, "wrong").status_code == 429

    assert [event.ip for event in _refusals_on_record()] == ["203.0.113.1", "192.0.2.200"]


def test_a_throttled_unknown_address_is_on_record_and_an_address_refused_by_its_own_limit_is_not(
    db, settings
):
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "1/min", "100/min"
    login(APIClient(), "nobody@example.com", "x")
    assert login(APIClient(REMOTE_ADDR="203.0.113.9"), "Nobody@Example.com", "x").status_code == 429
    [event] = _refusals_on_record()
    assert (event.user, event.email, event.ip) == (None, "nobody@example.com", "203.0.113.9")

    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "100/min", "1/min"
    attacker = APIClient(REMOTE_ADDR="198.51.100.50")
    assert [login(attacker, f"u{n}@example.com", "x").status_code for n in range(3)] == [401, 429, 429]
    assert len(_refusals_on_record()) == 1  # the address limit refused those: no account was tried


def test_operators_see_throttled_sign_ins_in_the_admin(client, user_factory, user, settings):
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "1/min", "100/min"
    login(APIClient(), user, "wrong")
    login(APIClient(REMOTE_ADDR="203.0.113.9"), user, "wrong")
    client.force_login(
        user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)
    )

    page = client.get("/admin/accounts/auditevent/?type=login_throttled").content.decode()

    assert (
        "Login refused: too many attempts" in page and "203.0.113.9" in page and "alice@example.com" in page
    )


def test_no_more_guesses_than_the_rate_in_any_minute_even_across_the_clock_minute(
    user, settings, in_process_cache
):
    settings.LOGIN_THROTTLE_ACCOUNT, settings.LOGIN_THROTTLE_IP = "3/min", "100/min"
    with time_machine.travel("2030-01-01 12:00:58Z", tick=False) as traveller:
        assert [login(APIClient(), user, "wrong").status_code for _ in range(3)] == [401, 401, 401]
        traveller.shift(3)  # 12:01:01: three guesses in the last minute already
        assert login(APIClient(), user, "wrong").status_code == 429
        traveller.shift(60)  # 12:02:01: none in the last minute
        assert login(APIClient(), user).status_code == 200


def test_requests_sent_together_pass_no_more_than_the_limit(db, settings, monkeypatch):
    """DRF's throttle reads the list of recent requests and writes it back: sent together, all
    read the same list and all passed. Each read here answers late, to make them overlap."""
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.test import APIRequestFactory
    from rest_framework.views import APIView

    from accounts.throttles import LoginIPThrottle

    class Guarded(APIView):
        authentication_classes: list = []
        permission_classes = [AllowAny]
        throttle_classes = [LoginIPThrottle]

        def post(self, request):
            return Response({})

    settings.LOGIN_THROTTLE_IP = "3/min"
    cache_reads_late(monkeypatch)
    view, barrier, statuses = Guarded.as_view(), threading.Barrier(12), []

    def send() -> None:
        request = APIRequestFactory().post("/", {}, REMOTE_ADDR="203.0.113.50", format="json")
        barrier.wait()
        statuses.append(view(request).status_code)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 3 + [429] * 9


def test_an_office_opening_its_invitations_keeps_its_sign_ins(user, settings):
    """Reset requests and invitation previews from one address do not spend its sign-ins."""
    settings.LOGIN_THROTTLE_IP = "3/min"
    office = APIClient(REMOTE_ADDR="192.0.2.44")
    for _ in range(3):
        office.post("/api/auth/password/reset", {"email": "someone@example.com"}, format="json")
        office.post("/api/invitations/preview", {"token": "not-a-real-invitation"}, format="json")
    assert login(office, user).status_code == 200
    refused = office.post("/api/invitations/preview", {"token": "not-a-real-invitation"}, format="json")
    assert (refused.status_code, refused.json()["code"]) == (429, "throttled")  # their own limit holds
