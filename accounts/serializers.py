"""Shapes of the token service's requests and responses (camelCase, as the contract says)."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.devices import DEVICE_TOKEN_MAX_LENGTH
from accounts.emails import email_canonical
from accounts.google import CREDENTIAL_MAX_LENGTH
from accounts.models import AuthMethod, SecondFactor
from config.env import duration_parse
from config.serializers import InputSerializer
from config.text import display_text_validator

DELIVERY_COOKIE, DELIVERY_BODY = "cookie", "body"
TOKEN_DELIVERY_CHOICES = (DELIVERY_COOKIE, DELIVERY_BODY)
PASSWORD_B64_MAX = 4096  # hashing is deliberately slow: refuse megabyte "passwords"
TOKEN_TTL_DEFAULT = timedelta(days=30)
CLIENT_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


@extend_schema_field(
    {
        "type": "string",
        "format": "byte",
        "maxLength": PASSWORD_B64_MAX,
        "pattern": "^[A-Za-z0-9+/]*={0,2}$",
        "description": "Base64 (RFC 4648, standard alphabet, padded) of the UTF-8 password, "
        'e.g. "aHVudGVyMg==" for hunter2.',
    }
)
class Base64PasswordField(serializers.CharField):
    """Base64 of the UTF-8 password, decoded to text; anything else is a 400 on this field."""

    default_error_messages = {"invalid_base64": "Send the password as base64 of its UTF-8 encoding."}

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("max_length", PASSWORD_B64_MAX)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data) -> str:
        encoded = super().to_internal_value(data)
        try:
            return base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
            self.fail("invalid_base64")


class CanonicalEmailField(serializers.EmailField):
    """An email address in its one canonical form (accounts.emails), or a 400 on this field."""

    def to_internal_value(self, data) -> str:
        try:
            return email_canonical(super().to_internal_value(data))
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.messages) from None


DEVICE_SENT_HELP = (
    'For clients without cookies (tokenDelivery "body"): the `deviceToken` an earlier sign-in to '
    "this account gave. Attempts that send it are counted on their own, so strangers' wrong "
    "passwords do not lock this client out."
)


def device_token_field() -> serializers.CharField:
    return serializers.CharField(
        max_length=DEVICE_TOKEN_MAX_LENGTH, required=False, trim_whitespace=False, help_text=DEVICE_SENT_HELP
    )


class LoginInputSerializer(InputSerializer):
    email = CanonicalEmailField(max_length=254)
    password = Base64PasswordField()
    tokenDelivery = serializers.ChoiceField(
        choices=TOKEN_DELIVERY_CHOICES, default=DELIVERY_COOKIE, required=False
    )
    deviceToken = device_token_field()


class GoogleSignInInputSerializer(InputSerializer):
    credential = serializers.CharField(
        max_length=CREDENTIAL_MAX_LENGTH,
        trim_whitespace=False,
        help_text="The ID token Sign in with Google hands the page (its `credential`).",
    )
    tokenDelivery = serializers.ChoiceField(
        choices=TOKEN_DELIVERY_CHOICES, default=DELIVERY_COOKIE, required=False
    )


class UserSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    isStaff = serializers.BooleanField()
    scopes = serializers.ListField(
        child=serializers.CharField(), help_text='Client slugs; ["*"] for operators.'
    )


DEVICE_ISSUED_HELP = (
    'Only with tokenDelivery "body", when the request sent no valid one: keep it with the '
    "credentials and send it with later sign-ins to this account (`deviceToken`). A browser gets "
    "it as an HttpOnly cookie instead."
)


class TokenResponseSerializer(serializers.Serializer):
    user = UserSerializer()
    expiresIn = serializers.IntegerField(help_text="Access token lifetime left, in milliseconds.")
    refreshTokenExpiresIn = serializers.IntegerField(
        help_text="Refresh token lifetime left, in milliseconds."
    )
    accessToken = serializers.CharField(required=False, help_text='Only with tokenDelivery "body".')
    refreshToken = serializers.CharField(required=False, help_text='Only with tokenDelivery "body".')
    deviceToken = serializers.CharField(required=False, help_text=DEVICE_ISSUED_HELP)


class SessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    createdAt = serializers.DateTimeField(source="created_at")
    lastSeenAt = serializers.DateTimeField(source="last_seen_at")
    userAgent = serializers.CharField(source="user_agent")
    ip = serializers.IPAddressField(allow_null=True)
    amr = serializers.ListField(
        child=serializers.ChoiceField(choices=[*AuthMethod.values, *SecondFactor.values]),
        help_text='How the sign-in was proven, e.g. ["password", "totp"] or ["passkey"].',
    )
    current = serializers.BooleanField()


class GoogleNonceSerializer(serializers.Serializer):
    nonce = serializers.CharField(
        help_text="Give it to Google's script; the same value waits in an httpOnly cookie."
    )


class CsrfSerializer(serializers.Serializer):
    csrfToken = serializers.CharField(
        help_text="Send it back as X-CSRFToken (also set as the csrftoken cookie)."
    )


class JwkSerializer(serializers.Serializer):
    kty = serializers.CharField()
    kid = serializers.CharField()
    use = serializers.CharField()
    alg = serializers.CharField()
    n = serializers.CharField(required=False)
    e = serializers.CharField(required=False)
    crv = serializers.CharField(required=False)
    x = serializers.CharField(required=False)


class JwksSerializer(serializers.Serializer):
    keys = JwkSerializer(many=True)


# --- Personal access tokens ------------------------------------------------------------------


@extend_schema_field(
    {
        "oneOf": [{"type": "integer", "minimum": 60}, {"type": "string", "pattern": "^[0-9]+[smhd]?$"}],
        "description": 'Seconds, or a number with a unit ("90d", "12h"); at most PAT_MAX_TTL (365d). '
        "Default 30 days.",
        "example": "90d",
    }
)
class DurationField(serializers.Field):
    """A lifetime: whole seconds, or a number with a unit, as the settings write durations."""

    default_error_messages = {"invalid": 'Enter seconds or a number with a unit, e.g. "90d".'}

    def to_internal_value(self, data) -> timedelta:
        if isinstance(data, int) and not isinstance(data, bool):
            data = str(data)
        # As the schema says, ^[0-9]+[smhd]?$: no spaces, which the settings' parser forgives.
        if not isinstance(data, str) or len(data) > 16 or not re.fullmatch(r"[0-9]+[smhd]?", data, re.ASCII):
            self.fail("invalid")
        try:
            duration = duration_parse(data)
        except ValueError:
            self.fail("invalid")
        if duration < settings.PAT_MIN_TTL:
            raise serializers.ValidationError("A token lives at least a minute.")
        return duration


class AccessTokenCreateInputSerializer(InputSerializer):
    name = serializers.CharField(
        max_length=100,
        validators=[display_text_validator],
        help_text="What the token is for, e.g. “CI deploys”.",
    )
    expiresIn = DurationField(required=False)  # TOKEN_TTL_DEFAULT when left out
    clients = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField(max_length=32), min_length=1, max_length=8),
        allow_empty=False,
        help_text='{"client1": ["view", "configure"]}: per client, what the token may do (view, configure, '
        "credentials, audit), at most what you can do now.",
    )

    def validate_clients(self, value: dict) -> dict:
        if len(value) > 100 or not all(CLIENT_NAME.fullmatch(name) for name in value):
            raise serializers.ValidationError("Name clients by their slugs (at most 100).")
        return value


class AccessTokenSerializer(serializers.Serializer):
    """Renders a ``PersonalAccessToken`` (never its secret, which is shown once, at creation)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    prefix = serializers.CharField(help_text="The token's first characters, e.g. qpt_1a2B3c4D.")
    clients = serializers.DictField(
        source="scopes", child=serializers.ListField(child=serializers.CharField())
    )
    createdAt = serializers.DateTimeField(source="created_at")
    expiresAt = serializers.DateTimeField(source="expires_at")
    lastUsedAt = serializers.DateTimeField(source="last_used_at", allow_null=True)
    lastUsedFrom = serializers.IPAddressField(source="last_used_from", allow_null=True)


class AccessTokenCreatedSerializer(AccessTokenSerializer):
    token = serializers.CharField(help_text="The secret: shown this once. Send it as Authorization: Bearer.")
