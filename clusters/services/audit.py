"""The client's audit trail: who changed its team or its sign-in policy, visible to its admins."""

from __future__ import annotations

from accounts.models import User
from clusters.models import Client, ClientAuditEvent


def client_audit_record(
    *,
    client: Client,
    type: ClientAuditEvent.Type,
    actor: User | None,
    target: User | None = None,
    target_email: str = "",
    detail: str = "",
) -> ClientAuditEvent:
    event = ClientAuditEvent(
        client=client,
        type=type,
        actor=actor,
        actor_email=actor.email if actor else "",
        target_user=target,
        target_email=(target_email or (target.email if target else ""))[:254],
        detail=detail[:255],
    )
    # The rows named are the caller's: checking them would cost a query each.
    event.full_clean(exclude=["client", "actor", "target_user"], validate_constraints=False)
    event.save()
    return event
