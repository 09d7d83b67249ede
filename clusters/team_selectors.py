"""Reads for a client's team: members, the ones removed, invitations, the tokens reaching it, its
audit trail and its sign-in policy (``clusters.selectors`` holds the rest; ``team_views`` and the services use these)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, OuterRef, Q, QuerySet, Subquery, When

from accounts.access_tokens import access_tokens_of_client
from accounts.google import google_sign_in_enabled
from accounts.models import PersonalAccessToken, User
from clusters.models import Client, ClientAuditEvent, Grant, Invitation, RemovedMember, SignInPolicy
from clusters.permissions import ROLE_ORDER, ROLE_PERMISSIONS
from config.errors import NotFound

AUDIT_PAGE_SIZE = 100


def client_members(*, client: Client) -> QuerySet[Grant]:
    """The client's members (their grants, with the user), admins first."""
    order = Case(*(When(role=role, then=rank) for rank, role in enumerate(reversed(ROLE_ORDER))))
    return Grant.objects.filter(client=client).select_related("user").order_by(order, "user__email")


def client_invitations(*, client: Client) -> QuerySet[Invitation]:
    """Invitations not yet accepted or revoked (expired ones included, marked), newest first."""
    return Invitation.objects.filter(client=client, accepted_at=None, revoked_at=None).order_by("-created_at")


def removed_members_of(*, client: Client, email: str, user: User | None = None) -> QuerySet[RemovedMember]:
    """The record that whoever has ``email`` (or ``user``, whatever their address now) was taken off
    ``client``'s team and has not joined it again."""
    match = (Q(email=email) | Q(user=user)) if user is not None else Q(email=email)
    return RemovedMember.objects.filter(match, client=client)


def _members_access_tokens(*, client: Client) -> QuerySet[PersonalAccessToken]:
    """Live tokens that reach ``client``, but the portal operators': those are their own, as their
    address and credential on the client's trail are, not the client's to see or revoke. (An
    operator's account that is no longer active has no live token: deactivation revoked them.)"""
    return access_tokens_of_client(client=client.slug).exclude(user__is_operator=True)


def client_access_tokens(*, client: Client) -> list[PersonalAccessToken]:
    """Members' live tokens that reach ``client``, each with ``permissions_now``: what it was
    given here, narrowed to what its owner's role allows today (a demoted owner's token can do
    no more than the owner, so the list must not say it can)."""
    owner_role = Grant.objects.filter(client=client, user=OuterRef("user")).values("role")[:1]
    tokens = list(_members_access_tokens(client=client).annotate(owner_role=Subquery(owner_role)))
    for token in tokens:
        allowed = ROLE_PERMISSIONS.get(token.owner_role, ())
        token.permissions_now = [
            permission for permission in token.scopes.get(client.slug, []) if permission in allowed
        ]
    return tokens


def client_access_token(*, client: Client, token_id: int) -> PersonalAccessToken:
    """One of the tokens ``client_access_tokens`` lists; 404 ``not_found`` for any other."""
    token = _members_access_tokens(client=client).filter(pk=token_id).first()
    if token is None:
        raise NotFound()
    return token


@dataclass(frozen=True)
class SignUpTerms:
    """How an invitee may create an account, and what the client asks of its members' sign-ins."""

    methods: tuple[str, ...]  # "password", "google": the ways offered (none: the portal lacks Google)
    requirement: str  # a sentence ("Acme asks its members to ..."); empty when it asks nothing


_METHOD_WORDS = {"password": "a password", "google": "Google", "passkey": "a passkey"}


def _policy_asks(policy: SignInPolicy | None, allowed: set[str]) -> list[str]:
    """What a policy asks of a sign-in, as parts of a sentence ("sign in with Google", ...)."""
    asks = []
    if policy and policy.google_domain:  # only Google sign-ins from that Workspace meet it
        asks.append(f"sign in with a Google account of {policy.google_domain}")
    elif allowed != set(SignInPolicy.Method.values):
        words = [_METHOD_WORDS[method] for method in SignInPolicy.Method.values if method in allowed]
        asks.append("sign in with " + " or ".join(words))
    if policy and policy.mfa_required and allowed != {"passkey"}:
        asks.append("use a second factor" + (" (a passkey is one)" if "passkey" in allowed else ""))
    return asks


def invitation_sign_up_terms(*, client: Client) -> SignUpTerms:
    """The ways of joining that can lead to a session the client's policy lets in.

    An account made with a password can meet a policy that accepts passwords or passkeys (one
    is added after signing up), never one asking for Google or a Google Workspace; Google is
    offered only where the portal has it. None may be left (the client asks for Google, which
    the portal does not have): the sentence then says to ask an operator. The invitation email
    and the browser app both say it.
    """
    policy = SignInPolicy.objects.filter(client=client).first()
    allowed = set(policy.allowed_methods) if policy else set(SignInPolicy.Method.values)
    google = google_sign_in_enabled() and "google" in allowed
    password = not (policy and policy.google_domain) and bool({"password", "passkey"} & allowed)
    methods = tuple(method for method, offered in (("password", password), ("google", google)) if offered)
    asks = _policy_asks(policy, allowed)
    sentences = [f"{client.name} asks its members to {' and '.join(asks)}."] if asks else []
    if password and "password" not in allowed:
        sentences.append(
            "An account made with a password meets it once it has a passkey: add one under Security."
        )
    if not methods:
        sentences.append("This portal does not offer Google sign-in: ask an operator.")
    return SignUpTerms(methods=methods, requirement=" ".join(sentences))


def client_invitation(*, client: Client, invitation_id: int) -> Invitation:
    invitation = Invitation.objects.filter(client=client, pk=invitation_id).first()
    if invitation is None:
        raise NotFound()
    return invitation


def client_audit(*, client: Client, before: int | None = None) -> list[ClientAuditEvent]:
    """The client's audit trail, newest recorded first, a page at a time (``before``: the last id
    seen). In id order, the cursor's own: by time, events whose replicas' clocks differed would
    be shown twice or never."""
    events = ClientAuditEvent.objects.filter(client=client)
    if before is not None:
        events = events.filter(pk__lt=before)
    return list(events.order_by("-id")[:AUDIT_PAGE_SIZE])


def client_sign_in_policy(*, client: Client) -> SignInPolicy:
    """The client's policy (an unsaved default when it has none: every way of signing in)."""
    return SignInPolicy.objects.filter(client=client).first() or SignInPolicy(
        client=client, allowed_methods=list(SignInPolicy.Method.values)
    )
