"""Invitations to a client's team: an email with a link that works once, for ``INVITATION_TTL``.

The invitee accepts as the signed-in user the email was sent to, or signs up with a password or
with Google for that address. Only a hash of the link's token is stored. An invitation ends when
its inviter can no longer give its role or their account is taken back (``invitation_ends``).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.audit import RequestOrigin
from accounts.emails import email_canonical
from accounts.google import google_id_token_verify
from accounts.google_sign_in import google_invitee_user
from accounts.locks import session_still_acting
from accounts.mail import mail_send
from accounts.models import AuthMethod, User
from accounts.second_factors import SignInStep, sign_in_step
from clusters.models import Client, ClientAuditEvent, Grant, Invitation
from clusters.permissions import role_rank
from clusters.selectors import actor_rank
from clusters.services.audit import client_audit_record
from clusters.services.clients import grant_set
from clusters.services.invitation_ends import invitations_end
from clusters.services.members import client_lock, role_grant_check
from clusters.team_selectors import invitation_sign_up_terms
from config.errors import (
    AccountExists,
    AlreadyMember,
    EmailUnavailable,
    InvalidRequest,
    InvitationEmailMismatch,
    InvitationInvalid,
    InvitationNotPending,
    NotFound,
    RoleEscalation,
    SignUpMethodNotAllowed,
)


def invitation_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


SIGN_UP_WORDS = {"password": "with a password", "google": "with Google"}


def _validity(duration: timedelta) -> str:
    """``7 days``, ``1 day``, ``36 hours``: how long the link works, never more than it does."""
    hours = max(1, int(duration.total_seconds() // 3600))
    count, unit = (hours // 24, "day") if hours % 24 == 0 else (hours, "hour")
    return f"{count} {unit}{'' if count == 1 else 's'}"


def _invitation_email(invitation: Invitation, token: str) -> None:
    terms = invitation_sign_up_terms(client=invitation.client)
    mail_send(
        to=invitation.email,
        subject=f"You are invited to {invitation.client.name} on the Qdrant Portal",
        template="clusters/invitation_email",
        context={
            "invitation": invitation,
            "link": f"{settings.PUBLIC_URL}/#/invitations/{token}",
            "validity": _validity(settings.INVITATION_TTL),
            "sign_up": " or ".join(SIGN_UP_WORDS[method] for method in terms.methods),
            "requirement": terms.requirement,
        },
        what="invitation",
    )


def invitation_check(*, client: Client, email: str, role: str, actor: User) -> str:
    """Why ``actor`` cannot invite ``email`` as ``role`` (raised), else the email as stored.

    The admin's form asks before it saves; ``invitation_create`` asks again under the client's lock.
    """
    if not settings.PUBLIC_URL:  # the email's link would lead nowhere: say so, and change nothing
        raise EmailUnavailable()
    role_grant_check(actor=actor, client=client, role=role)
    email = email_canonical(email)
    if Grant.objects.filter(client=client, user__email=email).exists():
        raise AlreadyMember()
    return email


@transaction.atomic
def invitation_create(
    *, client: Client, email: str, role: str, actor: User, session_id: uuid.UUID | None = None
) -> Invitation:
    """Invite ``email`` with ``role`` (no higher than the actor's own); a new invitation replaces an
    open one. ``session_id``: the actor's session sending it (None: none, a script's call)."""
    # The inviter's row first (accounts.locks): a password change or a deactivation under way
    # either finds this invitation and ends it, or has ended the session checked here. Then the
    # client's, as every change to its team takes it.
    session_still_acting(user_id=actor.pk, session_id=session_id)
    if not client_lock(client=client).active:  # deactivated since the caller read it
        raise ValidationError({"client": ["This client is deactivated: no invitation to it can be sent."]})
    email = invitation_check(client=client, email=email, role=role, actor=actor)
    token, now = secrets.token_urlsafe(32), timezone.now()
    # On the trail as a revocation, as the Team page's own is.
    invitations_end(
        invitations=Invitation.objects.filter(client=client, email=email),
        actor=actor,
        why="replaced by a new invitation",
    )
    invitation = Invitation(
        client=client,
        email=email,
        role=role,
        token_hash=invitation_token_hash(token),
        invited_by=actor,
        invited_by_email=actor.email,
        created_at=now,
        expires_at=now + settings.INVITATION_TTL,
    )
    invitation.full_clean(exclude=["client", "invited_by"], validate_constraints=False)
    invitation.save(force_insert=True)
    client_audit_record(
        client=client,
        type=ClientAuditEvent.Type.MEMBER_INVITED,
        actor=actor,
        target_email=email,
        detail=f"as {role}",
    )
    _invitation_email(invitation, token)
    return invitation


@transaction.atomic
def invitation_revoke(*, client: Client, invitation_id: int, actor: User) -> Invitation:
    invitation = Invitation.objects.select_for_update().filter(client=client, pk=invitation_id).first()
    if invitation is None:
        raise NotFound()
    # An expired one too: the Team page lists it (with its badge) until an admin clears it.
    if invitation.state not in ("pending", "expired"):
        raise InvitationNotPending(
            f"This invitation is {invitation.state}: only a pending or expired one can be revoked."
        )
    if role_rank(invitation.role) > actor_rank(actor=actor, client=client):
        raise RoleEscalation("You cannot revoke an invitation to a role above your own.")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    client_audit_record(
        client=client,
        type=ClientAuditEvent.Type.INVITATION_REVOKED,
        actor=actor,
        target_email=invitation.email,
        detail=f"as {invitation.role}",
    )
    return invitation


# --- Accepting ------------------------------------------------------------------------------


def invitation_open(*, token: str, lock: bool = False) -> Invitation:
    """The pending invitation the link's token names; 400 ``invitation_invalid`` otherwise."""
    found = Invitation.objects.select_related("client").filter(
        token_hash=invitation_token_hash(token or ""),
        accepted_at=None,
        revoked_at=None,
        expires_at__gt=timezone.now(),
        client__active=True,
    )
    invitation = found.first()
    if invitation is not None and lock:
        # The client's row first, as every change to its team takes it (invitation_create), then
        # the invitation's: two changes taking them in one order queue up instead of deadlocking.
        # Both are read again under their locks, all conditions with them: the invitation may
        # have been replaced, or the client deactivated, meanwhile.
        client_lock(client=invitation.client)
        invitation = found.select_for_update().filter(pk=invitation.pk).first()  # the client's is held
    if invitation is None:
        raise InvitationInvalid()
    return invitation


def _accept(invitation: Invitation, user: User) -> Grant:
    """Make ``user`` a member with the invitation's role (never lower than a role they hold) and spend it."""
    client = client_lock(client=invitation.client)
    # Ended already when the inviter lost the rank (invitation_ends); asked again as a last guard.
    if role_rank(invitation.role) > actor_rank(actor=invitation.invited_by, client=client):
        raise RoleEscalation(
            "Whoever invited you can no longer grant this role: ask an admin of the client for a new invitation."
        )
    if not Invitation.objects.filter(pk=invitation.pk, accepted_at=None, revoked_at=None).update(
        accepted_at=timezone.now(), accepted_by=user
    ):
        raise InvitationInvalid()
    invited_by = f"invited by {invitation.invited_by_email}"
    accepted = ClientAuditEvent.Type.INVITATION_ACCEPTED
    current = Grant.objects.filter(user=user, client=client).first()
    if current is not None and role_rank(current.role) >= role_rank(invitation.role):
        client_audit_record(
            client=client,
            type=accepted,
            actor=user,
            target=user,
            detail=f"already {current.role}; {invited_by} as {invitation.role}",
        )
        return current
    # A role raised by it too is the invitation's acceptance, never the member changing their own.
    return grant_set(
        user=user,
        client=client,
        role=invitation.role,
        actor=user,
        added_as=accepted,
        changed_as=accepted,
        note=invited_by,
    )


@transaction.atomic
def invitation_accept(*, token: str, user: User) -> Grant:
    """The signed-in addressee accepts."""
    invitation = invitation_open(token=token, lock=True)
    if invitation.email != user.email:
        raise InvitationEmailMismatch()
    return _accept(invitation, User.objects.get(pk=user.pk))


def _sign_up_method_check(invitation: Invitation, method: str) -> None:
    """403 ``sign_up_method_not_allowed`` for a way of joining the invitation does not offer:
    its account could never meet the client's policy, and the one-use link would be spent."""
    terms = invitation_sign_up_terms(client=invitation.client)
    if method not in terms.methods:
        raise SignUpMethodNotAllowed(f"{terms.requirement} {SignUpMethodNotAllowed.default_detail}".strip())


def invitation_sign_up_password(*, token: str, name: str, password: str, origin: RequestOrigin) -> SignInStep:
    """A new account for the invitation's address, with a password; signed in at once."""
    with transaction.atomic():
        invitation = invitation_open(token=token, lock=True)
        if User.objects.filter(email=invitation.email).exists():
            raise AccountExists()
        _sign_up_method_check(invitation, "password")
        user = User(email=invitation.email, name=name)
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise InvalidRequest(fields={"password": list(error.messages)}) from error
        user = User.objects.create_user(email=invitation.email, password=password, name=name)
        _accept(invitation, user)
    return sign_in_step(user=user, method=AuthMethod.PASSWORD, origin=origin)


def invitation_sign_up_google(
    *, token: str, credential: str, nonce: str | None, origin: RequestOrigin
) -> SignInStep:
    """Accept with the Google account of the invitation's address (a new account, or one linked now).

    ``nonce``: the one the browser sending it holds (``accounts.google_nonce``), if any.
    """
    identity = google_id_token_verify(token=credential, nonce=nonce)
    with transaction.atomic():
        invitation = invitation_open(token=token, lock=True)
        _sign_up_method_check(invitation, "google")
        user = google_invitee_user(identity=identity, email=invitation.email, origin=origin)
        _accept(invitation, user)
    return sign_in_step(
        user=user, method=AuthMethod.GOOGLE, origin=origin, google_domain=identity.hosted_domain or ""
    )
