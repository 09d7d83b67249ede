"""Shapes of the clusters API: input serializers validate requests, output serializers render.

JSON keys are camelCase; fields name their model attribute with ``source=``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# ASCII digits only: no sign, no spaces, no other scripts' digits, no trailing newline.
_DIGITS = re.compile(r"[0-9]+")
# More digits than this is never a replica count; refusing early avoids huge int() conversions.
_DIGITS_MAX_LENGTH = 6


class ErrorSerializer(serializers.Serializer):
    """The one error body (config/exceptions.py)."""

    code = serializers.CharField(help_text="Stable snake_case code, e.g. permission_denied.")
    detail = serializers.CharField(help_text="A sentence for people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors by field (400 invalid_request only).",
    )


# --- Fields ---------------------------------------------------------------------------------


class WholeNumberField(serializers.Field):
    """A JSON integer within [min_value, max_value]; never a float or a boolean.

    With ``digit_strings=True`` a string of ASCII digits is accepted too (older clients send
    ``"3"``); anything else in a string is refused, so nothing but a number reaches the
    rendered Helm values. Bounds may be callables, read at validation time (settings).
    """

    default_error_messages = {
        "invalid": "Enter a whole number.",
        "range": "Ensure this value is between {min_value} and {max_value}.",
    }

    def __init__(self, *, min_value=None, max_value=None, digit_strings: bool = False, **kwargs) -> None:
        self.min_value, self.max_value, self.digit_strings = min_value, max_value, digit_strings
        super().__init__(**kwargs)

    @staticmethod
    def _bound(value):
        return value() if callable(value) else value

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, str) and self.digit_strings:
            if len(data) > _DIGITS_MAX_LENGTH or not _DIGITS.fullmatch(data):
                self.fail("invalid")
            data = int(data)
        if not isinstance(data, int):
            self.fail("invalid")
        low, high = self._bound(self.min_value), self._bound(self.max_value)
        if (low is not None and data < low) or (high is not None and data > high):
            self.fail("range", min_value=low, max_value=high)
        return data

    def to_representation(self, value: int) -> int:
        return value


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 1},
            {"type": "string", "pattern": "^[0-9]+$"},
        ],
        "description": "Replica count within REPLICAS_MIN..REPLICAS_MAX (default 1..10): "
        "an integer, or a string of digits.",
        "example": 3,
    }
)
class ReplicasField(WholeNumberField):
    def __init__(self, **kwargs) -> None:
        super().__init__(
            min_value=lambda: settings.REPLICAS_MIN,
            max_value=lambda: settings.REPLICAS_MAX,
            digit_strings=True,
            **kwargs,
        )


@extend_schema_field({"type": "integer", "minimum": 1, "description": "GiB; only grows."})
class StorageGiField(WholeNumberField):
    def __init__(self, **kwargs) -> None:
        super().__init__(min_value=1, max_value=lambda: settings.STORAGE_GI_MAX, **kwargs)


@extend_schema_field(OpenApiTypes.STR)
class BlankAsNullField(serializers.CharField):
    """Renders an empty string as null (no commit yet, no recorded author)."""

    def to_representation(self, value: Any) -> str | None:
        return str(value) if value else None


# --- Input ----------------------------------------------------------------------------------


class InputSerializer(serializers.Serializer):
    """Refuses unknown keys, and translates a service's ValidationError to the API's field names."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({str(name): ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)

    def service_error(self, exc: DjangoValidationError) -> serializers.ValidationError:
        if not hasattr(exc, "error_dict"):
            return serializers.ValidationError(exc.messages)
        api_names = {field.source: name for name, field in self.fields.items()}
        return serializers.ValidationError(
            {api_names.get(field, field): messages for field, messages in exc.message_dict.items()}
        )


class ClusterUpdateInputSerializer(InputSerializer):
    """At least one field; unknown fields are refused."""

    replicas = ReplicasField(required=False)
    version = serializers.CharField(required=False, help_text="One of QDRANT_VERSIONS.")
    storageGi = StorageGiField(source="storage_gi", required=False)

    def validate_version(self, value: str) -> str:
        if value not in settings.QDRANT_VERSIONS:
            raise serializers.ValidationError(f"Choose one of: {', '.join(settings.QDRANT_VERSIONS)}.")
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not attrs:
            raise serializers.ValidationError("Send at least one of: replicas, version, storageGi.")
        return attrs


# --- Output ---------------------------------------------------------------------------------


class ClientOutputSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class EndpointOutputSerializer(serializers.Serializer):
    rest = serializers.CharField(help_text="https://<host>:6333")
    grpc = serializers.CharField(help_text="<host>:6334")


class RevisionOutputSerializer(serializers.Serializer):
    """The latest change committed to the GitOps repository."""

    commit = serializers.CharField()
    pushed = serializers.BooleanField()
    committedAt = serializers.DateTimeField(source="committed_at", allow_null=True)
    author = BlankAsNullField(source="actor_email", allow_null=True)
    message = serializers.CharField()


class ClusterOutputSerializer(serializers.Serializer):
    """Renders a ``selectors.ClusterDetail``."""

    client = serializers.CharField(source="cluster.client.slug")
    name = serializers.CharField(source="cluster.slug")
    replicas = serializers.IntegerField(source="cluster.replicas")
    version = serializers.CharField(source="cluster.version")
    storageGi = serializers.IntegerField(source="cluster.storage_gi")
    endpoint = EndpointOutputSerializer()
    revision = RevisionOutputSerializer(allow_null=True)
    # Limits for the browser's form, so it needs no second request.
    allowedVersions = serializers.SerializerMethodField()
    replicasMin = serializers.SerializerMethodField()
    replicasMax = serializers.SerializerMethodField()
    storageGiMax = serializers.SerializerMethodField()

    def get_allowedVersions(self, detail) -> list[str]:
        return list(settings.QDRANT_VERSIONS)

    def get_replicasMin(self, detail) -> int:
        return settings.REPLICAS_MIN

    def get_replicasMax(self, detail) -> int:
        return settings.REPLICAS_MAX

    def get_storageGiMax(self, detail) -> int:
        return settings.STORAGE_GI_MAX


class CredentialsOutputSerializer(serializers.Serializer):
    """Renders a ``selectors.ClusterCredentials``."""

    endpoint = EndpointOutputSerializer()
    apiKey = serializers.CharField(source="api_key")
    readOnlyApiKey = serializers.CharField(source="read_only_api_key")


class HistoryEntryOutputSerializer(serializers.Serializer):
    """Renders a ``ClusterChange``."""

    commit = BlankAsNullField(allow_null=True, help_text="null until the change is committed to git.")
    author = BlankAsNullField(source="actor_email", allow_null=True)
    authorName = BlankAsNullField(source="actor_name", allow_null=True)
    at = serializers.DateTimeField(source="created_at")
    action = serializers.CharField()
    message = serializers.CharField()
    changes = serializers.DictField(help_text='{"replicas": [2, 3]}: field -> [before, after].')
    pushed = serializers.BooleanField()
