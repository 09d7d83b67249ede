"""Shapes of the token service's requests and responses (camelCase, as the contract says)."""

from __future__ import annotations

import base64
import binascii

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.emails import email_canonical
from accounts.google import CREDENTIAL_MAX_LENGTH

DELIVERY_COOKIE, DELIVERY_BODY = "cookie", "body"
TOKEN_DELIVERY_CHOICES = (DELIVERY_COOKIE, DELIVERY_BODY)
PASSWORD_B64_MAX = 4096  # hashing is deliberately slow: refuse megabyte "passwords"


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


class LoginInputSerializer(serializers.Serializer):
    email = CanonicalEmailField(max_length=254)
    password = Base64PasswordField()
    tokenDelivery = serializers.ChoiceField(
        choices=TOKEN_DELIVERY_CHOICES, default=DELIVERY_COOKIE, required=False
    )


class GoogleSignInInputSerializer(serializers.Serializer):
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


class TokenResponseSerializer(serializers.Serializer):
    user = UserSerializer()
    expiresIn = serializers.IntegerField(help_text="Access token lifetime left, in milliseconds.")
    refreshTokenExpiresIn = serializers.IntegerField(
        help_text="Refresh token lifetime left, in milliseconds."
    )
    accessToken = serializers.CharField(required=False, help_text='Only with tokenDelivery "body".')
    refreshToken = serializers.CharField(required=False, help_text='Only with tokenDelivery "body".')


class SessionSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    createdAt = serializers.DateTimeField(source="created_at")
    lastSeenAt = serializers.DateTimeField(source="last_seen_at")
    userAgent = serializers.CharField(source="user_agent")
    ip = serializers.IPAddressField(allow_null=True)
    amr = serializers.ListField(
        child=serializers.CharField(),
        help_text='How the sign-in was proven, e.g. ["password", "totp"] or ["passkey"].',
    )
    current = serializers.BooleanField()


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
