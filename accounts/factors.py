"""Second-factor mechanics: TOTP (RFC 6238), recovery codes, WebAuthn. The only module that
imports pyotp, webauthn and segno; nothing here touches the database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

import pyotp
import segno
from django.conf import settings
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    options_to_json,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import (
    base64url_to_bytes,
    bytes_to_base64url,
    decode_credential_public_key,
    decoded_public_key_to_cryptography,
)
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

TOTP_ISSUER = "Qdrant Portal"
TOTP_DIGITS = 6
TOTP_PERIOD = 30
# One step of clock drift either way (RFC 6238 section 5.2 recommends at most one).
TOTP_DRIFT_STEPS = 1
RECOVERY_CODES = 10
WEBAUTHN_TIMEOUT_MS = 120_000
# WebAuthn Level 3: credential IDs are at most 1023 bytes (the column holds their base64url).
CREDENTIAL_ID_MAX_BYTES = 1023


class FactorInvalid(Exception):
    """A code or an assertion that does not check out (wrong, reused, expired, forged)."""


# --- TOTP ----------------------------------------------------------------------------------


def totp_secret_new() -> str:
    return pyotp.random_base32()  # 160 bits, as RFC 4226 recommends


def totp_uri(*, secret: str, email: str) -> str:
    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD).provisioning_uri(
        name=email, issuer_name=TOTP_ISSUER
    )


def qr_svg_data_uri(text: str) -> str:
    """A QR code of ``text`` as an SVG data URI (allowed by the app's img-src 'self' data:)."""
    return segno.make(text, error="m").svg_data_uri(scale=4, border=2)


def totp_code_like(code: str) -> bool:
    """Whether ``code`` reads as an authenticator code: ASCII digits, spaces allowed.

    ``str.isdigit`` alone also takes other scripts' digits ("١٢٣٤٥٦", "１２３４５６"), which no
    authenticator app shows and ``hmac.compare_digest`` refuses with a TypeError.
    """
    digits = code.strip().replace(" ", "")
    return digits.isascii() and digits.isdigit()


def totp_step_verify(*, secret: str, code: str, after_step: int, at: float | None = None) -> int:
    """The time step ``code`` belongs to, if it is valid now (± one step) and newer than ``after_step``.

    Refusing steps up to the last one accepted makes every code (and every older one) single use.
    """
    code = code.strip().replace(" ", "")
    if not (totp_code_like(code) and len(code) == TOTP_DIGITS):
        raise FactorInvalid("Enter the 6-digit code from your authenticator app.")
    totp = pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_PERIOD)
    now = time.time() if at is None else at
    current = int(now // TOTP_PERIOD)
    for step in range(current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS + 1):
        if step > after_step and hmac.compare_digest(totp.at(step * TOTP_PERIOD), code):
            return step
    raise FactorInvalid("The code is not valid, or was already used. Enter the current code.")


# --- Recovery codes ------------------------------------------------------------------------


def recovery_codes_new() -> list[str]:
    """Ten codes of 50 random bits, in groups people can type: ``k7m2x-9qw4t``."""
    alphabet = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i
    codes = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(alphabet) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    return codes


def recovery_code_hash(code: str, *, secret_key: str | None = None) -> str:
    """A keyed hash: the codes are high-entropy, so a fast MAC is enough and lookup is direct."""
    key = hashlib.sha256(("recovery-codes:" + (secret_key or settings.SECRET_KEY)).encode()).digest()
    normalized = code.strip().lower().replace(" ", "").replace("-", "")
    return hmac.new(key, normalized.encode(), hashlib.sha256).hexdigest()


def recovery_code_hashes(code: str) -> list[str]:
    """The hashes a stored code may have: under SECRET_KEY, and under each key it replaced
    (SECRET_KEY_FALLBACKS), so that rotating the key does not void everyone's codes."""
    keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return [recovery_code_hash(code, secret_key=key) for key in keys]


# --- WebAuthn ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RelyingParty:
    """Who the passkeys are for: the site's domain, and the origins pages may run on."""

    rp_id: str
    origins: tuple[str, ...]


@dataclass(frozen=True)
class VerifiedCredential:
    credential_id: str
    public_key: bytes
    sign_count: int


def webauthn_challenge_new() -> bytes:
    return secrets.token_bytes(32)


def _descriptors(credential_ids: list[str]) -> list[PublicKeyCredentialDescriptor]:
    return [PublicKeyCredentialDescriptor(id=base64url_to_bytes(cid)) for cid in credential_ids]


def registration_options(
    *, rp: RelyingParty, user_id: int, email: str, name: str, challenge: bytes, existing: list[str]
) -> dict[str, Any]:
    """Options for ``navigator.credentials.create()``: a discoverable credential, verified user."""
    options = generate_registration_options(
        rp_id=rp.rp_id,
        rp_name=TOTP_ISSUER,
        user_id=str(user_id).encode(),
        user_name=email,
        user_display_name=name or email,
        challenge=challenge,
        timeout=WEBAUTHN_TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.PREFERRED,
            user_verification=UserVerificationRequirement.PREFERRED,
        ),
        exclude_credentials=_descriptors(existing),
    )
    return json.loads(options_to_json(options))


def registration_verify(*, rp: RelyingParty, credential: dict, challenge: bytes) -> VerifiedCredential:
    try:
        verified = verify_registration_response(
            credential=credential,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=list(rp.origins),
        )
        if len(verified.credential_id) > CREDENTIAL_ID_MAX_BYTES:
            raise ValueError("credential ID longer than WebAuthn allows")
        # A public key that cannot verify would lock its owner out at the next sign-in.
        decoded_public_key_to_cryptography(decode_credential_public_key(verified.credential_public_key))
    # WebAuthnException: every way the package says a credential does not check out, malformed
    # JSON, CBOR or authenticator data included (not just InvalidRegistrationResponse); a CBOR
    # key of the wrong shape fails deeper (IndexError, a point not on its curve: ValueError).
    except (WebAuthnException, ValueError, LookupError, TypeError) as error:
        raise FactorInvalid("The passkey could not be registered; please try again.") from error
    return VerifiedCredential(
        credential_id=bytes_to_base64url(verified.credential_id),
        public_key=verified.credential_public_key,
        sign_count=verified.sign_count,
    )


def authentication_options(*, rp: RelyingParty, challenge: bytes, allowed: list[str]) -> dict[str, Any]:
    """Options for ``navigator.credentials.get()``; ``allowed`` empty: any discoverable passkey."""
    options = generate_authentication_options(
        rp_id=rp.rp_id,
        challenge=challenge,
        timeout=WEBAUTHN_TIMEOUT_MS,
        allow_credentials=_descriptors(allowed),
        user_verification=UserVerificationRequirement.PREFERRED,
    )
    return json.loads(options_to_json(options))


def credential_id_of(assertion: object) -> str:
    """The credential an assertion names (unverified: only to look the passkey up)."""
    if not isinstance(assertion, dict) or not isinstance(assertion.get("id"), str):
        raise FactorInvalid("This is not a passkey assertion.")
    return assertion["id"]


def authentication_verify(
    *, rp: RelyingParty, assertion: dict, challenge: bytes, public_key: bytes, sign_count: int,
    require_user_verification: bool,
) -> int:  # fmt: skip
    """Check the assertion against the stored key; returns the authenticator's new sign count."""
    try:
        verified = verify_authentication_response(
            credential=assertion,
            expected_challenge=challenge,
            expected_rp_id=rp.rp_id,
            expected_origin=list(rp.origins),
            credential_public_key=public_key,
            credential_current_sign_count=sign_count,
            require_user_verification=require_user_verification,
        )
    except (WebAuthnException, ValueError, KeyError, TypeError) as error:  # as in registration_verify
        raise FactorInvalid("The passkey could not be verified; please try again.") from error
    return verified.new_sign_count
