"""What takes back a user's credentials and what signs them in or makes a token for them wait for
each other (on the user's row): nothing made with what was just taken back outlives it.

Each test holds one side's transaction open once it has done its work, starts the other side,
then lets the first commit: whichever way round, the end state must be the one a user expects.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from accounts.access_tokens import access_token_create
from accounts.audit import RequestOrigin
from accounts.models import PersonalAccessToken, Session, SignInChallenge, TotpDevice, User
from accounts.passwords import password_change
from accounts.second_factors import sign_in_step
from accounts.selectors import session_facts, user_second_factors
from accounts.services import session_start, user_password_authenticate
from config.errors import (
    AccountDisabled,
    InvalidCredentials,
    InvalidResetToken,
    TokenNotValid,
    TokenScopeExceeded,
)
from tests.conftest import DEFAULT_PASSWORD
from tests.helpers import Racer, concurrent_writers_required, race, side_by_side

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ORIGIN = RequestOrigin(ip="192.0.2.10", user_agent="race")
NEW_PASSWORD = "a new and different passphrase"


@pytest.fixture(autouse=True)
def _writers_wait_for_each_other():
    concurrent_writers_required()


def _session(user) -> Session:
    second_factor = next(iter(user_second_factors(user=user)), None)  # as the sign-in asked for it
    session_start(user=user, method="password", origin=ORIGIN, second_factor=second_factor)
    return Session.objects.filter(user=user).latest("created_at")


def _change_password(user, session: Session):
    return lambda: password_change(
        user_id=user.pk,
        session_id=session.pk,
        current_password=DEFAULT_PASSWORD,
        new_password=NEW_PASSWORD,
        origin=ORIGIN,
    )


def _make_token(user, session: Session):
    return lambda: access_token_create(
        user=user,
        session_id=session.pk,
        facts=session_facts(session),
        name="ci",
        expires_in=timedelta(days=7),
        clients={"client1": ["view"]},
        origin=ORIGIN,
    )


def _live_tokens(user) -> list[PersonalAccessToken]:
    return list(PersonalAccessToken.objects.filter(user=user, revoked_at=None))


def test_a_token_made_while_the_password_changes_does_not_outlive_the_change(user1):
    changer, stolen = _session(user1), _session(user1)

    changed, made = side_by_side(
        Racer(_change_password(user1, changer), held=True), Racer(_make_token(user1, stolen))
    )

    assert not isinstance(changed, Exception)
    assert isinstance(made, TokenNotValid)  # its session ended with the old password
    assert _live_tokens(user1) == []


def test_a_token_made_just_before_the_password_changes_is_ended_by_the_change(user1):
    changer, stolen = _session(user1), _session(user1)

    made, changed = side_by_side(
        Racer(_make_token(user1, stolen), held=True), Racer(_change_password(user1, changer))
    )

    assert not isinstance(made, Exception) and not isinstance(changed, Exception)
    assert _live_tokens(user1) == []  # the change waited for it, found it and ended it


def test_a_token_made_while_its_owner_leaves_the_client_does_not_reach_the_client(user1, client1):
    from clusters.services import grant_remove

    session = _session(user1)

    removed, made = side_by_side(
        Racer(lambda: grant_remove(user=user1, client=client1), held=True), Racer(_make_token(user1, session))
    )

    assert removed is None
    assert isinstance(made, TokenScopeExceeded)  # checked once the removal is in
    assert [token for token in _live_tokens(user1) if "client1" in token.scopes] == []


def test_a_token_made_while_the_clients_policy_becomes_stricter_does_not_reach_the_client(
    user1, client1, monkeypatch
):
    """The token is made while the change, its tokens already listed, has not committed: it must
    wait for the change and meet the new policy, not slip in after the listing."""
    from clusters.services import PolicyInput, sign_in_policy_set
    from clusters.services import policy as policy_service

    session = _session(user1)  # a password alone: what the new policy no longer admits
    listed, go_on = threading.Event(), threading.Event()
    record = policy_service.client_audit_record

    def record_then_wait(**fields):  # after the tokens were listed and cut, before the commit
        listed.set()
        go_on.wait(timeout=10)
        return record(**fields)

    monkeypatch.setattr(policy_service, "client_audit_record", record_then_wait)
    second_factor_required = PolicyInput(
        allowed_methods=("password", "google", "passkey"), google_domain="", mfa_required=True,
        max_session_length=None, jit_provisioning=False, jit_role="viewer",
    )  # fmt: skip
    changing = Racer(
        lambda: sign_in_policy_set(client=client1, wanted=second_factor_required, actor=None, facts=None)
    )
    making = Racer(_make_token(user1, session))

    changing.start()
    assert listed.wait(timeout=10)
    making.start()
    making.join(timeout=0.5)  # time to run ahead, if nothing makes it wait
    go_on.set()

    assert not isinstance(changing.finish(), Exception)
    assert isinstance(making.finish(), TokenScopeExceeded)  # checked once the policy is in
    assert [token for token in _live_tokens(user1) if "client1" in token.scopes] == []


def test_a_sign_in_with_the_old_password_during_the_change_opens_no_session(user1):
    changer = _session(user1)
    checked = user_password_authenticate(email=user1.email, password=DEFAULT_PASSWORD, origin=ORIGIN)

    changed, signed_in = side_by_side(
        Racer(_change_password(user1, changer), held=True),
        Racer(lambda: session_start(user=checked, method="password", origin=ORIGIN)),
    )

    assert not isinstance(changed, Exception)
    assert isinstance(signed_in, InvalidCredentials)
    assert list(Session.objects.filter(user=user1, revoked_at=None)) == [changer]


def test_a_second_step_begun_with_the_old_password_during_the_change_cannot_be_finished(user1):
    from django.utils import timezone

    TotpDevice.objects.create(user=user1, secret_encrypted="x", confirmed_at=timezone.now())
    changer = _session(user1)
    checked = user_password_authenticate(email=user1.email, password=DEFAULT_PASSWORD, origin=ORIGIN)

    changed, step = side_by_side(
        Racer(_change_password(user1, changer), held=True),
        Racer(lambda: sign_in_step(user=checked, method="password", origin=ORIGIN)),
    )

    assert not isinstance(changed, Exception)
    assert isinstance(step, InvalidCredentials)
    assert not SignInChallenge.objects.filter(user=user1).exists()


def test_a_sign_in_during_a_deactivation_opens_no_session(user1):
    from accounts.services import user_deactivate

    checked = user_password_authenticate(email=user1.email, password=DEFAULT_PASSWORD, origin=ORIGIN)

    deactivated, signed_in = side_by_side(
        Racer(lambda: user_deactivate(user=user1), held=True),
        Racer(lambda: session_start(user=checked, method="password", origin=ORIGIN)),
    )

    assert deactivated is True
    assert isinstance(signed_in, AccountDisabled)
    assert not Session.objects.filter(user=user1, revoked_at=None).exists()


def test_a_wrong_second_step_code_sent_while_the_password_changes_lets_both_finish(user1, monkeypatch):
    """The change locks the user, then ends the sign-in's challenge; the second step holds the
    challenge and records the wrong code against the user: neither may wait for the other."""
    from django.utils import timezone

    from accounts import second_factors
    from accounts.factors import FactorInvalid
    from accounts.second_factors import second_factor_verify
    from config.errors import InvalidSecondFactor

    TotpDevice.objects.create(user=user1, secret_encrypted="x", confirmed_at=timezone.now())
    changer = _session(user1)
    checked = user_password_authenticate(email=user1.email, password=DEFAULT_PASSWORD, origin=ORIGIN)
    step = sign_in_step(user=checked, method="password", origin=ORIGIN)
    checking, checked_code = threading.Event(), threading.Event()

    def slow_wrong_code(user, code):  # the code is checked while the challenge is held
        checking.set()
        checked_code.wait(timeout=10)
        raise FactorInvalid("wrong code")

    monkeypatch.setattr(second_factors, "code_factor_spend", slow_wrong_code)
    verifying = Racer(
        lambda: second_factor_verify(
            mfa_token=step.mfa_token, code="000000", assertion=None, rp=None, origin=ORIGIN
        )
    )
    changing = Racer(_change_password(user1, changer))

    verifying.start()
    assert checking.wait(timeout=10)
    changing.start()
    changing.join(timeout=0.5)  # it changes the password, then waits for the challenge
    checked_code.set()

    assert isinstance(verifying.finish(), InvalidSecondFactor)
    assert not isinstance(changing.finish(), Exception)
    assert not SignInChallenge.objects.filter(user=user1).exists()


def test_two_sign_ins_at_once_that_re_hash_the_password_are_both_let_in(user1, settings):
    """Django re-hashes a password stored in an older format at the sign-in that checks it; two
    at once store two hashes of the same password, and neither is a change of it."""
    from django.contrib.auth.hashers import make_password

    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    old_format = make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256")

    def sign_in():
        checked = user_password_authenticate(email=user1.email, password=DEFAULT_PASSWORD, origin=ORIGIN)
        return session_start(user=checked, method="password", origin=ORIGIN)

    for _ in range(3):
        User.objects.filter(pk=user1.pk).update(password=old_format)
        outcomes = race(sign_in, sign_in)
        assert not [outcome for outcome in outcomes if isinstance(outcome, Exception)], outcomes


@pytest.mark.parametrize("check", ["sign-in", "re-authentication"])
def test_a_password_check_that_re_hashes_does_not_put_back_a_password_changed_meanwhile(
    user1, settings, check
):
    """The re-hash of a password stored in an older format, written by the check that proved it,
    must not land over a change made while it checked: the old password back, the new one refused."""
    from django.contrib.auth.hashers import make_password

    from accounts.passwords import operator_password_set
    from accounts.second_factors import reauthenticate

    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]
    session = _session(user1)
    User.objects.filter(pk=user1.pk).update(password=make_password(DEFAULT_PASSWORD, hasher="pbkdf2_sha256"))
    checks = {
        "sign-in": lambda: session_start(
            user=user_password_authenticate(email=user1.email, password=DEFAULT_PASSWORD, origin=ORIGIN),
            method="password",
            origin=ORIGIN,
        ),
        "re-authentication": lambda: reauthenticate(
            user_id=user1.pk, session_id=session.pk, password=DEFAULT_PASSWORD, origin=ORIGIN
        ),
    }

    changed, checked = side_by_side(
        Racer(
            lambda: operator_password_set(user=User.objects.get(pk=user1.pk), password=NEW_PASSWORD),
            held=True,
        ),
        Racer(checks[check]),  # reads the old hash, proves it, then waits to write its re-hash
    )

    assert not isinstance(changed, Exception)
    assert check != "sign-in" or isinstance(checked, InvalidCredentials)
    stored = User.objects.get(pk=user1.pk)
    assert stored.check_password(NEW_PASSWORD) and not stored.check_password(DEFAULT_PASSWORD)


def test_two_passwords_set_at_once_are_two_versions(user1):
    """Each new password is a version of its own: a sign-in that checked the first cannot pass
    for one that checked the second (as an attacker's change racing the owner's reset would)."""
    from accounts.passwords import operator_password_set

    first, second = User.objects.get(pk=user1.pk), User.objects.get(pk=user1.pk)  # both read version 0

    side_by_side(
        Racer(lambda: operator_password_set(user=first, password="the attacker's passphrase"), held=True),
        Racer(lambda: operator_password_set(user=second, password="the owner's new passphrase")),
    )

    assert User.objects.get(pk=user1.pk).password_version == 2


def test_a_reset_link_used_twice_at_once_sets_one_password(user1):
    """The link works once: the second use, checked before the first committed, is checked again
    once the first is in, and refused."""
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    from accounts.passwords import password_reset_confirm

    link = {
        "uid": urlsafe_base64_encode(force_bytes(user1.pk)),
        "token": default_token_generator.make_token(user1),
    }

    first, second = side_by_side(
        Racer(lambda: password_reset_confirm(**link, new_password=NEW_PASSWORD, origin=ORIGIN), held=True),
        Racer(lambda: password_reset_confirm(**link, new_password="the other new passphrase", origin=ORIGIN)),
    )

    assert first is None
    assert isinstance(second, InvalidResetToken)
    stored = User.objects.get(pk=user1.pk)
    assert stored.password_version == 1 and stored.check_password(NEW_PASSWORD)


def test_a_one_step_sign_in_while_the_first_second_factor_is_set_up_is_asked_for_it(user1):
    """The sign-in saw no second factor; the set-up, under way, ends every session of one step:
    the sign-in, let in after it, must not open one it missed, but ask for the new factor."""
    import pyotp

    from accounts.factor_enrolment import totp_enrol_confirm, totp_enrol_start

    enroller = _session(user1)
    secret = totp_enrol_start(user_id=user1.pk).secret
    checked = user_password_authenticate(email=user1.email, password=DEFAULT_PASSWORD, origin=ORIGIN)

    enrolled, step = side_by_side(
        Racer(
            lambda: totp_enrol_confirm(
                user_id=user1.pk, session_id=enroller.pk, code=pyotp.TOTP(secret).now(), origin=ORIGIN
            ),
            held=True,
        ),
        Racer(lambda: sign_in_step(user=checked, method="password", origin=ORIGIN)),
    )

    assert not isinstance(enrolled, Exception) and not isinstance(step, Exception), (enrolled, step)
    assert step.issued is None and step.methods == ("totp", "recovery")  # the second step, for it
    assert list(Session.objects.filter(user=user1, revoked_at=None)) == [enroller]
