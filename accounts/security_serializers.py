"""Shapes of the account-security API: second factors, passkeys, re-authentication, passwords."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.serializers import (
    DELIVERY_COOKIE,
    DEVICE_ISSUED_HELP,
    TOKEN_DELIVERY_CHOICES,
    Base64PasswordField,
    CanonicalEmailField,
    device_token_field,
)
from config.field_alternatives import FieldAlternatives
from config.serializers import InputSerializer
from config.text import display_text_validator

WEBAUTHN_JSON_MAX = 16_384  # an attestation with certificates is a few kilobytes


class _TokenDeliveryMixin(InputSerializer):
    tokenDelivery = serializers.ChoiceField(
        choices=TOKEN_DELIVERY_CHOICES, default=DELIVERY_COOKIE, required=False
    )


@extend_schema_field({"type": "object", "additionalProperties": True})
class WebAuthnJSONField(serializers.JSONField):
    """A ``PublicKeyCredential`` as ``toJSON()`` gives it: an object, kept small."""

    def to_internal_value(self, data) -> dict:
        if not isinstance(data, dict):
            raise serializers.ValidationError(
                "Send the credential as a JSON object (PublicKeyCredential.toJSON())."
            )
        if len(str(data)) > WEBAUTHN_JSON_MAX:
            raise serializers.ValidationError("This credential is far larger than any passkey's.")
        return data


class MfaChallengeSerializer(serializers.Serializer):
    """A first factor passed; a second one is needed: no cookies were set."""

    mfaRequired = serializers.BooleanField(help_text="Always true here.")
    methods = serializers.ListField(
        child=serializers.ChoiceField(choices=["totp", "recovery", "webauthn"]),
        help_text="The second factors this account can use.",
    )
    mfaToken = serializers.CharField(
        help_text="Opaque, single use, valid 5 minutes: send it to /api/auth/mfa/verify."
    )
    deviceToken = serializers.CharField(required=False, help_text=DEVICE_ISSUED_HELP)


class MfaVerifyInputSerializer(_TokenDeliveryMixin):
    mfaToken = serializers.CharField(max_length=200)
    deviceToken = device_token_field()
    code = serializers.CharField(max_length=32, required=False, help_text="A TOTP code or a recovery code.")
    webauthn = WebAuthnJSONField(
        required=False, help_text="A passkey assertion (PublicKeyCredential.toJSON())."
    )

    field_alternatives = FieldAlternatives(
        alternatives=(("code",), ("webauthn",)),
        message="Send either a code or a passkey assertion (webauthn).",
    )

    def validate(self, attrs: dict) -> dict:
        self.field_alternatives.check(self, attrs)
        return attrs


class MfaTokenInputSerializer(InputSerializer):
    mfaToken = serializers.CharField(max_length=200)


class WebAuthnOptionsSerializer(serializers.Serializer):
    publicKey = serializers.DictField(help_text="For navigator.credentials.get() or create(), as JSON.")


class PasskeyCeremonySerializer(WebAuthnOptionsSerializer):
    token = serializers.CharField(help_text="Send it back with the browser's answer.")


class PasskeySignInInputSerializer(_TokenDeliveryMixin):
    token = serializers.CharField(max_length=200)
    webauthn = WebAuthnJSONField()


class PasskeyRegisterInputSerializer(InputSerializer):
    token = serializers.CharField(max_length=200)
    credential = WebAuthnJSONField()
    name = serializers.CharField(max_length=100, validators=[display_text_validator])


class PasskeyRenameInputSerializer(InputSerializer):
    name = serializers.CharField(max_length=100, validators=[display_text_validator])


class PasskeySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    createdAt = serializers.DateTimeField(source="created_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True)


class SecurityOverviewSerializer(serializers.Serializer):
    totp = serializers.BooleanField(help_text="An authenticator app is set up.")
    passkeys = PasskeySerializer(many=True)
    recoveryCodesLeft = serializers.IntegerField()
    mfaRequired = serializers.BooleanField(help_text="This account must have a second factor.")
    hasPassword = serializers.BooleanField()
    reauthenticatedUntil = serializers.DateTimeField(
        allow_null=True, help_text="Sensitive actions are allowed until then without confirming again."
    )


class TotpEnrolmentSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="Base32, for typing into an authenticator app.")
    otpauthUri = serializers.CharField()
    qrCode = serializers.CharField(help_text="The otpauth URI as an SVG QR code (a data: URI).")


class CodeInputSerializer(InputSerializer):
    code = serializers.CharField(max_length=32)


class RecoveryCodesSerializer(serializers.Serializer):
    recoveryCodes = serializers.ListField(
        child=serializers.CharField(), help_text="Shown once; each works once."
    )


class ReauthenticateInputSerializer(InputSerializer):
    password = Base64PasswordField(required=False)
    code = serializers.CharField(max_length=32, required=False, help_text="A TOTP or recovery code.")
    token = serializers.CharField(
        max_length=200, required=False, help_text="From /api/auth/reauthenticate/options, with webauthn."
    )
    webauthn = WebAuthnJSONField(
        required=False, help_text="A passkey assertion (PublicKeyCredential.toJSON())."
    )

    field_alternatives = FieldAlternatives(
        alternatives=(("password",), ("code",), ("webauthn", "token")),
        message="Send one of: your password, a code, or a passkey assertion with the token of its options.",
    )

    def validate(self, attrs: dict) -> dict:
        self.field_alternatives.check(self, attrs)
        return attrs


class PasswordChangeInputSerializer(InputSerializer):
    currentPassword = Base64PasswordField()
    newPassword = Base64PasswordField()


class PasswordResetInputSerializer(InputSerializer):
    # Checked as sign-in checks it: a typo is told at once. Whether an account has the address
    # is never told (every valid address is answered 202).
    email = CanonicalEmailField(max_length=254)


class PasswordResetCheckInputSerializer(InputSerializer):
    """A reset link's two parts (``#/reset/<uid>/<token>``)."""

    uid = serializers.CharField(max_length=64)
    token = serializers.CharField(max_length=128)


class PasswordResetCheckSerializer(serializers.Serializer):
    email = serializers.EmailField(help_text="The account the link resets (for password managers).")


class PasswordResetConfirmInputSerializer(PasswordResetCheckInputSerializer):
    """A reset link's two parts and the new password."""

    newPassword = Base64PasswordField()
