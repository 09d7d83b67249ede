"""Writes for clients and grants.

A client's ``client.yaml`` is committed once its row is; a grant change re-issues the user's
tokens with the new scope (``users_claims_bump``), is recorded in the client's audit trail, and
a removal takes the client out of the user's personal access tokens for good.
"""

from __future__ import annotations

import logging
import re

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.access_tokens import access_tokens_client_remove
from accounts.locks import user_row_lock
from accounts.models import User
from accounts.services import user_deactivate, user_delete, users_claims_bump
from clusters import delivery
from clusters.models import SLUG_PATTERN, Client, ClientAuditEvent, Grant, Invitation, RemovedMember
from clusters.permissions import role_rank
from clusters.services.audit import client_audit_record
from clusters.services.git_folders import git_folder_claim
from clusters.services.invitation_ends import invitations_beyond_inviter_end, invitations_end
from clusters.team_selectors import removed_members_of
from gitops.values import client_folder

logger = logging.getLogger(__name__)


def client_members_claims_bump(*, client: Client) -> None:
    """What the client's members may do there changed: their tokens are re-issued."""
    users_claims_bump(user_ids=list(Grant.objects.filter(client=client).values_list("user_id", flat=True)))


def client_slug_check(*, slug: str, take_over_git_folder: bool = False) -> bool:
    """A folder of that name in git that no client owns (``take_over_git_folder``: the new
    client's ``client.yaml`` replaces its own, see ``git_folders``; True is then answered). The
    admin's form asks before it saves; ``client_create`` again."""
    if (
        not isinstance(slug, str)
        or not re.fullmatch(SLUG_PATTERN, slug)
        or Client.objects.filter(slug=slug).exists()
    ):
        return False  # not a slug, or a taken one: the field's own validators say so
    try:
        return git_folder_claim(folder=client_folder(slug), owner="client", take_over=take_over_git_folder)
    except ValidationError as error:
        raise ValidationError({"slug": error.error_list}) from error


def client_create(
    *,
    slug: str,
    name: str,
    active: bool = True,
    actor: User | None = None,
    take_over_git_folder: bool = False,
) -> Client:
    """Create a client; its folder's ``client.yaml`` is committed once the row is."""
    client = Client(slug=slug, name=name, active=active)
    client.full_clean()
    taken_over = client_slug_check(slug=slug, take_over_git_folder=take_over_git_folder)
    client.save()
    over = ", over the folder git held" if taken_over else ""
    delivery.client_file_deliver_after_commit(
        client=client, actor=actor, summary=f"{client.slug}: client created{over}"
    )
    return client


def _client_changes_describe(*, client: Client, name: str, active: bool) -> str:
    described = []
    if client.name != name:
        described.append(f'name "{" ".join(client.name.split())}" -> "{" ".join(name.split())}"')
    if client.active != active:
        described.append("activated" if active else "deactivated")
    return ", ".join(described)


def client_update(*, client: Client, name: str, active: bool, actor: User | None = None) -> Client:
    """Rename or (de)activate a client; deactivation takes it out of every user's scope and ends its
    open invitations (their links never open on a deactivated client, and a reactivation, maybe
    months later, must not bring back links nobody remembers sending).

    Unchanged values write nothing (and commit nothing).
    """
    described = _client_changes_describe(client=client, name=name, active=active)
    if not described:
        return client
    active_changed = client.active != active
    with transaction.atomic():
        client.name, client.active = name, active
        # The slug never changes: one an older release accepted and today's rules refuse
        # ("portal") must not keep its client from being renamed or deactivated.
        client.full_clean(exclude=["slug"])
        client.save(update_fields=["name", "active"])
        if active_changed:
            client_members_claims_bump(client=client)
        if active_changed and not active:
            invitations_end(
                invitations=client.invitations.all(), actor=actor, why="the client was deactivated"
            )
    delivery.client_file_deliver_after_commit(
        client=client, actor=actor, summary=f"{client.slug}: {described}"
    )
    return client


@transaction.atomic
def grant_set(
    *,
    user: User,
    client: Client,
    role: str,
    actor: User | None = None,
    added_as: ClientAuditEvent.Type = ClientAuditEvent.Type.MEMBER_ADDED,
    changed_as: ClientAuditEvent.Type = ClientAuditEvent.Type.MEMBER_ROLE_CHANGED,
    note: str = "",
) -> Grant:
    """Give ``user`` the ``role`` on ``client`` (creating or changing the grant). On the trail as
    ``added_as`` for a new member, ``changed_as`` for a member's new role (an invitation accepted
    either way, a Google sign-in, an operator's or an admin's change), ``note`` after the roles."""
    grant = Grant.objects.select_for_update().filter(user=user, client=client).first()
    if grant is not None and grant.role == role:
        return grant
    before = grant.role if grant is not None else None
    if grant is None:
        grant = Grant(user=user, client=client)
    grant.role = role
    grant.full_clean()
    grant.save()
    if before is None:  # a member again: their Google sign-ins may keep them one (see grant_remove)
        removed_members_of(client=client, email=user.email, user=user).delete()
    users_claims_bump(user_ids=[user.pk])
    client_audit_record(
        client=client,
        type=added_as if before is None else changed_as,
        actor=actor,
        target=user,
        detail="; ".join(filter(None, [f"as {role}" if before is None else f"{before} -> {role}", note])),
    )
    if before is not None and role_rank(role) < role_rank(before):
        invitations_beyond_inviter_end(
            inviter=user, client=client, actor=actor, why=f"the inviter is now {role}"
        )
    logger.info(
        "grant set",
        extra={
            "user_id": user.pk,
            "client": client.slug,
            "role": role,
            "actor_id": getattr(actor, "pk", None),
        },
    )
    return grant


@transaction.atomic
def grant_remove(*, user: User, client: Client, actor: User | None = None) -> None:
    """Take ``user`` off ``client``: at once for every session, ``/validate`` and token of theirs."""
    deleted, _ = Grant.objects.filter(user=user, client=client).delete()
    if deleted:
        users_claims_bump(user_ids=[user.pk])
        access_tokens_client_remove(
            user_id=user.pk, client=client.slug, actor=actor, why=f"removed from {client.slug}"
        )
        client_audit_record(
            client=client, type=ClientAuditEvent.Type.MEMBER_REMOVED, actor=actor, target=user
        )
        # Beside the trail, which is pruned: a Google sign-in must not make them a member again.
        RemovedMember.objects.update_or_create(
            client=client,
            email=user.email,
            defaults={
                "user": user,
                "removed_at": timezone.now(),
                "removed_by_email": getattr(actor, "email", ""),
            },
        )
        invitations_beyond_inviter_end(
            inviter=user, client=client, actor=actor, why="the inviter was removed from the client"
        )
        logger.info(
            "grant removed",
            extra={"user_id": user.pk, "client": client.slug, "actor_id": getattr(actor, "pk", None)},
        )


@transaction.atomic
def account_deactivate(*, user: User, actor: User | None = None) -> bool:
    """Deactivate an account (``accounts.services.user_deactivate``: its sessions and tokens end at
    once), on the trail of each client it is a member of. False: the cache could not be told."""
    told = user_deactivate(user=user, actor=actor)
    _on_members_trails(user=user, actor=actor, type=ClientAuditEvent.Type.MEMBER_DEACTIVATED)
    return told


def account_reactivated_record(*, user: User, actor: User | None = None) -> None:
    """An operator made ``user``'s account active again: on the trail of each client of theirs."""
    _on_members_trails(user=user, actor=actor, type=ClientAuditEvent.Type.MEMBER_REACTIVATED)


def _on_members_trails(*, user: User, actor: User | None, type: str) -> None:
    for grant in Grant.objects.filter(user=user).select_related("client"):
        client_audit_record(client=grant.client, type=type, actor=actor, target=user)


@transaction.atomic
def account_delete(*, user: User, actor: User | None = None) -> bool:
    """Delete an account for good: the invitations it sent revoked, each of its grants taken away as
    a removal is (on the client's audit trail), the open invitations to its address revoked (a link
    left in its mailbox would make the account again), then ``accounts.services.user_delete``.
    False: the cache could not be told."""
    user_row_lock(user_id=user.pk)  # an invitation it is sending meanwhile is found, or refused
    invitations_end(
        invitations=Invitation.objects.filter(invited_by=user),
        actor=actor,
        why="the inviter's account was deleted",
    )
    for grant in Grant.objects.filter(user=user).select_related("client"):
        grant_remove(user=user, client=grant.client, actor=actor)
    invitations_end(
        invitations=Invitation.objects.filter(email=user.email), actor=actor, why="the account was deleted"
    )
    return user_delete(user=user, actor=actor)
