"""Writes for a client's team under its rules, and members who arrive by Google sign-in.

The rules (the API's; operators in the admin are not bound by the last one):

* nobody grants a role above their own, nor changes or removes a member whose role is above
  their own (operator staff rank above every role);
* a client that has an admin keeps one: the last admin can be neither demoted nor removed.

Each change locks the client's row first, so two admins demoting each other at once queue up
and the second one finds itself the last admin.
"""

from __future__ import annotations

from django.db import transaction

from accounts.access_tokens import access_tokens_client_remove
from accounts.audit import access_token_describe
from accounts.emails import email_canonical_or_none
from accounts.google import GoogleIdentity
from accounts.models import User
from clusters.models import Client, ClientAuditEvent, Grant, SignInPolicy
from clusters.permissions import role_rank
from clusters.selectors import actor_rank
from clusters.services.audit import client_audit_record
from clusters.services.clients import grant_remove, grant_set
from clusters.team_selectors import client_access_token, removed_members_of
from config.errors import LastAdmin, NotFound, RoleEscalation


def client_lock(*, client: Client) -> Client:
    """The client's row, locked until the transaction ends: team changes of one client queue up."""
    return Client.objects.select_for_update().get(pk=client.pk)


def _role_within_rank_check(*, role: str, rank: int, client: Client) -> None:
    if role_rank(role) > rank:
        raise RoleEscalation(f"You cannot give the role {role}: it is above your own on {client.slug}.")


def role_grant_check(*, actor: User | None, client: Client, role: str) -> None:
    _role_within_rank_check(role=role, rank=actor_rank(actor=actor, client=client), client=client)


def _member_grant(*, client: Client, user_id: int, rank: int) -> Grant:
    """The member's grant, once an actor of ``rank`` may touch it (not above the actor's own role)."""
    grant = Grant.objects.select_related("user").filter(client=client, user__pk=user_id).first()
    if grant is None:
        raise NotFound("This person is not a member of the client.")
    if role_rank(grant.role) > rank:
        raise RoleEscalation("You cannot change a member whose role is above your own.")
    return grant


def _last_admin_check(*, client: Client, grant: Grant) -> None:
    # A deactivated admin runs nothing: the client would be left with nobody to run its team.
    admins = Grant.objects.filter(client=client, role=Grant.Role.ADMIN, user__is_active=True).exclude(
        pk=grant.pk
    )
    if grant.role == Grant.Role.ADMIN and not admins.exists():
        raise LastAdmin()


@transaction.atomic
def member_role_change(*, client: Client, user_id: int, role: str, actor: User) -> Grant:
    client_lock(client=client)
    rank = actor_rank(actor=actor, client=client)
    grant = _member_grant(client=client, user_id=user_id, rank=rank)
    _role_within_rank_check(role=role, rank=rank, client=client)
    if role != Grant.Role.ADMIN:
        _last_admin_check(client=client, grant=grant)
    return grant_set(user=grant.user, client=client, role=role, actor=actor)


@transaction.atomic
def member_remove(*, client: Client, user_id: int, actor: User) -> None:
    """Remove a member: their sessions, ``/validate`` and tokens lose the client at once."""
    client_lock(client=client)
    grant = _member_grant(client=client, user_id=user_id, rank=actor_rank(actor=actor, client=client))
    _last_admin_check(client=client, grant=grant)
    grant_remove(user=grant.user, client=client, actor=actor)


@transaction.atomic
def client_access_token_revoke(*, client: Client, token_id: int, actor: User) -> None:
    """A client's admin takes the client out of a member's personal access token (it dies when empty)."""
    token = client_access_token(client=client, token_id=token_id)
    if not access_tokens_client_remove(
        client=client.slug, token_id=token.pk, actor=actor, why=f"by {client.slug}"
    ):
        raise NotFound()  # another admin was first
    client_audit_record(
        client=client,
        type=ClientAuditEvent.Type.TOKEN_ACCESS_REVOKED,
        actor=actor,
        target=token.user,  # whose token it was, and which, once it is gone from the list
        detail=f"{access_token_describe(token_id=token.pk, name=token.name)}, {token.prefix}…",
    )


# --- Just-in-time membership by Google sign-in ----------------------------------------------


def google_identity_provision(*, identity: GoogleIdentity, user: User | None) -> bool:
    """Whether a client's policy provisions this Google Workspace (``hd``) account; given a user,
    also makes them a member of each such client, with the role its admins chose.

    Named by ``GOOGLE_PROVISIONING_FUNCTION``. Someone taken off a client (``RemovedMember``) is not
    brought back this way (an invitation does that), or removal would last only until their next
    sign-in; nor is an account made for them when no other client takes them.
    """
    email = user.email if user is not None else email_canonical_or_none(identity.email) or ""
    policies = [
        policy
        for policy in SignInPolicy.objects.filter(
            jit_provisioning=True, google_domain=identity.hosted_domain, client__active=True
        ).select_related("client")
        if not removed_members_of(client=policy.client, email=email, user=user).exists()
    ]
    if user is None or not policies:
        return bool(policies)
    for policy in policies:
        client = policy.client
        if Grant.objects.filter(user=user, client=client).exists():
            continue
        grant_set(
            user=user,
            client=client,
            role=policy.jit_role,
            added_as=ClientAuditEvent.Type.MEMBER_PROVISIONED,
        )
    return True
