"""The system status as the API answers it (camelCase), from ``operations.selectors``' dataclasses."""

from __future__ import annotations

from rest_framework import serializers

_PROBE_OK = "Whether the probe could ask the dependency; false with `error` when it could not."
_PROBE_ERROR = "Why the probe failed: the error's class and first line, credentials removed; null when ok."


class DatabaseConnectionsSerializer(serializers.Serializer):
    inUse = serializers.IntegerField(source="connections_in_use")
    max = serializers.IntegerField(source="connections_max")

    def to_representation(self, instance):
        return None if instance.connections_in_use is None else super().to_representation(instance)


class DatabaseStatusSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text=_PROBE_OK)
    error = serializers.CharField(allow_null=True, help_text=_PROBE_ERROR)
    vendor = serializers.CharField(help_text="postgresql, mysql or sqlite.")
    serverVersion = serializers.CharField(source="server_version")
    connections = DatabaseConnectionsSerializer(
        source="*",
        allow_null=True,
        help_text="Client connections in use and the server's maximum; null for SQLite or on failure.",
    )
    roundTripMs = serializers.FloatField(
        source="round_trip_ms", allow_null=True, help_text="Time for `SELECT 1`, in milliseconds."
    )
    slow = serializers.BooleanField(allow_null=True, help_text="The round trip took over 100 ms.")


class CacheStatusSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text=_PROBE_OK)
    error = serializers.CharField(allow_null=True, help_text=_PROBE_ERROR)
    backend = serializers.CharField(help_text="redis, file or memory.")
    serverVersion = serializers.CharField(source="server_version", help_text="Redis only.")
    usedMemoryBytes = serializers.IntegerField(source="used_memory_bytes", allow_null=True)
    maxMemoryBytes = serializers.IntegerField(
        source="max_memory_bytes", allow_null=True, help_text="Redis's maxmemory; null when unlimited."
    )
    keys = serializers.IntegerField(allow_null=True, help_text="Keys in the cache (every prefix).")
    roundTripMs = serializers.FloatField(source="round_trip_ms", allow_null=True)


class GitopsRemoteSerializer(serializers.Serializer):
    configured = serializers.BooleanField(source="remote_configured", help_text="GITOPS_REMOTE_URL is set.")
    lastPushAt = serializers.DateTimeField(
        source="last_push_at",
        allow_null=True,
        help_text="When a delivery last left the remote holding every commit.",
    )
    lastPushCommit = serializers.CharField(source="last_push_commit")
    lastFailureAt = serializers.DateTimeField(
        source="last_failure_at", allow_null=True, help_text="When a delivery last left commits local."
    )
    lastFailureReason = serializers.CharField(
        source="last_failure_reason",
        help_text="Why the remote last failed, as git said it (a refusal: the hook's words); empty when never.",
    )


class GitopsStatusSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text=_PROBE_OK)
    error = serializers.CharField(allow_null=True, help_text=_PROBE_ERROR)
    remote = GitopsRemoteSerializer(source="*")
    pendingChanges = serializers.IntegerField(
        source="pending_changes", allow_null=True, help_text="Changes not on the remote yet (the outbox)."
    )
    oldestPendingAt = serializers.DateTimeField(source="oldest_pending_at", allow_null=True)
    oldestPendingAgeSeconds = serializers.FloatField(source="oldest_pending_age_seconds", allow_null=True)


class ArgoCDStatusSerializer(serializers.Serializer):
    configured = serializers.BooleanField(help_text="False until the Argo CD integration is configured.")
    ok = serializers.BooleanField(allow_null=True, help_text="Null when not configured.")
    error = serializers.CharField(allow_null=True, help_text=_PROBE_ERROR)
    clustersByState = serializers.DictField(
        source="clusters_by_state", child=serializers.IntegerField(), help_text="Clusters per Argo CD state."
    )
    clustersByStateError = serializers.CharField(
        source="clusters_by_state_error",
        allow_null=True,
        help_text="Argo CD answered but the portal's own count of the states (which revision holds which "
        "change) did not end within the probe's deadline, or failed; clustersByState is then empty. "
        "Null when counted.",
    )


class SigningKeySerializer(serializers.Serializer):
    kid = serializers.CharField()
    signing = serializers.BooleanField(help_text="This key signs new tokens; the others only verify.")
    createdAt = serializers.DateTimeField(
        source="created_at",
        allow_null=True,
        help_text="From the key file; null for keys given in the environment.",
    )
    ageSeconds = serializers.IntegerField(source="age_seconds", allow_null=True)


class SigningKeysStatusSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text=_PROBE_OK)
    error = serializers.CharField(allow_null=True, help_text=_PROBE_ERROR)
    algorithm = serializers.CharField()
    source = serializers.CharField(help_text="JWT_KEYS_DIR, JWT_PRIVATE_KEYS or JWT_SECRET.")
    keys = SigningKeySerializer(many=True)


class SystemStatusSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="Every probe answered ok (Argo CD only when configured).")
    checkedAt = serializers.DateTimeField(source="checked_at")
    database = DatabaseStatusSerializer()
    cache = CacheStatusSerializer()
    gitops = GitopsStatusSerializer()
    argocd = ArgoCDStatusSerializer()
    signingKeys = SigningKeysStatusSerializer(source="signing_keys")
