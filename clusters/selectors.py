"""Reads for clients, clusters and grants."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery
from django.utils.crypto import salted_hmac

from accounts.models import User
from accounts.scopes import CredentialScope, SignInRequirement, UserScope, unmet_sentence
from clusters.deployments import (
    CLIENT_LABEL,
    Deployment,
    client_selector,
    cluster_deployment,
    clusters_deployments,
)
from clusters.models import (
    RECORD_ONLY_ACTIONS,
    Client,
    Cluster,
    ClusterChange,
    GitopsRemoteState,
    Grant,
    SignInPolicy,
    StorageExpansion,
)
from clusters.permissions import (
    ALL_PERMISSIONS,
    PERMISSION_MEMBERS,
    PERMISSION_VIEW,
    ROLE_ORDER,
    ROLE_PERMISSIONS,
    TOKEN_PERMISSIONS,
    role_rank,
    roles_with,
)
from clusters.versions import version_supports_alt_api_key, version_upgrades
from config.crypto import CLUSTER_API_KEYS, field_decrypt
from config.errors import ClusterDecommissioned, NotFound, PermissionDenied, StepUpRequired


def user_is_global_operator(*, user: User) -> bool:
    return bool(user.is_active and user.is_staff and user.is_operator)


def actor_rank(*, actor: User | None, client: Client) -> int:
    """How high ``actor`` stands on ``client``: their role's rank, above every role for operator staff."""
    if actor is None or not actor.is_active:  # a deactivated admin runs nothing, their open links included
        return -1
    if user_is_global_operator(user=actor):
        return len(ROLE_ORDER)
    if client.pk is None:  # a client being created (the admin's add page): nobody has a role on it yet
        return -1
    return role_rank(Grant.objects.filter(user=actor, client=client).values_list("role", flat=True).first())


def _credential_scope(user: User) -> CredentialScope | None:
    """What the request's credential reaches (a session's sign-in, a token's scopes); None: no narrowing."""
    return getattr(user, "credential_scope", None)


def user_client_permissions(*, user: User) -> dict[str, list[str]]:
    """``{"client1": ["view", "configure", "credentials"], ...}``: the user's current grants, as far as
    the request's credential reaches (an admin's role adds ``audit`` and ``members``)."""
    if not user.is_active:
        return {}
    if user_is_global_operator(user=user):
        slugs = Client.objects.filter(active=True).values_list("slug", flat=True)
        found = {slug: list(ALL_PERMISSIONS) for slug in slugs}
    else:
        grants = Grant.objects.filter(user=user, client__active=True).values_list("client__slug", "role")
        found = {slug: list(ROLE_PERMISSIONS[role]) for slug, role in grants}
    scope = _credential_scope(user)
    if scope is None:
        return found
    narrowed = {slug: [p for p in held if scope.allows(slug, p)] for slug, held in found.items()}
    return {slug: held for slug, held in narrowed.items() if held}


def sign_in_requirement(policy: SignInPolicy | None) -> SignInRequirement | None:
    """What a client's policy asks of a session (None: nothing, the default)."""
    if policy is None:
        return None
    methods = (
        tuple(sorted(policy.allowed_methods))
        if set(policy.allowed_methods) != set(SignInPolicy.Method.values)
        else ()
    )
    requirement = SignInRequirement(
        methods=methods,
        google_domain=policy.google_domain,
        mfa=policy.mfa_required,
        max_age=int(policy.max_session_length.total_seconds()) if policy.max_session_length else None,
    )
    return requirement if requirement != SignInRequirement() else None


def user_scope(*, user: User) -> UserScope:
    """The user's clients, each one's permissions and sign-in requirement, in one query.

    Named by the ``SCOPE_CLAIM_FUNCTION`` setting: this is how the token service asks.
    Operator staff reach every client (``*``), whatever the clients' policies.
    """
    if user_is_global_operator(user=user):
        return UserScope(scope="*", token_permissions=TOKEN_PERMISSIONS)
    if not user.is_active:
        return UserScope(scope="", token_permissions=TOKEN_PERMISSIONS)
    grants = Grant.objects.filter(user=user, client__active=True).select_related("client__sign_in_policy")
    permissions, requirements = {}, {}
    for grant in grants:
        permissions[grant.client.slug] = ROLE_PERMISSIONS[grant.role]
        requirement = sign_in_requirement(getattr(grant.client, "sign_in_policy", None))
        if requirement is not None:
            requirements[grant.client.slug] = requirement
    return UserScope(
        scope=" ".join(sorted(permissions)),
        permissions=permissions,
        requirements=requirements,
        token_permissions=TOKEN_PERMISSIONS,
    )


@dataclass(frozen=True)
class RestrictedClient:
    """A client the user belongs to that this session does not reach, and what its policy asks."""

    client: Client
    unmet: tuple[str, ...]
    requirement: SignInRequirement


def restricted_clients(*, user: User) -> list[RestrictedClient]:
    """The user's clients whose sign-in policy the request's session does not satisfy (none for tokens)."""
    scope = _credential_scope(user)
    if scope is None or not scope.withheld:
        return []
    clients = Client.objects.filter(slug__in=scope.withheld, active=True).order_by("slug")
    return [RestrictedClient(c, scope.withheld[c.slug], scope.requirements[c.slug]) for c in clients]


# --- Object access: fetch and authorize in one step (Zulip's access_* functions) -------------


def client_access(*, user: User, client_slug: str, permission: str) -> Client:
    """The active client ``client_slug`` if ``user`` holds ``permission`` on it.

    Raises PermissionDenied when the client is outside the user's grants, whether or not it
    exists, so that the answer does not reveal which clients exist.
    """
    if not user.is_active:
        raise PermissionDenied()
    if user_is_global_operator(user=user):
        client = Client.objects.filter(slug=client_slug, active=True).first()
    else:
        grant = (
            Grant.objects.select_related("client")
            .filter(user=user, client__slug=client_slug, client__active=True, role__in=roles_with(permission))
            .first()
        )
        client = grant.client if grant is not None else None
    if client is None:
        raise PermissionDenied()
    scope = _credential_scope(user)
    if scope is not None and not scope.allows(client.slug, permission):
        if client.slug in scope.withheld:  # a member, whose session's sign-in does not do for this client
            raise StepUpRequired(f"{client.name} asks you to {unmet_sentence(scope.withheld[client.slug])}.")
        raise PermissionDenied()
    return client


def cluster_access(*, user: User, client_slug: str, cluster_slug: str, permission: str) -> Cluster:
    """The cluster if ``user`` holds ``permission`` on its client: 403 outside, 404 for an unknown one."""
    client = client_access(user=user, client_slug=client_slug, permission=permission)
    cluster = Cluster.objects.filter(client=client, slug=cluster_slug).first()
    if cluster is None:  # the caller may see the client: naming it and the name asked for tells nothing new
        raise NotFound(f"{client.name} has no cluster named “{cluster_slug}”.")
    if cluster.decommissioned:  # the client's own members learn why it is gone
        raise ClusterDecommissioned()
    cluster.client = client
    return cluster


def client_list(*, user: User) -> list[Client]:
    """The clients the user may view."""
    if not user.is_active:
        return []
    if user_is_global_operator(user=user):
        clients = list(Client.objects.filter(active=True))
    else:
        clients = list(
            Client.objects.filter(
                active=True, grants__user=user, grants__role__in=roles_with(PERMISSION_VIEW)
            ).order_by("slug")
        )
    scope = _credential_scope(user)
    return [client for client in clients if scope is None or scope.allows(client.slug, PERMISSION_VIEW)]


# --- Cluster state as the API shows it --------------------------------------------------------


@dataclass(frozen=True)
class ClusterEndpoint:
    rest: str
    grpc: str


ROTATION_TWO_PHASE = "two_phase"
ROTATION_ONE_STEP = "one_step"
ROTATION_PHASE_ALTERNATE = "alternate_key_active"
STORAGE_DEPLOYED = "deployed"
STORAGE_WAITING = "waiting_for_operator"
STORAGE_STATES = (STORAGE_DEPLOYED, STORAGE_WAITING)


@dataclass(frozen=True)
class KeyRotation:
    """A two-phase rotation in progress: both keys are accepted until it finishes."""

    phase: str
    started_at: datetime
    finishes_at: datetime


@dataclass(frozen=True)
class ClusterCredentials:
    """What clients should use now: during a rotation ``api_key`` is the new key (the old one still works)."""

    endpoint: ClusterEndpoint
    api_key: str
    read_only_api_key: str
    rotation: KeyRotation | None = None
    rotation_mode: str = ROTATION_ONE_STEP


@dataclass(frozen=True)
class ClusterStorage:
    """The size deployed, and the bigger size waiting for an operator, if any."""

    current_gi: int
    expansion: StorageExpansion | None

    @property
    def state(self) -> str:
        return STORAGE_WAITING if self.expansion is not None else STORAGE_DEPLOYED


@dataclass(frozen=True)
class ClusterDetail:
    """A cluster, where clients reach it, the latest commit that carries its state, and what is under way."""

    cluster: Cluster
    endpoint: ClusterEndpoint
    revision: ClusterChange | None
    storage: ClusterStorage
    rotation: KeyRotation | None
    rotation_mode: str
    allowed_versions: list[str]
    deployment: Deployment | None = None  # None: Argo CD is not configured


QDRANT_REST_PORT = 6333
QDRANT_GRPC_PORT = 6334


def cluster_endpoint(*, client_slug: str, cluster_slug: str) -> ClusterEndpoint:
    """REST and gRPC addresses from ``QDRANT_ENDPOINT_TEMPLATE`` (gRPC takes a bare host:port)."""
    url = urlsplit(settings.QDRANT_ENDPOINT_TEMPLATE.format(client=client_slug, cluster=cluster_slug))
    host = url.hostname or ""
    scheme = url.scheme or "https"
    return ClusterEndpoint(
        rest=f"{scheme}://{host}:{QDRANT_REST_PORT}",
        grpc=f"{host}:{QDRANT_GRPC_PORT}",
    )


def cluster_revision(*, cluster: Cluster) -> ClusterChange | None:
    """The latest change that reached git (read from the database, never from the repository)."""
    return cluster.changes.exclude(commit="").order_by("-created_at", "-id").first()


def cluster_latest_change(*, cluster: Cluster) -> ClusterChange | None:
    """The latest change meant for git, committed or not yet (history-only entries aside): what
    the cluster's deployment is judged by, since the cluster already shows its values."""
    return cluster.changes.exclude(action__in=RECORD_ONLY_ACTIONS).order_by("-created_at", "-id").first()


def cluster_last_change(*, cluster: Cluster, actions: Iterable[str]) -> ClusterChange | None:
    """The cluster's latest change of one of ``actions`` (who decommissioned it, who last changed its keys)."""
    return cluster.changes.filter(action__in=list(actions)).order_by("-created_at", "-id").first()


def cluster_keys_version(*, cluster: Cluster) -> str:
    """Which API keys the cluster holds, revealing nothing of them: another value after every key
    change (and after the stored keys are re-encrypted). What a confirmed rotation was asked for."""
    stored = (cluster.api_key_encrypted, cluster.read_only_api_key_encrypted, cluster.alt_api_key_encrypted)
    return salted_hmac("clusters.keys-version", "\0".join(stored), algorithm="sha256").hexdigest()[:24]


def cluster_rotation(*, cluster: Cluster) -> KeyRotation | None:
    if not cluster.rotation_in_progress:
        return None
    return KeyRotation(
        phase=ROTATION_PHASE_ALTERNATE,
        started_at=cluster.rotation_started_at,
        finishes_at=cluster.rotation_finishes_at,
    )


def cluster_rotation_mode(*, cluster: Cluster) -> str:
    """How the cluster's Qdrant version takes new keys: two phases (``alt_api_key``) or one step."""
    return ROTATION_TWO_PHASE if version_supports_alt_api_key(cluster.version) else ROTATION_ONE_STEP


def cluster_allowed_versions(*, cluster: Cluster) -> list[str]:
    """The cluster's current version, then every version it may move to (what the service accepts)."""
    return [cluster.version, *version_upgrades(current=cluster.version, offered=settings.QDRANT_VERSIONS)]


def _detail(
    cluster: Cluster,
    revision: ClusterChange | None,
    expansion: StorageExpansion | None,
    deployment: Deployment | None,
) -> ClusterDetail:
    return ClusterDetail(
        cluster=cluster,
        endpoint=cluster_endpoint(client_slug=cluster.client.slug, cluster_slug=cluster.slug),
        revision=revision,
        storage=ClusterStorage(current_gi=cluster.storage_gi, expansion=expansion),
        rotation=cluster_rotation(cluster=cluster),
        rotation_mode=cluster_rotation_mode(cluster=cluster),
        allowed_versions=cluster_allowed_versions(cluster=cluster),
        deployment=deployment,
    )


def _pending_expansions(clusters: list[Cluster]) -> dict[int, StorageExpansion]:
    pending = StorageExpansion.objects.filter(
        cluster__in=clusters, state=StorageExpansion.State.PENDING
    ).order_by()
    return {expansion.cluster_id: expansion for expansion in pending}


def cluster_detail(*, cluster: Cluster, revision: ClusterChange | None = None) -> ClusterDetail:
    latest = cluster_latest_change(cluster=cluster)
    if revision is None:  # a committed latest change is git's latest too: no second query
        revision = latest if latest is not None and latest.commit else cluster_revision(cluster=cluster)
    return _detail(
        cluster,
        revision,
        _pending_expansions([cluster]).get(cluster.pk),
        cluster_deployment(cluster=cluster, revision=latest),
    )


def cluster_list(*, client: Client) -> list[ClusterDetail]:
    """The client's clusters in service: ``clients_clusters`` for one client."""
    return clients_clusters(clients=[client])


def clients_clusters(*, clients: Sequence[Client]) -> list[ClusterDetail]:
    """The clusters in service of ``clients`` (by client, then name), with their revisions, pending
    storage requests (three queries however many clients) and deployments (one question to Argo CD
    at most: one client's Applications, or every client's)."""
    if not clients:
        return []
    by_id = {client.pk: client for client in clients}
    changes = ClusterChange.objects.filter(cluster=OuterRef("pk")).order_by("-created_at", "-id")
    clusters = list(
        Cluster.objects.filter(client__in=list(by_id), decommissioned_at=None)
        .annotate(
            revision_id=Subquery(changes.exclude(commit="").values("pk")[:1]),  # as cluster_revision
            latest_id=Subquery(changes.exclude(action__in=RECORD_ONLY_ACTIONS).values("pk")[:1]),
        )
        .order_by("client__slug", "slug")
    )
    revisions = ClusterChange.objects.in_bulk(
        {found for c in clusters for found in (c.revision_id, c.latest_id) if found is not None}
    )
    expansions = _pending_expansions(clusters)
    for cluster in clusters:
        cluster.client = by_id[cluster.client_id]
    selector = client_selector(clients[0].slug) if len(clients) == 1 else CLIENT_LABEL
    deployments = clusters_deployments(
        clusters=[(c, revisions.get(c.latest_id)) for c in clusters], selector=selector
    )
    return [
        _detail(c, revisions.get(c.revision_id), expansions.get(c.pk), deployments[c.pk]) for c in clusters
    ]


HISTORY_PAGE_SIZE = 100


def cluster_history(*, cluster: Cluster, before: int | None = None) -> list[ClusterChange]:
    """The cluster's recorded changes, newest first, a page at a time (``before``: the last id seen;
    in id order, as the audit trail pages: replicas' clocks may differ)."""
    changes = cluster.changes.all()
    if before is not None:
        changes = changes.filter(pk__lt=before)
    return list(changes.order_by("-id")[:HISTORY_PAGE_SIZE])


def change_origins_visible(*, user: User, client: Client, with_session: bool) -> bool:
    """Whether the reader sees which credential a colleague used, and from where: the client's
    audit trail tells that to its admins signed in (no personal access token), and so does the
    cluster history, to them only."""
    return with_session and PERMISSION_MEMBERS in user_client_permissions(user=user).get(client.slug, ())


def cluster_credentials(*, cluster: Cluster) -> ClusterCredentials:
    """The decrypted keys clients should use. Callers must have checked the ``credentials`` permission."""
    alternate = cluster.alt_api_key_encrypted  # during a rotation: the new key
    return ClusterCredentials(
        endpoint=cluster_endpoint(client_slug=cluster.client.slug, cluster_slug=cluster.slug),
        api_key=field_decrypt(ciphertext=alternate or cluster.api_key_encrypted, purpose=CLUSTER_API_KEYS),
        read_only_api_key=field_decrypt(
            ciphertext=cluster.read_only_api_key_encrypted, purpose=CLUSTER_API_KEYS
        ),
        rotation=cluster_rotation(cluster=cluster),
        rotation_mode=cluster_rotation_mode(cluster=cluster),
    )


def changes_pending() -> QuerySet[ClusterChange]:
    """The GitOps outbox: changes the remote does not have yet, oldest first (history-only entries never go)."""
    return ClusterChange.objects.filter(pushed=False).exclude(action__in=RECORD_ONLY_ACTIONS).order_by("id")


def gitops_remote_state() -> GitopsRemoteState | None:
    """When the remote last took a delivery and last refused one (None: no delivery to a remote yet)."""
    return GitopsRemoteState.objects.filter(pk=GitopsRemoteState.SINGLETON_ID).first()
