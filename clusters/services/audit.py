"""The client's audit trail: who changed its team or its sign-in policy and who read its clusters'
API keys, visible to its admins."""

from __future__ import annotations

from accounts.audit import RequestOrigin
from accounts.models import User
from clusters.models import Client, ClientAuditEvent, Cluster


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
    )
    # The rows named are the caller's: checking them would cost a query each.
    event.full_clean(exclude=["client", "actor", "target_user"], validate_constraints=False)
    event.save()
    return event
