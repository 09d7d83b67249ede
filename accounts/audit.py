"""The audit log: what happened to whose credentials, from where."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from accounts.models import AuditEvent, AuditEventType, User

USER_AGENT_MAX = 512


@dataclass(frozen=True)
class RequestOrigin:
    """Where a request came from, as sessions and the audit log record it (the agent cut to fit)."""

    ip: str | None
    user_agent: str


def audit_event_record(
    *,
    type: AuditEventType,
    user: User | None = None,
    email: str = "",
    method: str = "",
    origin: RequestOrigin | None = None,
    session_id: uuid.UUID | None = None,
    detail: str = "",
) -> AuditEvent:
    event = AuditEvent(
        type=type,
        user=user,
        email=(email or (user.email if user else ""))[:254],
        method=method,
        ip=origin.ip if origin else None,
        user_agent=origin.user_agent if origin else "",
        session_id=session_id,
        detail=detail[:255],
    )
    # Fields and choices are checked; the user row is the caller's, and the constraints hold by
    # construction (the database enforces them): checking those would cost a query each.
    event.full_clean(exclude=["user"], validate_unique=False, validate_constraints=False)
    event.save()
    return event
