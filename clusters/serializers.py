"""Shapes of the clusters API: input serializers validate requests, output serializers render.

JSON keys are camelCase; fields name their model attribute with ``source=``.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clusters.deployment_states import DEPLOYMENT_STATES
from clusters.models import SPEC_FIELD_NAMES, ClusterChange
from clusters.selectors import (
    ROTATION_ONE_STEP,
    ROTATION_PHASE_ALTERNATE,
    ROTATION_TWO_PHASE,
    STORAGE_STATES,
)
from config.errors import InvalidRequest
from config.exceptions import validation_fields
from config.field_alternatives import FieldAlternatives
from config.serializers import InputSerializer

# ASCII digits only: no sign, no spaces, no other scripts' digits, no trailing newline.
_DIGITS = re.compile(r"[0-9]+")
# More digits than this is never a replica count; refusing early avoids huge int() conversions.
_DIGITS_MAX_LENGTH = 6


# --- Fields ---------------------------------------------------------------------------------


class WholeNumberField(serializers.Field):
    """A JSON integer; never a float or a boolean. The range is the service's policy.

    With ``digit_strings=True`` a string of ASCII digits is accepted too (older clients send
    ``"3"``); anything else in a string is refused, so nothing but a number reaches the
    rendered Helm values.
    """

    default_error_messages = {"invalid": "Enter a whole number."}

    def __init__(self, *, digit_strings: bool = False, **kwargs) -> None:
        self.digit_strings = digit_strings
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool):
            self.fail("invalid")
        if isinstance(data, str) and self.digit_strings:
            if len(data) > _DIGITS_MAX_LENGTH or not _DIGITS.fullmatch(data):
                self.fail("invalid")
            data = int(data)
        if not isinstance(data, int):
            self.fail("invalid")
        return data

    def to_representation(self, value: int) -> int:
        return value


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": settings.REPLICAS_MIN, "maximum": settings.REPLICAS_MAX},
            {"type": "string", "pattern": "^[0-9]+$", "maxLength": _DIGITS_MAX_LENGTH},
        ],
        "description": "Replica count within REPLICAS_MIN..REPLICAS_MAX (default 1..10): "
        "an integer, or a string of digits.",
        "example": 3,
    }
)
class ReplicasField(WholeNumberField):
    def __init__(self, **kwargs) -> None:
        super().__init__(digit_strings=True, **kwargs)


@extend_schema_field(
    {
        "type": "integer",
        "minimum": 1,
        "maximum": settings.STORAGE_GI_MAX,
        "description": "GiB; only grows. On an existing cluster a bigger size is a request that an "
        "operator carries out (202, `storage.state` `waiting_for_operator`).",
    }
)
class StorageGiField(WholeNumberField):
    pass


@extend_schema_field(OpenApiTypes.BOOL)
class StrictBooleanField(serializers.BooleanField):
    """A JSON ``true`` or ``false``; never ``"yes"``, ``"1"`` or ``1``, which DRF's field takes.

    A flag that makes a destructive change explicit must be sent as the schema says."""

    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


@extend_schema_field(OpenApiTypes.STR)
class BlankAsNullField(serializers.CharField):
    """Renders an empty string as null (no commit yet, no recorded author)."""

    def to_representation(self, value: Any) -> str | None:
        return str(value) if value else None


# --- Input ----------------------------------------------------------------------------------


def spec_errors(exc: DjangoValidationError) -> InvalidRequest:
    """A service's refusal, keyed by model fields, as the API's 400 keyed by API names."""
    fields = validation_fields(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    return InvalidRequest(
        fields={SPEC_FIELD_NAMES.get(name, name): messages for name, messages in fields.items()}
    )


@extend_schema_field({"type": "string", "enum": list(settings.QDRANT_VERSIONS)})
class QdrantVersionField(serializers.CharField):
    """A Qdrant release the portal offers (QDRANT_VERSIONS): the document lists them, the service
    decides which of them this cluster may move to."""


class ClusterUpdateInputSerializer(InputSerializer):
    """The shape of a change: at least one field, unknown fields refused. The service owns the policy."""

    replicas = ReplicasField(required=False)
    version = QdrantVersionField(
        required=False,
        max_length=128,
        help_text="One of the cluster's `allowedVersions`: upgrades only, one minor version at a time.",
    )
    storageGi = StorageGiField(source="storage_gi", required=False)
    confirm = StrictBooleanField(
        required=False,
        default=False,
        help_text="Required (true) to scale down: Qdrant does not move shards off a peer that disappears.",
    )

    field_alternatives = FieldAlternatives(
        alternatives=(("replicas",), ("version",), ("storageGi",)),
        exactly_one=False,
        message="Send at least one of: replicas, version, storageGi.",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        self.field_alternatives.check(self, attrs)
        return attrs


# --- Output ---------------------------------------------------------------------------------


class RestrictedClientSerializer(serializers.Serializer):
    """Renders a ``selectors.RestrictedClient``."""

    client = serializers.CharField(source="client.slug")
    name = serializers.CharField(source="client.name")
    unmet = serializers.ListField(
        child=serializers.ChoiceField(choices=["method", "google_domain", "second_factor", "session_age"]),
        help_text="What this session lacks: `method` (signed in another way than allowedMethods), "
        "`google_domain` (not with a Google account of googleDomain), `second_factor`, `session_age` "
        "(signed in longer ago than maxSessionLength): sign in again as asked, or add a second factor.",
    )
    allowedMethods = serializers.ListField(
        source="requirement.methods", child=serializers.CharField(), help_text="Empty: any."
    )
    googleDomain = serializers.CharField(source="requirement.google_domain")
    secondFactor = serializers.BooleanField(source="requirement.mfa")
    maxSessionLength = serializers.IntegerField(source="requirement.max_age", allow_null=True)


class PermissionsSerializer(serializers.Serializer):
    clients = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        help_text='{"client1": ["view", "configure", "credentials"]}; an admin also has "audit" and "members".',
    )
    isStaff = serializers.BooleanField()
    restricted = RestrictedClientSerializer(many=True)


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


class StorageOutputSerializer(serializers.Serializer):
    """Renders a ``selectors.ClusterStorage``."""

    currentGi = serializers.IntegerField(source="current_gi", help_text="The size deployed (= storageGi).")
    # Always present (null when no request waits): a missing expansion resolves to None.
    requestedGi = serializers.IntegerField(
        source="expansion.requested_gi", allow_null=True, help_text="null when none waits."
    )
    state = serializers.ChoiceField(
        choices=list(STORAGE_STATES),
        help_text="`waiting_for_operator` while a bigger size waits for an operator to expand the volumes.",
    )
    requestedAt = serializers.DateTimeField(source="expansion.requested_at", allow_null=True)
    requestedBy = BlankAsNullField(source="expansion.requested_by_email", allow_null=True)


class RotationOutputSerializer(serializers.Serializer):
    """Renders a ``selectors.KeyRotation``."""

    phase = serializers.ChoiceField(
        choices=[ROTATION_PHASE_ALTERNATE],
        help_text="`alternate_key_active`: the new key is accepted next to the old one.",
    )
    startedAt = serializers.DateTimeField(source="started_at")
    finishesAt = serializers.DateTimeField(
        source="finishes_at", help_text="When gitops_sync finishes the rotation unless the user does first."
    )


DEPLOYMENT_STATE_HELP = (
    "Where the latest change is on its way to the cluster. `pending`: committed but not pushed, or "
    "pushed and Argo CD has not picked it up yet (or is at a revision the portal's git repository does "
    "not have: `message` says so); `syncing`: Argo CD is applying it (a sync operation "
    "running, about to, or the pods starting: health `Progressing`); `deployed`: synced at a revision "
    "that holds the latest commit, and healthy; `degraded`: synced, but the health is `Degraded`, "
    "`Missing` or `Suspended`, or any of the above for longer than the deployment deadline (a rollout "
    "or sync that never ends, a change Argo CD never applies: `message` says why); `failed`: the sync operation failed or errored, or Argo CD "
    "cannot render the change (`message` has Argo CD's words); `unknown`: Argo CD could not be asked "
    "(not answering, refused the portal's token, no such Application yet), or it has applied the "
    "latest change but does not know the cluster's health yet (health `Unknown` or none); `message` "
    "says which."
)


class DeploymentOutputSerializer(serializers.Serializer):
    """Renders a ``deployments.Deployment``."""

    state = serializers.ChoiceField(choices=list(DEPLOYMENT_STATES), help_text=DEPLOYMENT_STATE_HELP)
    committedRevision = serializers.CharField(
        source="committed_revision",
        allow_null=True,
        help_text="The commit of the latest change (= revision.commit); null before the first commit.",
    )
    deployedRevision = serializers.CharField(
        source="deployed_revision",
        allow_null=True,
        help_text="The git revision of the values source Argo CD last compared the cluster to; null when "
        "Argo CD could not be asked.",
    )
    sync = serializers.CharField(
        allow_null=True, help_text="Argo CD's sync status: `Synced`, `OutOfSync` or `Unknown`."
    )
    health = serializers.CharField(
        allow_null=True,
        help_text="Argo CD's health status: `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing` "
        "or `Unknown`.",
    )
    message = serializers.CharField(help_text="What the state means for this cluster, in words for people.")
    checkedAt = serializers.DateTimeField(
        source="checked_at",
        allow_null=True,
        help_text="When Argo CD was asked (statuses are cached a few seconds).",
    )


ROTATION_MODE_HELP = (
    "`two_phase` (Qdrant v1.17.0 and later: the new key is accepted next to the old one until the "
    "rotation finishes) or `one_step` (the old keys stop working as the pods restart)."
)


class ClusterOutputSerializer(serializers.Serializer):
    """Renders a ``selectors.ClusterDetail``."""

    client = serializers.CharField(source="cluster.client.slug")
    name = serializers.CharField(source="cluster.slug")
    replicas = serializers.IntegerField(source="cluster.replicas")
    version = serializers.CharField(source="cluster.version")
    storageGi = serializers.IntegerField(source="cluster.storage_gi", help_text="GiB deployed.")
    storage = StorageOutputSerializer()
    endpoint = EndpointOutputSerializer()
    revision = RevisionOutputSerializer(allow_null=True)
    rotation = RotationOutputSerializer(
        allow_null=True, help_text="null when no key rotation is in progress."
    )
    rotationMode = serializers.ChoiceField(
        source="rotation_mode", choices=[ROTATION_TWO_PHASE, ROTATION_ONE_STEP], help_text=ROTATION_MODE_HELP
    )
    allowedVersions = serializers.ListField(
        source="allowed_versions",
        child=serializers.CharField(),
        help_text="The current version first, then every version the cluster may move to.",
    )
    deployment = DeploymentOutputSerializer(
        allow_null=True,
        help_text="As Argo CD reports it; null when the portal has no Argo CD (ARGOCD_URL unset).",
    )
    # Limits for the browser's form, so it needs no second request.
    replicasMin = serializers.SerializerMethodField()
    replicasMax = serializers.SerializerMethodField()
    storageGiMax = serializers.SerializerMethodField()

    def get_replicasMin(self, detail) -> int:
        return settings.REPLICAS_MIN

    def get_replicasMax(self, detail) -> int:
        return settings.REPLICAS_MAX

    def get_storageGiMax(self, detail) -> int:
        return settings.STORAGE_GI_MAX


class CredentialsOutputSerializer(serializers.Serializer):
    """Renders a ``selectors.ClusterCredentials``."""

    endpoint = EndpointOutputSerializer()
    apiKey = serializers.CharField(
        source="api_key", help_text="The key to use; during a rotation the new one (the old one still works)."
    )
    readOnlyApiKey = serializers.CharField(source="read_only_api_key")
    rotation = RotationOutputSerializer(
        allow_null=True, help_text="null when no key rotation is in progress."
    )
    rotationMode = serializers.ChoiceField(
        source="rotation_mode", choices=[ROTATION_TWO_PHASE, ROTATION_ONE_STEP], help_text=ROTATION_MODE_HELP
    )


class PageQuerySerializer(serializers.Serializer):
    """``?before=<id>``: the page after the one that ended with that id (the audit trail, a history)."""

    before = serializers.IntegerField(
        required=False, min_value=1, help_text="The last id of the previous page."
    )


class HistoryEntryOutputSerializer(serializers.Serializer):
    """Renders a ``ClusterChange``."""

    id = serializers.IntegerField(help_text="For `?before=` (the next page).")
    commit = BlankAsNullField(
        allow_null=True,
        help_text="null until the change is committed to git; always null for entries that change nothing "
        "in git (`storage_request`, `storage_request_cancel`).",
    )
    author = BlankAsNullField(source="actor_email", allow_null=True)
    authorName = BlankAsNullField(source="actor_name", allow_null=True)
    at = serializers.DateTimeField(source="created_at")
    action = serializers.ChoiceField(choices=ClusterChange.Action.values)
    message = serializers.CharField()
    changes = serializers.DictField(help_text='{"replicas": [2, 3]}: field -> [before, after].')
    pushed = serializers.BooleanField(
        source="delivered",
        allow_null=True,
        help_text="Whether the git remote has it; null for entries that change nothing in git "
        "(`storage_request`, `storage_request_cancel`).",
    )
    via = serializers.SerializerMethodField(
        help_text="The credential the request used: `session <id>` or `personal access token #<id> "
        "“<name>”`, shown to the client's admins signed in (as the audit trail); null for everyone "
        "else, for changes made in the portal's admin or by the system, and for the portal's "
        "operators, whose credentials are not the client's to see."
    )
    ip = serializers.SerializerMethodField(
        help_text="Where the request came from, when recorded; null as for `via`."
    )

    def _origin_shown(self, change: ClusterChange) -> bool:
        # An operator's internal address and session ids stay with the operators (the admin shows
        # them); whether the actor was one is recorded with the change. ``origins``: the view's
        # word that the reader may see the audit trail.
        return bool(self.context.get("origins")) and not change.by_operator

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_via(self, change: ClusterChange) -> str | None:
        return (change.credential or None) if self._origin_shown(change) else None

    @extend_schema_field(serializers.IPAddressField(allow_null=True))
    def get_ip(self, change: ClusterChange) -> str | None:
        return change.ip if self._origin_shown(change) else None
