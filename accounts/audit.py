"""The audit log: what happened to whose credentials, from where, and with which credential."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from accounts.models import AuditEvent, AuditEventType, AuthMethod, PersonalAccessToken, Session, User
from accounts.security_notices import security_notice_send
from config.retention import rows_delete_in_batches

USER_AGENT_MAX = 512


@dataclass(frozen=True)
class RequestOrigin:
    """Where a request came from, as sessions and the audit log record it (the agent cut to fit)."""

    ip: str | None
    user_agent: str


@dataclass(frozen=True)
class RequestCredential:
    """What a request authenticated with, as audit trails name it: a session or a personal access token."""

    session_id: uuid.UUID | None = None
    access_token_id: int | None = None


def access_token_describe(*, token_id: int, name: str | None) -> str:
    """``personal access token #<id> “<name>”``, as audit trails name a token (never its secret)."""
    label = f"personal access token #{token_id}"
    return f"{label} “{name}”" if name else label


def credential_describe(*, credential: RequestCredential) -> str:
    """``session <id>`` or ``personal access token #<id> “<name>”`` (never a secret)."""
    if credential.access_token_id is not None:
        name = (
            PersonalAccessToken.objects.filter(pk=credential.access_token_id)
            .values_list("name", flat=True)
            .first()
        )
        return access_token_describe(token_id=credential.access_token_id, name=name)
    if credential.session_id is not None:
        return f"session {credential.session_id}"
    return ""


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
    # Here, not at each caller: every change to how an account signs in is audited, so none
    # can forget to tell its owner (accounts.security_notices says which).
    security_notice_send(event=event)
    return event


def account_change_record(
    *, type: AuditEventType, user: User, actor: User | None, detail: str = "", email: str = ""
) -> AuditEvent:
    """An operator's change to an account (its address, whether it may sign in, its deletion),
    on the account's trail with who made it."""
    by = f"by {actor.email}" if actor is not None else ""
    return audit_event_record(
        type=type, user=user, email=email, detail="; ".join(part for part in (detail, by) if part)
    )


def sign_in_throttled_record(*, email: str, method: str, origin: RequestOrigin, detail: str) -> AuditEvent:
    """A sign-in to ``email`` (canonical) that the per-account limit refused, whether or not the
    account exists. The throttle calls it once per window, not once per refused attempt."""
    return audit_event_record(
        type=AuditEventType.LOGIN_THROTTLED,
        user=User.objects.filter(email=email).first(),
        email=email,
        method=method if method in AuthMethod.values else "",
        origin=origin,
        detail=detail,
    )


def sign_in_records_prune(*, before: datetime, dry_run: bool = False) -> dict[str, int]:
    """Delete the sign-in audit events, and the ended sessions and personal access tokens (each
    with the address it was last used from), older than ``before``; how many of each.

    A session or token is old once it was revoked, or reached its end, before ``before``: a live
    one is never deleted, however long ago it began. A refresh token of a deleted session, or a
    deleted access token, is refused like any unknown one.
    """
    return {
        "sign-in audit events": rows_delete_in_batches(
            AuditEvent.objects.filter(at__lt=before), dry_run=dry_run
        ),
        "ended sessions": rows_delete_in_batches(
            Session.objects.filter(Q(revoked_at__lt=before) | Q(expires_at__lt=before)), dry_run=dry_run
        ),
        "ended personal access tokens": rows_delete_in_batches(
            PersonalAccessToken.objects.filter(Q(revoked_at__lt=before) | Q(expires_at__lt=before)),
            dry_run=dry_run,
        ),
    }
