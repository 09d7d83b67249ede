"""Reads for clients, clusters and grants."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.db.models import OuterRef, QuerySet, Subquery

from accounts.models import User
from clusters.crypto import field_decrypt
from clusters.models import Client, Cluster, ClusterChange, Grant
from clusters.permissions import ALL_PERMISSIONS, PERMISSION_VIEW, ROLE_PERMISSIONS, roles_with
from config.errors import NotFound, PermissionDenied


def user_is_global_operator(*, user: User) -> bool:
    return bool(user.is_active and user.is_staff and user.is_operator)


def user_client_permissions(*, user: User) -> dict[str, list[str]]:
    """``{"client1": ["view", "configure", "credentials"], ...}`` from the user's current grants."""
    if not user.is_active:
        return {}
    if user_is_global_operator(user=user):
        slugs = Client.objects.filter(active=True).values_list("slug", flat=True)
        return {slug: list(ALL_PERMISSIONS) for slug in slugs}
    grants = Grant.objects.filter(user=user, client__active=True).values_list("client__slug", "role")
    return {slug: list(ROLE_PERMISSIONS[role]) for slug, role in grants}


def user_scope_claim(*, user: User) -> str:
    """The token's ``scope`` claim: ``*`` for operator staff, else the client slugs, space-separated.

    Named by the ``SCOPE_CLAIM_FUNCTION`` setting: this is how the token service asks.
    """
    if user_is_global_operator(user=user):
        return "*"
    return " ".join(sorted(user_client_permissions(user=user)))


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
    return client


def cluster_access(*, user: User, client_slug: str, cluster_slug: str, permission: str) -> Cluster:
    """The cluster if ``user`` holds ``permission`` on its client: 403 outside, 404 for an unknown cluster."""
    client = client_access(user=user, client_slug=client_slug, permission=permission)
    cluster = Cluster.objects.filter(client=client, slug=cluster_slug).first()
    if cluster is None:
        raise NotFound()
    cluster.client = client
    return cluster


def client_list(*, user: User) -> list[Client]:
    """The clients the user may view."""
    if not user.is_active:
        return []
    if user_is_global_operator(user=user):
        return list(Client.objects.filter(active=True))
    return list(
        Client.objects.filter(
            active=True, grants__user=user, grants__role__in=roles_with(PERMISSION_VIEW)
        ).order_by("slug")
    )


# --- Cluster state as the API shows it --------------------------------------------------------


@dataclass(frozen=True)
class ClusterEndpoint:
    rest: str
    grpc: str


@dataclass(frozen=True)
class ClusterCredentials:
    endpoint: ClusterEndpoint
    api_key: str
    read_only_api_key: str


@dataclass(frozen=True)
class ClusterDetail:
    """A cluster, where clients reach it, and the latest commit that carries its state."""

    cluster: Cluster
    endpoint: ClusterEndpoint
    revision: ClusterChange | None


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


def cluster_detail(*, cluster: Cluster, revision: ClusterChange | None = None) -> ClusterDetail:
    return ClusterDetail(
        cluster=cluster,
        endpoint=cluster_endpoint(client_slug=cluster.client.slug, cluster_slug=cluster.slug),
        revision=revision if revision is not None else cluster_revision(cluster=cluster),
    )


def cluster_list(*, client: Client) -> list[ClusterDetail]:
    """The client's clusters with their revisions, in two queries."""
    latest_commit = (
        ClusterChange.objects.filter(cluster=OuterRef("pk"))
        .exclude(commit="")
        .order_by("-created_at", "-id")
        .values("pk")[:1]
    )
    clusters = list(
        Cluster.objects.filter(client=client).annotate(revision_id=Subquery(latest_commit)).order_by("slug")
    )
    revision_ids = [c.revision_id for c in clusters if c.revision_id is not None]
    revisions = ClusterChange.objects.in_bulk(revision_ids)
    details = []
    for cluster in clusters:
        cluster.client = client
        details.append(
            ClusterDetail(
                cluster=cluster,
                endpoint=cluster_endpoint(client_slug=client.slug, cluster_slug=cluster.slug),
                revision=revisions.get(cluster.revision_id),
            )
        )
    return details


def cluster_history(*, cluster: Cluster) -> QuerySet[ClusterChange]:
    """Every recorded change of the cluster, newest first."""
    return cluster.changes.order_by("-created_at", "-id")


def cluster_credentials(*, cluster: Cluster) -> ClusterCredentials:
    """The decrypted API keys. Callers must have checked the ``credentials`` permission."""
    return ClusterCredentials(
        endpoint=cluster_endpoint(client_slug=cluster.client.slug, cluster_slug=cluster.slug),
        api_key=field_decrypt(ciphertext=cluster.api_key_encrypted),
        read_only_api_key=field_decrypt(ciphertext=cluster.read_only_api_key_encrypted),
    )
