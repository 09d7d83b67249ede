"""What ends an invitation besides an admin revoking it: the rule, stated once.

An invitation is worth what its inviter could send. It ends as soon as they can no longer give its
role on the client (removed, demoted, no longer an operator, deactivated, deleted), and whenever
their account is taken back (a password changed, reset or set by an operator): whoever knew the
old password may have sent it. It ends as a revocation, on the client's trail with why, so every
list (the API, the Team page, the admin) says so, and nothing that gives the inviter their rank
back (a reactivation, a promotion) brings it back: a link sent from a compromised account must not
outlive the account's recovery.

Whatever ends them holds the inviter's row lock (accounts.locks), as ``invitation_create`` does
before its last check: an invitation being sent meanwhile is found, or refused.
"""

from __future__ import annotations

from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import User
from clusters.models import Client, ClientAuditEvent, Invitation
from clusters.permissions import ROLE_ORDER, role_rank
from clusters.selectors import actor_rank
from clusters.services.audit import client_audit_record


def invitations_end(*, invitations: QuerySet[Invitation], actor: User | None, why: str) -> None:
    """End the open ones among ``invitations``: each still pending on its client's trail as revoked,
    ``why`` saying what ended it (an expired one ends silently: its link was dead already)."""
    now = timezone.now()
    # Locked without a join (MariaDB locks no single table of one): an acceptance under way
    # finishes first, and its invitation is then no longer open.
    ended = list(
        invitations.filter(accepted_at=None, revoked_at=None)
        .select_for_update()
        .values_list("pk", "client_id", "email", "role", "expires_at")
    )
    Invitation.objects.filter(pk__in=[pk for pk, *_ in ended]).update(revoked_at=now)
    clients = Client.objects.in_bulk({client_id for _, client_id, *_ in ended})
    for _, client_id, email, role, expires_at in ended:
        if expires_at > now:
            client_audit_record(
                client=clients[client_id],
                type=ClientAuditEvent.Type.INVITATION_REVOKED,
                actor=actor,
                target_email=email,
                detail=f"as {role}; {why}",
            )


def invitations_beyond_inviter_end(*, inviter: User, client: Client, actor: User | None, why: str) -> None:
    """``inviter``'s open invitations on ``client`` to a role they can no longer give end (after a
    removal or a demotion: operator staff rank above every role, member or not)."""
    rank = actor_rank(actor=inviter, client=client)
    beyond = [role for role in ROLE_ORDER if role_rank(role) > rank]
    if beyond:
        invitations_end(
            invitations=Invitation.objects.filter(invited_by=inviter, client=client, role__in=beyond),
            actor=actor,
            why=why,
        )


def inviter_privileges_lowered(*, user: User, actor: User | None) -> None:
    """``user`` is no longer operator staff: on each client, the invitations they sent to a role
    their grant there does not reach end."""
    client_ids = Invitation.objects.filter(invited_by=user, accepted_at=None, revoked_at=None).values(
        "client_id"
    )
    for client in Client.objects.filter(pk__in=client_ids):
        invitations_beyond_inviter_end(
            inviter=user, client=client, actor=actor, why="the inviter is no longer an operator"
        )


def inviter_taken_back(*, user: User, actor: User | None, why: str) -> None:
    """Named by ``ACCOUNT_TAKEN_BACK_FUNCTION``: every open invitation ``user`` sent ends. ``why``:
    what happened to the account ("password was reset")."""
    invitations_end(
        invitations=Invitation.objects.filter(invited_by=user), actor=actor, why=f"the inviter's {why}"
    )
