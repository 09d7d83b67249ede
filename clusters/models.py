from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

SLUG_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$"
slug_validator = RegexValidator(
    SLUG_PATTERN,
    "Use 1 to 40 lower-case letters, digits and inner hyphens (e.g. “client1”).",
    code="invalid_slug",
)

# A cluster's desired state: model field -> the name the API, the change history and the
# GitOps overrides use for it. Declared once; everything that translates reads this.
SPEC_FIELD_NAMES = {"replicas": "replicas", "version": "version", "storage_gi": "storageGi"}

# Hard limits the database enforces whatever the settings say (settings narrow them further).
REPLICAS_HARD_MAX = 100
STORAGE_GI_HARD_MAX = 65_536


class Client(models.Model):
    """A tenant: a company whose users see and change only its own clusters."""

    slug = models.CharField(max_length=40, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=200)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(slug__regex=SLUG_PATTERN), name="clusters_client_slug_format"
            ),
        ]

    def __str__(self) -> str:
        return self.slug


class Cluster(models.Model):
    """One Qdrant deployment of a client: the desired state that GitOps renders to git."""

    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="clusters")
    slug = models.CharField(max_length=40, validators=[slug_validator])
    replicas = models.PositiveSmallIntegerField(default=1)
    version = models.CharField(max_length=32)
    storage_gi = models.PositiveIntegerField("storage (GiB)", default=10)
    # API keys are stored encrypted (clusters.crypto); these columns never hold plaintext.
    api_key_encrypted = models.TextField(editable=False, default="")
    read_only_api_key_encrypted = models.TextField(editable=False, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["client__slug", "slug"]
        constraints = [
            models.UniqueConstraint(fields=["client", "slug"], name="clusters_cluster_unique_slug"),
            models.CheckConstraint(
                condition=models.Q(slug__regex=SLUG_PATTERN), name="clusters_cluster_slug_format"
            ),
            models.CheckConstraint(
                condition=models.Q(replicas__gte=1, replicas__lte=REPLICAS_HARD_MAX),
                name="clusters_cluster_replicas_range",
            ),
            models.CheckConstraint(
                condition=models.Q(storage_gi__gte=1, storage_gi__lte=STORAGE_GI_HARD_MAX),
                name="clusters_cluster_storage_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client.slug}/{self.slug}"


class Grant(models.Model):
    """What one user may do for one client."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer (view clusters)"
        OPERATOR = "operator", "Operator (view, configure, credentials)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="grants")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="grants")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["client__slug", "user__email"]
        constraints = [
            models.UniqueConstraint(fields=["user", "client"], name="clusters_grant_unique_user_client"),
            models.CheckConstraint(
                condition=models.Q(role__in=["viewer", "operator"]), name="clusters_grant_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.client} ({self.role})"


class ClusterChange(models.Model):
    """One change to a cluster's desired state, and how far it got towards the git remote.

    This is the GitOps outbox: the row is written in the same transaction as the change;
    ``commit`` is filled once the change is committed to the local repository and
    ``pushed`` once the remote has it.
    """

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        CREDENTIALS_ROTATE = "credentials_rotate", "Credentials rotated"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="changes")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Snapshots, so history stays readable after the user is renamed or deleted.
    actor_email = models.EmailField(blank=True)
    actor_name = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=32, choices=Action.choices)
    changes = models.JSONField(default=dict, help_text='{"replicas": [2, 3], ...}')
    message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    commit = models.CharField(max_length=64, blank=True, db_index=True)
    committed_at = models.DateTimeField(null=True, blank=True)
    pushed = models.BooleanField(default=False, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(action__in=["create", "update", "credentials_rotate"]),
                name="clusters_change_action_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(pushed=False) | ~models.Q(commit=""),
                name="clusters_change_pushed_has_commit",
            ),
        ]

    def __str__(self) -> str:
        return self.message or f"{self.cluster} {self.action}"
