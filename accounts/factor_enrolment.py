"""Setting second factors up and removing them: the authenticator app (TOTP), recovery codes,
passkeys, and an operator's reset. Signing in with them is ``accounts.second_factors``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone
from webauthn.helpers.structs import AuthenticatorTransport

from accounts import factors
from accounts.access_tokens import user_access_tokens_end
from accounts.audit import RequestOrigin, audit_event_record
from accounts.factors import FactorInvalid, RelyingParty
from accounts.models import (
    AuditEventType,
    ChallengePurpose,
    Passkey,
    RecoveryCode,
    SecondFactor,
    Session,
    SessionRevokedReason,
    TotpDevice,
    User,
)
from accounts.second_factors import (
    account_attempt,
    challenge_get,
    challenge_new,
    challenge_spend,
    code_factor_spend,
    failure_record,
    session_bucket,
)
from accounts.selectors import user_second_factors
from accounts.services import session_facts_refresh, sessions_revoke, users_claims_bump
from config.crypto import TOTP_SECRETS, FieldDecryptionError, field_decrypt, field_encrypt, field_reencrypt
from config.errors import (
    AlreadyEnrolled,
    AuthUnavailable,
    InvalidRequest,
    InvalidSecondFactor,
    MfaTokenInvalid,
    NotFound,
)


@dataclass(frozen=True)
class TotpEnrolment:
    secret: str
    uri: str
    qr_svg: str  # a data: URI


def _other_sessions_end_if_first(
    *, user: User, session_id: uuid.UUID, had_factors: bool, origin: RequestOrigin
) -> None:
    """The first factor turns two-step sign-in on: every other session, opened with one step
    (a device left signed in, or whoever had the password), must sign in again; and every
    personal access token ends, since each was made by a session of one step."""
    if not had_factors:
        sessions_revoke(
            user=user, except_session_id=session_id, reason=SessionRevokedReason.SECOND_FACTOR_ENROLLED
        )
        user_access_tokens_end(user=user, actor=user, why="second factor turned on", origin=origin)


def _session_proved(*, user: User, session_id: uuid.UUID, factor: SecondFactor) -> None:
    """The session that set a factor up just proved it: it counts as signed in with it."""
    session = Session.objects.filter(pk=session_id, user=user).first()
    if session is not None and factor.value not in session.amr:
        Session.objects.filter(pk=session.pk).update(amr=[*session.amr, factor.value])


def _session_facts_catch_up(session_id: uuid.UUID) -> None:
    try:
        session_facts_refresh(session_id=session_id)  # clients that require a second factor admit it now
    except AuthUnavailable:
        pass  # the factor is set up and must be answered; the session's facts catch up on refresh


def _factors_changed(user: User) -> None:
    """The claims gateways and the API see include the second-factor state, and so does the access
    token's scope (none while a required factor is missing): tokens are re-issued."""
    users_claims_bump(user_ids=[user.pk])


_KNOWN_TRANSPORTS = frozenset(transport.value for transport in AuthenticatorTransport)


def _transports(credential: dict) -> list[str]:
    """The authenticator's transport hints WebAuthn knows (they only steer browsers; others are dropped)."""
    response = credential.get("response")
    transports = response.get("transports") if isinstance(response, dict) else None
    if not isinstance(transports, list):
        return []
    return [t for t in transports if isinstance(t, str) and t in _KNOWN_TRANSPORTS][:8]


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


def _totp_confirm(*, user_id: int, session_id: uuid.UUID, code: str, origin: RequestOrigin) -> list[str]:
    """The app turned on, if ``code`` is its current one (FactorInvalid otherwise); the recovery codes."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        device = TotpDevice.objects.filter(user=user, confirmed_at=None).first()
        if device is None:
            raise InvalidRequest(
                fields={"code": ["Start the set-up first: no authenticator app is waiting."]}
            )
        step = factors.totp_step_verify(
            secret=field_decrypt(ciphertext=device.secret_encrypted, purpose=TOTP_SECRETS),
            code=code,
            after_step=device.last_used_step,
        )
        had_factors = bool(user_second_factors(user=user))
        device.confirmed_at, device.last_used_step = timezone.now(), step
        device.save(update_fields=["confirmed_at", "last_used_step"])
        _other_sessions_end_if_first(user=user, session_id=session_id, had_factors=had_factors, origin=origin)
        codes = _recovery_codes_issue(user)
        _session_proved(user=user, session_id=session_id, factor=SecondFactor.TOTP)
        audit_event_record(
            type=AuditEventType.SECOND_FACTOR_ENROLLED, user=user, origin=origin, detail="totp"
        )
    return codes


def totp_enrol_confirm(*, user_id: int, session_id: uuid.UUID, code: str, origin: RequestOrigin) -> list[str]:
    """Turn the app on with its first code; returns the recovery codes (shown once, stored hashed).

    Wrong codes count like wrong sign-in codes: else a stolen session could try every code
    against an app its owner began to set up, turn two-step sign-in on with it (ending the
    owner's sessions) and keep the recovery codes.
    """
    user = User.objects.get(pk=user_id)
    with account_attempt(user, session_bucket(user=user, session_id=session_id)) as attempt:
        try:
            codes = _totp_confirm(user_id=user_id, session_id=session_id, code=code, origin=origin)
        except FactorInvalid as error:  # recorded outside the refused transaction
            attempt.wrong = True
            failure_record(user, None, origin, "setting up the authenticator app")
            raise InvalidRequest(fields={"code": [str(error)]}) from error
    _factors_changed(user)
    _session_facts_catch_up(session_id)
    return codes


def totp_remove(
    *, user_id: int, code: str, origin: RequestOrigin, session_id: uuid.UUID | None = None
) -> None:
    """Turn the authenticator app off: it takes a current code from it (or a recovery code), so a
    session left open is not enough to strip an account of its second factor. The caller also
    checked a recent authentication; ``session_id``: the session asking (see session_bucket)."""
    user = User.objects.get(pk=user_id)
    with account_attempt(user, session_bucket(user=user, session_id=session_id)) as attempt:
        with transaction.atomic():
            if not TotpDevice.objects.filter(user=user, confirmed_at__isnull=False).exists():
                raise NotFound()
            try:
                factor = code_factor_spend(user, code)
            except FactorInvalid as error:
                failed = error
            else:
                failed = None
                TotpDevice.objects.filter(user=user).delete()
                if not Passkey.objects.filter(user=user).exists():
                    RecoveryCode.objects.filter(user=user).delete()  # nothing left to recover
                audit_event_record(
                    type=AuditEventType.SECOND_FACTOR_REMOVED, user=user, origin=origin, detail="totp"
                )
        if failed is not None:  # counted like a wrong code at sign-in, outside the refused transaction
            attempt.wrong = True
            failure_record(user, None, origin, "removing the authenticator app")
            raise InvalidSecondFactor(str(failed)) from failed
    if factor == SecondFactor.RECOVERY:
        audit_event_record(type=AuditEventType.RECOVERY_CODE_USED, user=user, origin=origin)
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
    token, challenge = challenge_new(
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
        challenge = challenge_get(token=token, purpose=ChallengePurpose.PASSKEY_REGISTRATION)
        if challenge.user_id != user_id or challenge.session_id != session_id:
            raise MfaTokenInvalid()
        try:
            verified = factors.registration_verify(
                rp=rp, credential=credential, challenge=bytes(challenge.webauthn_challenge)
            )
        except FactorInvalid as error:
            raise InvalidRequest(fields={"credential": [str(error)]}) from error
        challenge_spend(challenge)
        if Passkey.objects.filter(credential_id=verified.credential_id).exists():
            raise InvalidRequest(fields={"credential": ["This passkey is already registered."]})
        had_factors = bool(user_second_factors(user=challenge.user))
        passkey = Passkey.objects.create(
            user=challenge.user,
            name=name,
            credential_id=verified.credential_id,
            public_key=verified.public_key,
            sign_count=verified.sign_count,
            transports=_transports(credential),
        )
        audit_event_record(
            type=AuditEventType.SECOND_FACTOR_ENROLLED,
            user=challenge.user,
            origin=origin,
            detail=f"passkey {name}",
        )
        _session_proved(user=challenge.user, session_id=session_id, factor=SecondFactor.WEBAUTHN)
        _other_sessions_end_if_first(
            user=challenge.user, session_id=session_id, had_factors=had_factors, origin=origin
        )
    _factors_changed(challenge.user)
    _session_facts_catch_up(session_id)
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


def totp_secrets_reencrypt() -> int:
    """Re-encrypt every authenticator app's secret under the current field key (the codes stay the same)."""
    count = 0
    for pk in TotpDevice.objects.values_list("pk", flat=True).iterator():
        with transaction.atomic():
            device = TotpDevice.objects.select_for_update().select_related("user").get(pk=pk)
            try:
                device.secret_encrypted = field_reencrypt(
                    ciphertext=device.secret_encrypted, purpose=TOTP_SECRETS
                )
            except FieldDecryptionError as error:
                raise FieldDecryptionError(
                    f"The authenticator app secret of {device.user.email} cannot be decrypted."
                ) from error
            device.save(update_fields=["secret_encrypted"])
        count += 1
    return count
