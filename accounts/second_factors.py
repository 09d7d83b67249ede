"""Second factors in use: the second step of a sign-in, passkey sign-in, re-authentication
(setting them up and removing them: ``accounts.factor_enrolment``).

A sign-in of a user who has a second factor does not start a session after the first factor:
it starts a short-lived, single-use challenge (the ``mfaToken``), and only the second factor
completes it. So a stolen password alone never yields a session. A challenge allows a few
wrong codes, and each account a few more across challenges, then refuses.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import factors
from accounts.audit import RequestOrigin, audit_event_record
from accounts.devices import device_cookie_nonce
from accounts.factors import FactorInvalid, RelyingParty
from accounts.locks import SecondFactorSetUpSince, sign_in_still_valid, user_row_lock
from accounts.models import (
    AuditEventType,
    AuthMethod,
    ChallengePurpose,
    Passkey,
    RecoveryCode,
    SecondFactor,
    Session,
    SignInChallenge,
    TotpDevice,
    User,
)
from accounts.selectors import session_facts, user_second_factors
from accounts.services import IssuedTokens, session_start
from config import metrics
from config.cache import CACHE_ERRORS
from config.crypto import TOTP_SECRETS, field_decrypt
from config.errors import (
    AuthUnavailable,
    InvalidRequest,
    InvalidSecondFactor,
    MfaTokenInvalid,
    ReauthenticationRequired,
    Throttled,
)
from config.ratelimit import attempt_return, attempt_take

MAX_ATTEMPTS_PER_CHALLENGE = 5
MAX_FAILURES_PER_ACCOUNT = 10
ACCOUNT_FAILURE_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class SignInStep:
    """What a first factor leads to: tokens, or the second step (``mfa_token`` and its methods)."""

    issued: IssuedTokens | None = None
    mfa_token: str | None = None
    methods: tuple[str, ...] = ()


# --- Challenges (the mfaToken and WebAuthn challenges) -------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def challenge_new(*, purpose: str, user: User | None = None, **fields) -> tuple[str, SignInChallenge]:
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    # Some of these are made for anyone who asks (passkey sign-in options): the ones whose time
    # is up go as new ones come, so the table holds only the last MFA_TOKEN_TTL's (an indexed delete).
    SignInChallenge.objects.filter(expires_at__lte=now).delete()
    challenge = SignInChallenge.objects.create(
        token_hash=_token_hash(token),
        purpose=purpose,
        user=user,
        created_at=now,
        expires_at=now + settings.MFA_TOKEN_TTL,
        **fields,
    )
    return token, challenge


def challenge_get(*, token: object, purpose: str) -> SignInChallenge:
    """The live challenge ``token`` names, locked for this transaction; else 403 mfa_token_invalid."""
    if not isinstance(token, str) or not token:
        raise MfaTokenInvalid()
    challenge = (
        # No select_related: the user is the nullable side of the join, which PostgreSQL will
        # not lock; the few callers that need the user load it after.
        SignInChallenge.objects.select_for_update()
        .filter(token_hash=_token_hash(token), purpose=purpose, used_at=None, expires_at__gt=timezone.now())
        .first()
    )
    if challenge is None or challenge.attempts >= MAX_ATTEMPTS_PER_CHALLENGE:
        raise MfaTokenInvalid()
    return challenge


def challenge_spend(challenge: SignInChallenge) -> None:
    """Single use: only the first spender's conditional update matches."""
    if not SignInChallenge.objects.filter(pk=challenge.pk, used_at=None).update(used_at=timezone.now()):
        raise MfaTokenInvalid()


def _account_failures_key(user: User, device: str | None = None) -> str:
    # A device that completed a second step before has a bucket of its own, as at login: a
    # stranger who knows the password cannot lock its owner out of the second step.
    return f"auth:mfa-failures:{user.pk}" + (f":device:{device}" if device else "")


_ACCOUNT_WINDOW_SECONDS = int(ACCOUNT_FAILURE_WINDOW.total_seconds())


def _attempt_take(user: User, device: str | None) -> float:
    """Count a second-factor attempt against the account before checking it; else 429.

    Counted first, so that attempts sent together cannot all pass a check made before any is
    recorded: at most ``MAX_FAILURES_PER_ACCOUNT`` wrong (or pending) ones in any window.
    Returns when it was counted.
    """
    taken_at = time.time()
    try:
        wait = attempt_take(
            key=_account_failures_key(user, device),
            limit=MAX_FAILURES_PER_ACCOUNT,
            seconds=_ACCOUNT_WINDOW_SECONDS,
            now=taken_at,
        )
    except CACHE_ERRORS as error:
        raise AuthUnavailable() from error
    if wait is not None:
        metrics.login_throttled_record(throttle="mfa_account")
        raise Throttled(retry_after=math.ceil(wait))
    return taken_at


def _attempt_return(user: User, device: str | None, taken_at: float) -> None:
    """The attempt counted at ``taken_at`` does not count against the account after all."""
    try:
        attempt_return(key=_account_failures_key(user, device), seconds=_ACCOUNT_WINDOW_SECONDS, now=taken_at)
    except CACHE_ERRORS:
        pass  # it stays counted as a wrong one: the safe side


class AccountAttempt:
    """One attempt against the account's limit; ``wrong`` once its answer proved wrong."""

    wrong = False


def session_bucket(*, user: User, session_id: uuid.UUID | None) -> str | None:
    """A signed-in session that passed a second factor (at sign-in, or by enrolling one) counts
    its attempts on its own: a stranger who fills the account's bucket with the password alone
    cannot lock it out of re-authentication either. None: the account's bucket."""
    session = Session.objects.filter(pk=session_id, user=user).first() if session_id else None
    return (
        f"session:{session.pk}" if session is not None and session_facts(session).has_second_factor else None
    )


@contextmanager
def account_attempt(user: User, device: str | None = None) -> Iterator[AccountAttempt]:
    """A second-factor attempt, counted against the account (``device``: the device's bucket) on
    entry (429 when it has no more) and given back on leaving unless it was ``wrong``: a right
    answer, or a request refused for another reason (an expired step, nothing to remove), costs
    the account nothing."""
    taken_at = _attempt_take(user, device)
    attempt = AccountAttempt()
    try:
        yield attempt
    finally:
        if not attempt.wrong:
            _attempt_return(user, device, taken_at)


def failure_record(
    user: User, challenge: SignInChallenge | None, origin: RequestOrigin | None, what: str
) -> None:
    """A wrong second factor (already counted against the account): the challenge's count, the audit."""
    if challenge is not None:
        SignInChallenge.objects.filter(pk=challenge.pk).update(attempts=challenge.attempts + 1)
    audit_event_record(type=AuditEventType.SECOND_FACTOR_FAILED, user=user, origin=origin, detail=what)


# --- The second step of a sign-in ----------------------------------------------------------


def sign_in_step(*, user: User, method: str, origin: RequestOrigin, google_domain: str = "") -> SignInStep:
    """After a first factor: a session, or, for a user with a second factor, the challenge for it."""
    methods, domain = user_second_factors(user=user), google_domain
    if not methods:
        try:
            issued = session_start(user=user, method=method, origin=origin, google_domain=domain)
        except SecondFactorSetUpSince:
            methods = user_second_factors(user=user)
        else:
            return SignInStep(issued=issued)
    with transaction.atomic():
        # Else a change's clean-up could miss the challenge (accounts.locks).
        sign_in_still_valid(user=user, method=method)
        token, _ = challenge_new(
            purpose=ChallengePurpose.SECOND_FACTOR, user=user, first_factor=method, google_domain=domain
        )
    return SignInStep(mfa_token=token, methods=tuple(methods))


def code_factor_spend(user: User, code: str) -> str:
    """Which factor ``code`` is (TOTP, else a recovery code), spending it; FactorInvalid otherwise."""
    device = TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).first()
    if device is not None and factors.totp_code_like(code):
        step = factors.totp_step_verify(
            secret=field_decrypt(ciphertext=device.secret_encrypted, purpose=TOTP_SECRETS),
            code=code,
            after_step=device.last_used_step,
        )
        if not TotpDevice.objects.filter(pk=device.pk, last_used_step__lt=step).update(last_used_step=step):
            raise FactorInvalid("This code was already used.")
        return SecondFactor.TOTP
    spent = RecoveryCode.objects.filter(
        user=user, code_hash__in=factors.recovery_code_hashes(code), used_at=None
    ).update(used_at=timezone.now())
    if not spent:
        raise FactorInvalid("The code is not valid, or was already used.")
    return SecondFactor.RECOVERY


def second_factor_options(*, mfa_token: str, rp: RelyingParty) -> dict:
    """WebAuthn assertion options for the second step: the user's own passkeys."""
    with transaction.atomic():
        challenge = challenge_get(token=mfa_token, purpose=ChallengePurpose.SECOND_FACTOR)
        challenge.webauthn_challenge = factors.webauthn_challenge_new()
        challenge.save(update_fields=["webauthn_challenge"])
        allowed = list(Passkey.objects.filter(user=challenge.user).values_list("credential_id", flat=True))
    return factors.authentication_options(rp=rp, challenge=challenge.webauthn_challenge, allowed=allowed)


def second_factor_verify(
    *,
    mfa_token: str,
    code: str | None,
    assertion: dict | None,
    rp: RelyingParty,
    origin: RequestOrigin,
    device: str | None = None,
) -> IssuedTokens:
    """Complete a sign-in with a TOTP code, a recovery code or a passkey assertion; ``device``:
    the client's device cookie or token, counted on its own when a second step earned it."""
    with transaction.atomic():
        # The user's row before the challenge's, in the order of whatever ends the challenge (a
        # password change: accounts.locks): a wrong code, recorded against the user, would
        # otherwise wait on a change that waits on this challenge.
        pending = SignInChallenge.objects.filter(token_hash=_token_hash(str(mfa_token)))
        user_row_lock(user_id=pending.values_list("user_id", flat=True).first())
        challenge = challenge_get(token=mfa_token, purpose=ChallengePurpose.SECOND_FACTOR)
        user = challenge.user
        known_device = device_cookie_nonce(device, user=user, second_factor=True)
        with account_attempt(user, known_device) as attempt:
            try:
                if assertion is not None:
                    factor = _passkey_verify(
                        user=user, challenge=challenge, assertion=assertion, rp=rp, uv=False
                    )
                else:
                    factor = code_factor_spend(user, code or "")
            except FactorInvalid as error:
                attempt.wrong = True
                failure_record(user, challenge, origin, "second step of a sign-in")
                failed = error
            else:
                failed = None
                challenge_spend(challenge)
    if failed is not None:  # recorded and committed above; now refused
        raise InvalidSecondFactor(str(failed)) from failed
    if factor == SecondFactor.RECOVERY:
        audit_event_record(type=AuditEventType.RECOVERY_CODE_USED, user=user, origin=origin)
    first, domain = challenge.first_factor, challenge.google_domain
    return session_start(user=user, method=first, origin=origin, second_factor=factor, google_domain=domain)


# --- Passkeys ------------------------------------------------------------------------------


def _passkey_verify(
    *, user: User | None, challenge: SignInChallenge, assertion: dict, rp: RelyingParty, uv: bool
) -> str:
    """Check an assertion against the challenge and the stored key; ``user`` None: any user's passkey."""
    if not challenge.webauthn_challenge:
        raise FactorInvalid("Ask for passkey options first.")
    passkeys = Passkey.objects.select_related("user").filter(
        credential_id=factors.credential_id_of(assertion)
    )
    passkey = passkeys.filter(user=user).first() if user is not None else passkeys.first()
    if passkey is None:
        raise FactorInvalid("This passkey is not registered here.")
    sign_count = factors.authentication_verify(
        rp=rp,
        assertion=assertion,
        challenge=bytes(challenge.webauthn_challenge),
        public_key=bytes(passkey.public_key),
        sign_count=passkey.sign_count,
        require_user_verification=uv,
    )
    Passkey.objects.filter(pk=passkey.pk).update(sign_count=sign_count, last_used_at=timezone.now())
    challenge.user = passkey.user
    return SecondFactor.WEBAUTHN


def passkey_sign_in_options(*, rp: RelyingParty) -> tuple[str, dict]:
    """A passkey as the first (and only) factor: options for any discoverable passkey here."""
    token, challenge = challenge_new(
        purpose=ChallengePurpose.PASSKEY_SIGN_IN, webauthn_challenge=factors.webauthn_challenge_new()
    )
    return token, factors.authentication_options(
        rp=rp, challenge=bytes(challenge.webauthn_challenge), allowed=[]
    )


def passkey_sign_in(*, token: str, assertion: dict, rp: RelyingParty, origin: RequestOrigin) -> IssuedTokens:
    """Sign in with a passkey alone: it proves possession and, with user verification, the user."""
    with transaction.atomic():
        challenge = challenge_get(token=token, purpose=ChallengePurpose.PASSKEY_SIGN_IN)
        try:
            _passkey_verify(user=None, challenge=challenge, assertion=assertion, rp=rp, uv=True)
        except FactorInvalid as error:
            SignInChallenge.objects.filter(pk=challenge.pk).update(attempts=challenge.attempts + 1)
            failed = error
        else:
            failed = None
            challenge_spend(challenge)
    if failed is not None:
        raise InvalidSecondFactor(str(failed)) from failed
    # A passkey with user verification is two factors in one (the device and its PIN or biometric).
    return session_start(user=challenge.user, method=AuthMethod.PASSKEY, origin=origin)


# --- Re-authentication ---------------------------------------------------------------------


def recent_authentication_require(*, session_id: uuid.UUID) -> None:
    """Sensitive actions need the user to have proven who they are within REAUTHENTICATION_WINDOW."""
    since = timezone.now() - settings.REAUTHENTICATION_WINDOW
    if not Session.objects.filter(pk=session_id, authenticated_at__gte=since).exists():
        raise ReauthenticationRequired()


@dataclass(frozen=True)
class PasskeyProof:
    """A passkey assertion answering the options of ``reauthentication_options``."""

    token: str
    assertion: dict
    rp: RelyingParty


def reauthentication_options(*, user_id: int, session_id: uuid.UUID, rp: RelyingParty) -> tuple[str, dict]:
    """Assertion options for the user's own passkeys, bound to this session (for an account
    without a password or an authenticator app, a passkey is the only way to confirm)."""
    user = User.objects.get(pk=user_id)
    allowed = list(Passkey.objects.filter(user=user).values_list("credential_id", flat=True))
    if not allowed:
        raise InvalidRequest("This account has no passkey: confirm with your password or a code.")
    token, challenge = challenge_new(
        purpose=ChallengePurpose.REAUTHENTICATION,
        user=user,
        session_id=session_id,
        webauthn_challenge=factors.webauthn_challenge_new(),
    )
    options = factors.authentication_options(
        rp=rp, challenge=bytes(challenge.webauthn_challenge), allowed=allowed
    )
    return token, options


def _passkey_proof_check(
    *, user: User, session_id: uuid.UUID, proof: PasskeyProof
) -> tuple[bool, SignInChallenge]:
    """Whether the assertion checks out; the challenge it answered (spent when it does)."""
    with transaction.atomic():
        challenge = challenge_get(token=proof.token, purpose=ChallengePurpose.REAUTHENTICATION)
        if challenge.user_id != user.pk or challenge.session_id != session_id:
            raise MfaTokenInvalid("This passkey request is not for this session; try again.")
        try:
            _passkey_verify(user=user, challenge=challenge, assertion=proof.assertion, rp=proof.rp, uv=False)
        except FactorInvalid:
            return False, challenge
        challenge_spend(challenge)
    return True, challenge


def reauthenticate(
    *,
    user_id: int,
    session_id: uuid.UUID,
    password: str | None = None,
    code: str | None = None,
    passkey: PasskeyProof | None = None,
    origin: RequestOrigin,
) -> None:
    """Prove it is still the user (a current second-factor code, a passkey, or the password of an
    account without a second factor): resets the window."""
    user = User.objects.get(pk=user_id)
    if password is not None and user_second_factors(user=user):
        # What a sensitive action guards includes the factors themselves: a stolen session plus
        # the password must not plant a factor of its own (OWASP's MFA cheat sheet).
        raise InvalidRequest(
            fields={"password": ["This account has a second factor: confirm with a code from your "
                                 "authenticator app, a recovery code or a passkey."]}
        )  # fmt: skip
    with account_attempt(user, session_bucket(user=user, session_id=session_id)) as attempt:
        proven, challenge, factor = False, None, None
        if password is not None:
            proven = user.has_usable_password() and user.check_password(password)
        elif code is not None:
            try:
                factor, proven = code_factor_spend(user, code), True
            except FactorInvalid:
                proven = False
        elif passkey is not None:
            proven, challenge = _passkey_proof_check(user=user, session_id=session_id, proof=passkey)
        if not proven:
            attempt.wrong = True
            failure_record(user, challenge, origin, "re-authentication")
            raise InvalidSecondFactor("That is not right; try again.")
    if factor == SecondFactor.RECOVERY:  # spent here as at sign-in: the user should know
        audit_event_record(
            type=AuditEventType.RECOVERY_CODE_USED, user=user, origin=origin, session_id=session_id
        )
    Session.objects.filter(pk=session_id, user=user).update(authenticated_at=timezone.now())
    audit_event_record(type=AuditEventType.REAUTHENTICATED, user=user, origin=origin, session_id=session_id)
