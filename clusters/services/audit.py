"""The client's audit trail: who changed its team or its sign-in policy and who read its clusters'
API keys, visible to its admins."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q

from accounts.audit import RequestOrigin
from accounts.models import User
from clusters.models import Client, ClientAuditEvent, Cluster, ClusterChange, Invitation
from config.retention import rows_delete_in_batches, rows_update_in_batches


def client_audit_record(
    *,
    client: Client,
    type: ClientAuditEvent.Type,
    actor: User | None,
    target: User | None = None,
    target_email: str = "",
    cluster: Cluster | None = None,
    origin: RequestOrigin | None = None,
    detail: str = "",
) -> ClientAuditEvent:
    event = ClientAuditEvent(
        client=client,
        type=type,
        actor=actor,
        actor_email=actor.email if actor else "",
        target_user=target,
        target_email=(target_email or (target.email if target else ""))[:254],
        cluster=cluster.slug if cluster else "",
        ip=origin.ip if origin else None,
        detail=detail[:255],
        by_operator=bool(actor and actor.is_operator),
    )
    # The rows named are the caller's: checking them would cost a query each.
    event.full_clean(exclude=["client", "actor", "target_user"], validate_constraints=False)
    event.save()
    return event


def client_records_prune(*, before: datetime, dry_run: bool = False) -> dict[str, int]:
    """Delete every client's audit events and ended invitations (the addresses of people who may
    never have joined) older than ``before``; and forget from where, with which session or token,
    each cluster change before it was made: the change and who made it stay (the cluster's
    history). How many of each."""
    ended_invitations = Invitation.objects.filter(
        Q(accepted_at__lt=before) | Q(revoked_at__lt=before) | Q(expires_at__lt=before)
    )
    old_changes = ClusterChange.objects.filter(created_at__lt=before).exclude(ip=None, credential="")
    return {
        "client audit events": rows_delete_in_batches(
            ClientAuditEvent.objects.filter(at__lt=before), dry_run=dry_run
        ),
        "ended invitations": rows_delete_in_batches(ended_invitations, dry_run=dry_run),
        "cluster changes' addresses": rows_update_in_batches(
            old_changes, {"ip": None, "credential": ""}, dry_run=dry_run
        ),
    }
