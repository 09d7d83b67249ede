"""Second factors: enrolment, the second step of a sign-in, passkey sign-in, re-authentication.

A sign-in of a user who has a second factor does not start a session after the first factor:
it starts a short-lived, single-use challenge (the ``mfaToken``), and only the second factor
completes it. So a stolen password alone never yields a session. A challenge allows a few
wrong codes, and each account a few more across challenges, then refuses.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts import factors, session_cache
from accounts.audit import RequestOrigin, audit_event_record
from accounts.factors import FactorInvalid, RelyingParty
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
from accounts.selectors import user_second_factors
from accounts.services import IssuedTokens, session_start
from config.cache import CACHE_ERRORS
from config.crypto import TOTP_SECRETS, field_decrypt, field_encrypt
from config.errors import (
    AlreadyEnrolled,
    AuthUnavailable,
    InvalidRequest,
    InvalidSecondFactor,
    MfaTokenInvalid,
    NotFound,
    ReauthenticationRequired,
    Throttled,
)

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


def _challenge_new(*, purpose: str, user: User | None = None, **fields) -> tuple[str, SignInChallenge]:
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    challenge = SignInChallenge.objects.create(
        token_hash=_token_hash(token),
        purpose=purpose,
        user=user,
        created_at=now,
        expires_at=now + settings.MFA_TOKEN_TTL,
        **fields,
    )
    return token, challenge


def _challenge_get(*, token: object, purpose: str) -> SignInChallenge:
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


def _challenge_spend(challenge: SignInChallenge) -> None:
    """Single use: only the first spender's conditional update matches."""
    if not SignInChallenge.objects.filter(pk=challenge.pk, used_at=None).update(used_at=timezone.now()):
        raise MfaTokenInvalid()


def _account_failures_check(user: User) -> None:
    key = f"auth:mfa-failures:{user.pk}"
    try:
        failures = cache.get(key, 0)
    except CACHE_ERRORS as error:
        raise AuthUnavailable() from error
    if failures >= MAX_FAILURES_PER_ACCOUNT:
        raise Throttled(retry_after=int(ACCOUNT_FAILURE_WINDOW.total_seconds()))


def _failure_record(
    user: User, challenge: SignInChallenge | None, origin: RequestOrigin | None, what: str
) -> None:
    key = f"auth:mfa-failures:{user.pk}"
    try:
        if not cache.add(key, 1, timeout=ACCOUNT_FAILURE_WINDOW.total_seconds()):
            cache.incr(key)
    except (*CACHE_ERRORS, ValueError):  # ValueError: the key expired between add and incr
        pass
    if challenge is not None:
        SignInChallenge.objects.filter(pk=challenge.pk).update(attempts=challenge.attempts + 1)
    audit_event_record(type=AuditEventType.SECOND_FACTOR_FAILED, user=user, origin=origin, detail=what)


# --- The second step of a sign-in ----------------------------------------------------------


def sign_in_step(*, user: User, method: str, origin: RequestOrigin) -> SignInStep:
    """After a first factor: a session, or, for a user with a second factor, the challenge for it."""
    methods = user_second_factors(user=user)
    if not methods:
        return SignInStep(issued=session_start(user=user, method=method, origin=origin))
    token, _ = _challenge_new(purpose=ChallengePurpose.SECOND_FACTOR, user=user, first_factor=method)
    return SignInStep(mfa_token=token, methods=tuple(methods))


def _code_factor(user: User, code: str) -> str:
    """Which factor ``code`` is (TOTP, else a recovery code), spending it; FactorInvalid otherwise."""
    device = TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).first()
    if device is not None and code.strip().replace(" ", "").isdigit():
        step = factors.totp_step_verify(
            secret=field_decrypt(ciphertext=device.secret_encrypted, purpose=TOTP_SECRETS),
            code=code,
            after_step=device.last_used_step,
        )
        if not TotpDevice.objects.filter(pk=device.pk, last_used_step__lt=step).update(last_used_step=step):
            raise FactorInvalid("This code was already used.")
        return SecondFactor.TOTP
    spent = RecoveryCode.objects.filter(
        user=user, code_hash=factors.recovery_code_hash(code), used_at=None
    ).update(used_at=timezone.now())
    if not spent:
        raise FactorInvalid("The code is not valid, or was already used.")
    return SecondFactor.RECOVERY


def second_factor_options(*, mfa_token: str, rp: RelyingParty) -> dict:
    """WebAuthn assertion options for the second step: the user's own passkeys."""
    with transaction.atomic():
        challenge = _challenge_get(token=mfa_token, purpose=ChallengePurpose.SECOND_FACTOR)
        challenge.webauthn_challenge = factors.webauthn_challenge_new()
        challenge.save(update_fields=["webauthn_challenge"])
        allowed = list(Passkey.objects.filter(user=challenge.user).values_list("credential_id", flat=True))
    return factors.authentication_options(rp=rp, challenge=challenge.webauthn_challenge, allowed=allowed)


def second_factor_verify(
    *, mfa_token: str, code: str | None, assertion: dict | None, rp: RelyingParty, origin: RequestOrigin
) -> IssuedTokens:
    """Complete a sign-in with a TOTP code, a recovery code or a passkey assertion."""
    with transaction.atomic():
        challenge = _challenge_get(token=mfa_token, purpose=ChallengePurpose.SECOND_FACTOR)
        user = challenge.user
        _account_failures_check(user)
        try:
            if assertion is not None:
                factor = _passkey_verify(user=user, challenge=challenge, assertion=assertion, rp=rp, uv=False)
            else:
                factor = _code_factor(user, code or "")
        except FactorInvalid as error:
            _failure_record(user, challenge, origin, "second step of a sign-in")
            failed = error
        else:
            failed = None
            _challenge_spend(challenge)
    if failed is not None:  # recorded and committed above; now refused
        raise InvalidSecondFactor(str(failed)) from failed
    if factor == SecondFactor.RECOVERY:
        audit_event_record(type=AuditEventType.RECOVERY_CODE_USED, user=user, origin=origin)
    return session_start(user=user, method=challenge.first_factor, origin=origin, second_factor=factor)


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
    token, challenge = _challenge_new(
        purpose=ChallengePurpose.PASSKEY_SIGN_IN, webauthn_challenge=factors.webauthn_challenge_new()
    )
    return token, factors.authentication_options(
        rp=rp, challenge=bytes(challenge.webauthn_challenge), allowed=[]
    )


def passkey_sign_in(*, token: str, assertion: dict, rp: RelyingParty, origin: RequestOrigin) -> IssuedTokens:
    """Sign in with a passkey alone: it proves possession and, with user verification, the user."""
    with transaction.atomic():
        challenge = _challenge_get(token=token, purpose=ChallengePurpose.PASSKEY_SIGN_IN)
        try:
            _passkey_verify(user=None, challenge=challenge, assertion=assertion, rp=rp, uv=True)
        except FactorInvalid as error:
            SignInChallenge.objects.filter(pk=challenge.pk).update(attempts=challenge.attempts + 1)
            failed = error
        else:
            failed = None
            _challenge_spend(challenge)
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


def reauthenticate(
    *,
    user_id: int,
    session_id: uuid.UUID,
    password: str | None = None,
    code: str | None = None,
    origin: RequestOrigin,
) -> None:
    """Prove it is still the user (password, or a current second-factor code): resets the window."""
    user = User.objects.get(pk=user_id)
    _account_failures_check(user)
    proven = False
    if password is not None:
        proven = user.has_usable_password() and user.check_password(password)
    elif code is not None:
        try:
            _code_factor(user, code)
            proven = True
        except FactorInvalid:
            proven = False
    if not proven:
        _failure_record(user, None, origin, "re-authentication")
        raise InvalidSecondFactor("That is not right; try again.")
    Session.objects.filter(pk=session_id, user=user).update(authenticated_at=timezone.now())
    audit_event_record(type=AuditEventType.REAUTHENTICATED, user=user, origin=origin, session_id=session_id)


# --- Enrolment -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    uri: str
    qr_svg: str  # a data: URI


def _factors_changed(user: User) -> None:
    """The claims gateways and the API see include the second-factor state."""
    try:
        session_cache.claims_cache_forget(user_ids=[user.pk])
    except AuthUnavailable:
        pass  # they expire within CLAIMS_CACHE_TTL


def totp_enrol_start(*, user_id: int) -> TotpEnrolment:
    """A new secret for an authenticator app; it counts only once confirmed with a code."""
    user = User.objects.get(pk=user_id)
    if TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists():
        raise AlreadyEnrolled()
    secret = factors.totp_secret_new()
    TotpDevice.objects.update_or_create(
        user=user,
        defaults={
            "secret_encrypted": field_encrypt(plaintext=secret, purpose=TOTP_SECRETS),
            "created_at": timezone.now(),
        },
    )
    uri = factors.totp_uri(secret=secret, email=user.email)
    return TotpEnrolment(secret=secret, uri=uri, qr_svg=factors.qr_svg_data_uri(uri))


def _recovery_codes_issue(user: User) -> list[str]:
    codes = factors.recovery_codes_new()
    RecoveryCode.objects.filter(user=user).delete()
    RecoveryCode.objects.bulk_create(
        [RecoveryCode(user=user, code_hash=factors.recovery_code_hash(code)) for code in codes]
    )
    return codes


def totp_enrol_confirm(*, user_id: int, session_id: uuid.UUID, code: str, origin: RequestOrigin) -> list[str]:
    """Turn the app on with its first code; returns the recovery codes (shown once, stored hashed)."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        device = TotpDevice.objects.filter(user=user, confirmed_at=None).first()
        if device is None:
            raise InvalidRequest(
                fields={"code": ["Start the set-up first: no authenticator app is waiting."]}
            )
        try:
            step = factors.totp_step_verify(
                secret=field_decrypt(ciphertext=device.secret_encrypted, purpose=TOTP_SECRETS),
                code=code,
                after_step=device.last_used_step,
            )
        except FactorInvalid as error:
            raise InvalidRequest(fields={"code": [str(error)]}) from error
        device.confirmed_at, device.last_used_step = timezone.now(), step
        device.save(update_fields=["confirmed_at", "last_used_step"])
        codes = _recovery_codes_issue(user)
        # This session just proved the new factor: it counts as signed in with it.
        session = Session.objects.filter(pk=session_id, user=user).first()
        if session is not None and SecondFactor.TOTP not in session.amr:
            Session.objects.filter(pk=session.pk).update(amr=[*session.amr, SecondFactor.TOTP.value])
        audit_event_record(
            type=AuditEventType.SECOND_FACTOR_ENROLLED, user=user, origin=origin, detail="totp"
        )
    _factors_changed(user)
    return codes


def totp_remove(*, user_id: int, origin: RequestOrigin) -> None:
    """Turn the authenticator app off (the caller checked a recent authentication)."""
    user = User.objects.get(pk=user_id)
    with transaction.atomic():
        removed, _ = TotpDevice.objects.filter(user=user).delete()
        if not removed:
            raise NotFound()
        if not Passkey.objects.filter(user=user).exists():
            RecoveryCode.objects.filter(user=user).delete()  # nothing left to recover
        audit_event_record(type=AuditEventType.SECOND_FACTOR_REMOVED, user=user, origin=origin, detail="totp")
    _factors_changed(user)


def recovery_codes_regenerate(*, user_id: int, origin: RequestOrigin) -> list[str]:
    user = User.objects.get(pk=user_id)
    if not user_second_factors(user=user):
        raise InvalidRequest(
            "Set up an authenticator app or a passkey first: recovery codes stand in for them."
        )
    with transaction.atomic():
        codes = _recovery_codes_issue(user)
        audit_event_record(type=AuditEventType.RECOVERY_CODES_ISSUED, user=user, origin=origin)
    return codes


def passkey_registration_options(
    *, user_id: int, session_id: uuid.UUID, rp: RelyingParty
) -> tuple[str, dict]:
    user = User.objects.get(pk=user_id)
    token, challenge = _challenge_new(
        purpose=ChallengePurpose.PASSKEY_REGISTRATION,
        user=user,
        session_id=session_id,
        webauthn_challenge=factors.webauthn_challenge_new(),
    )
    options = factors.registration_options(
        rp=rp,
        user_id=user.pk,
        email=user.email,
        name=user.name,
        challenge=bytes(challenge.webauthn_challenge),
        existing=list(Passkey.objects.filter(user=user).values_list("credential_id", flat=True)),
    )
    return token, options


def passkey_register(
    *, user_id: int, session_id: uuid.UUID, token: str, credential: dict, name: str, rp: RelyingParty,
    origin: RequestOrigin,
) -> Passkey:  # fmt: skip
    with transaction.atomic():
        challenge = _challenge_get(token=token, purpose=ChallengePurpose.PASSKEY_REGISTRATION)
        if challenge.user_id != user_id or challenge.session_id != session_id:
            raise MfaTokenInvalid()
        try:
            verified = factors.registration_verify(
                rp=rp, credential=credential, challenge=bytes(challenge.webauthn_challenge)
            )
        except FactorInvalid as error:
            raise InvalidRequest(fields={"credential": [str(error)]}) from error
        _challenge_spend(challenge)
        if Passkey.objects.filter(credential_id=verified.credential_id).exists():
            raise InvalidRequest(fields={"credential": ["This passkey is already registered."]})
        passkey = Passkey.objects.create(
            user=challenge.user,
            name=name,
            credential_id=verified.credential_id,
            public_key=verified.public_key,
            sign_count=verified.sign_count,
            transports=[
                t for t in credential.get("response", {}).get("transports", []) if isinstance(t, str)
            ][:8]
            if isinstance(credential.get("response"), dict)
            else [],
        )
        audit_event_record(
            type=AuditEventType.SECOND_FACTOR_ENROLLED,
            user=challenge.user,
            origin=origin,
            detail=f"passkey {name}",
        )
    _factors_changed(challenge.user)
    return passkey


def passkey_rename(*, user_id: int, passkey_id: int, name: str) -> Passkey:
    passkey = Passkey.objects.filter(pk=passkey_id, user_id=user_id).first()
    if passkey is None:
        raise NotFound()
    passkey.name = name
    passkey.full_clean(validate_constraints=False)
    passkey.save(update_fields=["name"])
    return passkey


def passkey_remove(*, user_id: int, passkey_id: int, origin: RequestOrigin) -> None:
    with transaction.atomic():
        passkey = Passkey.objects.select_related("user").filter(pk=passkey_id, user_id=user_id).first()
        if passkey is None:
            raise NotFound()
        passkey.delete()
        user = passkey.user
        if not user_second_factors(user=user):
            RecoveryCode.objects.filter(user=user).delete()
        audit_event_record(
            type=AuditEventType.SECOND_FACTOR_REMOVED,
            user=user,
            origin=origin,
            detail=f"passkey {passkey.name}",
        )
    _factors_changed(user)


def second_factors_reset(*, user: User, actor: User | None) -> int:
    """An operator removes every second factor of a user who lost them all; returns how many went."""
    with transaction.atomic():
        removed = TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).count()
        removed += Passkey.objects.filter(user=user).count()
        TotpDevice.objects.filter(user=user).delete()
        Passkey.objects.filter(user=user).delete()
        RecoveryCode.objects.filter(user=user).delete()
        audit_event_record(
            type=AuditEventType.SECOND_FACTORS_RESET, user=user, detail=f"by {actor.email}" if actor else ""
        )
    _factors_changed(user)
    return removed
