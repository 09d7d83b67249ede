from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from clusters.team_models import RemovedMember  # noqa: F401  (a model of this app, found here)
from clusters.validators import SLUG_PATTERN, client_slug_validator, slug_validator
from config.text import display_text_validator

# A cluster's desired state: model field -> the name the API, the change history and the
# GitOps overrides use for it. Declared once; everything that translates reads this.
SPEC_FIELD_NAMES = {"replicas": "replicas", "version": "version", "storage_gi": "storageGi"}

# History entries that change nothing in git (a storage request waits for an operator): they
# are never delivered and never carry a commit.
RECORD_ONLY_ACTIONS = ("storage_request", "storage_request_cancel")
# Changes after which the pods must restart to read new API keys from their Secret.
KEY_ACTIONS = ("create", "credentials_rotate", "credentials_rotate_finish")

# Hard limits the database enforces whatever the settings say (settings narrow them further).
REPLICAS_HARD_MAX = 100
STORAGE_GI_HARD_MAX = 65_536


class Client(models.Model):
    """A tenant: a company whose users see and change only its own clusters."""

    slug = models.CharField(max_length=40, unique=True, validators=[slug_validator, client_slug_validator])
    name = models.CharField(max_length=200, validators=[display_text_validator])
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
    # API keys are stored encrypted (config.crypto); these columns never hold plaintext.
    api_key_encrypted = models.TextField(editable=False, default="")
    read_only_api_key_encrypted = models.TextField(editable=False, default="")
    # During a two-phase key rotation (Qdrant's ``alt_api_key``): the new key, accepted next to
    # ``api_key`` until the rotation finishes, at the latest at ``rotation_finishes_at``.
    alt_api_key_encrypted = models.TextField(editable=False, default="")
    rotation_started_at = models.DateTimeField(null=True, blank=True, editable=False)
    rotation_finishes_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Set once each, by ``clusters.services.decommission``: decommissioned, the cluster is stopped
    # (zero replicas in git) and nobody can read or change it any more; removed, its folder is
    # gone from git. The row stays for its history and keeps its name taken.
    decommissioned_at = models.DateTimeField(null=True, blank=True, editable=False, db_index=True)
    removed_at = models.DateTimeField("removed from git at", null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["client__slug", "slug"]
        # Beyond changing a cluster: irreversible, so an operator may be denied it alone.
        permissions = [("decommission_cluster", "Can decommission a cluster and remove it from git")]
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
            models.CheckConstraint(
                condition=models.Q(removed_at=None) | models.Q(decommissioned_at__isnull=False),
                name="clusters_cluster_removed_after_decommissioned",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(alt_api_key_encrypted="", rotation_started_at=None, rotation_finishes_at=None)
                    | (
                        ~models.Q(alt_api_key_encrypted="")
                        & models.Q(rotation_started_at__isnull=False, rotation_finishes_at__isnull=False)
                    )
                ),
                name="clusters_cluster_rotation_complete",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client.slug}/{self.slug}"

    @property
    def rotation_in_progress(self) -> bool:
        return bool(self.alt_api_key_encrypted)

    @property
    def decommissioned(self) -> bool:
        return self.decommissioned_at is not None

    @property
    def removed(self) -> bool:
        return self.removed_at is not None


class Grant(models.Model):
    """What one user may do for one client."""

    class Role(models.TextChoices):
        VIEWER = "viewer", "Viewer (view clusters)"
        OPERATOR = "operator", "Operator (view, configure, credentials)"
        ADMIN = "admin", "Admin (view, configure, credentials, manage members)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="grants")
    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="grants")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["client__slug", "user__email"]
        constraints = [
            models.UniqueConstraint(fields=["user", "client"], name="clusters_grant_unique_user_client"),
            models.CheckConstraint(
                condition=models.Q(role__in=["viewer", "operator", "admin"]), name="clusters_grant_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} → {self.client} ({self.role})"


class ClusterChange(models.Model):
    """One change to a cluster's desired state, and how far it got towards the git remote.

    This is the GitOps outbox: the row is written in the same transaction as the change;
    ``commit`` is filled once the change is committed to the local repository and
    ``pushed`` once the remote has it. Entries of ``RECORD_ONLY_ACTIONS`` are history only:
    they change nothing in git, so they are never delivered and keep an empty ``commit``.
    """

    class Action(models.TextChoices):
        CREATE = "create", "Created"
        UPDATE = "update", "Updated"
        CREDENTIALS_ROTATE = "credentials_rotate", "Credentials rotated"
        CREDENTIALS_ROTATE_FINISH = "credentials_rotate_finish", "Key rotation finished"
        STORAGE_REQUEST = "storage_request", "Storage expansion requested"
        STORAGE_REQUEST_CANCEL = "storage_request_cancel", "Storage expansion cancelled"
        STORAGE_EXPAND = "storage_expand", "Storage expanded"
        DECOMMISSION = "decommission", "Decommissioned (stopped)"
        REMOVE = "remove", "Removed from git"

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
    # How an API request asked for it: the credential (``session <id>`` or ``personal access
    # token #<id> “<name>”``, never a secret) and the address. Empty for the admin, the
    # management commands and the system.
    credential = models.CharField(max_length=255, blank=True)
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    # Whether the actor was one of the portal's operators: their address and credential are
    # then not the client's to see (as in ClientAuditEvent; the admin shows them).
    by_operator = models.BooleanField(default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    action__in=[
                        "create",
                        "update",
                        "credentials_rotate",
                        "credentials_rotate_finish",
                        "storage_request",
                        "storage_request_cancel",
                        "storage_expand",
                        "decommission",
                        "remove",
                    ]
                ),
                name="clusters_change_action_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(pushed=False) | ~models.Q(commit=""),
                name="clusters_change_pushed_has_commit",
            ),
        ]

    def __str__(self) -> str:
        return self.message or f"{self.cluster} {self.action}"

    @property
    def delivered(self) -> bool | None:
        """Whether the git remote has it; None for history only (``RECORD_ONLY_ACTIONS``)."""
        return None if self.action in RECORD_ONLY_ACTIONS else self.pushed


class StorageExpansion(models.Model):
    """A request to grow a cluster's volumes, carried out by an operator.

    Kubernetes refuses any change to an existing StatefulSet's ``volumeClaimTemplates``, so the
    portal never commits a bigger ``persistence.size`` on its own: an operator expands the
    volumes, then marks the request done, which commits the new size (README: "Cluster
    operations"). At most one request per cluster is pending.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Waiting for an operator"
        DONE = "done", "Done"
        CANCELLED = "cancelled", "Cancelled"

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="storage_expansions")
    from_gi = models.PositiveIntegerField("from (GiB)")
    requested_gi = models.PositiveIntegerField("requested (GiB)")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_by_email = models.EmailField(blank=True)
    requested_at = models.DateTimeField(default=timezone.now)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    resolved_by_email = models.EmailField(blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["cluster"],
                condition=models.Q(state="pending"),
                name="clusters_storage_expansion_one_pending",
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=["pending", "done", "cancelled"]),
                name="clusters_storage_expansion_state_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(
                    requested_gi__gt=models.F("from_gi"), requested_gi__lte=STORAGE_GI_HARD_MAX
                ),
                name="clusters_storage_expansion_grows",
            ),
            models.CheckConstraint(
                condition=models.Q(state="pending", resolved_at=None)
                | (~models.Q(state="pending") & models.Q(resolved_at__isnull=False)),
                name="clusters_storage_expansion_resolved_when_closed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.cluster}: {self.from_gi}Gi -> {self.requested_gi}Gi ({self.get_state_display()})"


class GitopsRemoteState(models.Model):
    """The GitOps remote as deliveries last found it: when it last took every commit, when it last did not.

    One row (``pk=1``), written by ``clusters.delivery`` under the push lock at the end of each
    delivery to a remote, so every replica and ``gitops_sync`` report to the same place; the
    operators' status page reads it. Not per change: a push also carries ``client.yaml`` and sync
    commits, and what matters to an operator is whether the remote is taking pushes at all.
    """

    SINGLETON_ID = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=SINGLETON_ID, editable=False)
    last_push_at = models.DateTimeField(null=True, blank=True)
    last_push_commit = models.CharField(max_length=64, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    # Why the remote last failed, as git said it: for the operators' status page.
    last_failure_reason = models.CharField(max_length=300, blank=True)
    # When a write after the pause took the one retry (clusters.remote.remote_resting).
    retry_claimed_at = models.DateTimeField(null=True, blank=True)
    # The branch tip whose changes the database lacked when an operator had its state written
    # over them (gitops_sync --database-wins): they are decided on (clusters.lost_changes). A
    # restored backup brings its own value back, so the changes it lost are seen again.
    changes_accepted_commit = models.CharField(max_length=64, blank=True)

    class Meta:
        verbose_name = "GitOps remote state"
        constraints = [
            models.CheckConstraint(condition=models.Q(id=1), name="clusters_gitopsremotestate_singleton"),
        ]

    def __str__(self) -> str:
        return f"last push {self.last_push_at or 'never'}, last failure {self.last_failure_at or 'never'}"


# --- Teams: invitations, the client's audit trail, its sign-in policy ------------------------


class Invitation(models.Model):
    """An email asking someone to join a client's team with a role; its link works once.

    Only a hash of the link's token is stored. Pending means neither accepted, revoked nor
    expired; one pending invitation per address and client (a new one replaces it).
    """

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField(max_length=254)
    role = models.CharField(max_length=16, choices=Grant.Role.choices)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    invited_by_email = models.EmailField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "email"],
                condition=models.Q(accepted_at=None, revoked_at=None),
                name="clusters_invitation_one_open_per_email",
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=["viewer", "operator", "admin"]),
                name="clusters_invitation_role_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(accepted_at=None) | models.Q(revoked_at=None),
                name="clusters_invitation_accepted_or_revoked",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} → {self.client} ({self.role})"

    @property
    def state(self) -> str:
        if self.accepted_at is not None:
            return "accepted"
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= timezone.now() else "pending"


class ClientAuditEvent(models.Model):
    """Who changed what about a client's team and sign-in policy, and who read its clusters' API
    keys: kept for its admins and operators."""

    class Type(models.TextChoices):
        MEMBER_INVITED = "member_invited", "Invitation sent"
        INVITATION_REVOKED = "invitation_revoked", "Invitation revoked"
        INVITATION_ACCEPTED = "invitation_accepted", "Invitation accepted"
        MEMBER_ADDED = "member_added", "Member added"
        MEMBER_PROVISIONED = "member_provisioned", "Member provisioned by Google sign-in"
        MEMBER_ROLE_CHANGED = "member_role_changed", "Member role changed"
        MEMBER_REMOVED = "member_removed", "Member removed"
        MEMBER_DEACTIVATED = "member_deactivated", "Member's account deactivated"
        MEMBER_REACTIVATED = "member_reactivated", "Member's account reactivated"
        POLICY_CHANGED = "policy_changed", "Sign-in policy changed"
        TOKEN_ACCESS_REVOKED = "token_access_revoked", "Access token's access revoked"
        CREDENTIALS_REVEALED = "credentials_revealed", "Cluster API keys revealed"
        CLUSTER_DECOMMISSIONED = "cluster_decommissioned", "Cluster decommissioned"

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="audit_events")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    type = models.CharField(max_length=32, choices=Type.choices)
    # Snapshots next to the links: the trail stays readable after a user is renamed or deleted.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_email = models.CharField(max_length=254, blank=True)
    target_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    target_email = models.CharField(max_length=254, blank=True)
    # The slug of the cluster the event is about (a reveal of its keys, its decommissioning).
    cluster = models.CharField(max_length=40, blank=True)
    ip = models.GenericIPAddressField("IP address", null=True, blank=True)
    detail = models.CharField(max_length=255, blank=True)
    # Whether the actor was one of the portal's operators when it happened: their address and
    # credential are then not the client's to see (the admin shows them).
    by_operator = models.BooleanField(default=False)

    class Meta:
        ordering = ["-at", "-id"]
        verbose_name = "client audit event"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(
                    type__in=[
                        "member_invited",
                        "invitation_revoked",
                        "invitation_accepted",
                        "member_added",
                        "member_provisioned",
                        "member_role_changed",
                        "member_removed",
                        "member_deactivated",
                        "member_reactivated",
                        "policy_changed",
                        "token_access_revoked",
                        "credentials_revealed",
                        "cluster_decommissioned",
                    ]
                ),
                name="clusters_clientauditevent_type_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.client} {self.type} {self.target_email}"


class SignInPolicy(models.Model):
    """How a client's members must sign in for a session to reach it (no row: any way at all).

    Members whose session does not satisfy it keep their grant, but the session's scope leaves
    the client out (accounts.scopes); ``/api/auth/permissions`` says what they need.
    """

    class Method(models.TextChoices):
        PASSWORD = "password", "Password"
        GOOGLE = "google", "Google"
        PASSKEY = "passkey", "Passkey"

    # What an admin chooses (the rest is bookkeeping): the admin's form and the audit trail.
    SETTINGS = (
        "allowed_methods",
        "google_domain",
        "mfa_required",
        "max_session_length",
        "jit_provisioning",
        "jit_role",
    )

    client = models.OneToOneField(
        Client, on_delete=models.CASCADE, primary_key=True, related_name="sign_in_policy"
    )
    allowed_methods = models.JSONField(
        default=list, blank=True, help_text='["password", "google", "passkey"]'
    )
    google_domain = models.CharField(
        "required Google Workspace domain", max_length=253, blank=True, help_text="e.g. example.com (hd)"
    )
    mfa_required = models.BooleanField("second factor required", default=False)
    max_session_length = models.DurationField(null=True, blank=True, help_text="e.g. 8:00:00")
    jit_provisioning = models.BooleanField(
        "just-in-time provisioning",
        default=False,
        help_text="Google sign-ins from the required Workspace become members (with the role below).",
    )
    jit_role = models.CharField(
        "role of provisioned members", max_length=16, choices=Grant.Role.choices, default=Grant.Role.VIEWER
    )
    updated_at = models.DateTimeField(default=timezone.now)
    updated_by_email = models.CharField(max_length=254, blank=True)

    class Meta:
        verbose_name = "sign-in policy"
        verbose_name_plural = "sign-in policies"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(jit_role__in=["viewer", "operator"]),
                name="clusters_signinpolicy_jit_role_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(jit_provisioning=False) | ~models.Q(google_domain=""),
                name="clusters_signinpolicy_jit_needs_domain",
            ),
        ]

    def __str__(self) -> str:
        return f"sign-in policy of {self.client}"
