"""Sign-in with Google: the linked user, else link by verified email, else provision by domain.

Verification of the ID token is ``accounts.google`` (the only module that imports google-auth);
this module decides whom a verified Google identity signs in, and records it.
"""

from __future__ import annotations

from functools import cache
from typing import Protocol

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.module_loading import import_string

from accounts.audit import RequestOrigin, audit_event_record
from accounts.emails import email_canonical_or_none
from accounts.google import GoogleIdentity, google_id_token_verify
from accounts.models import AuditEventType, AuthMethod, GoogleAccount, User
from accounts.second_factors import SignInStep, sign_in_step
from config import metrics
from config.errors import AccountDisabled, AccountExists, InvitationEmailMismatch, NoAccount, PortalError


def _google_login_failed(
    *, error: PortalError, origin: RequestOrigin, user: User | None = None, email: str = ""
) -> PortalError:
    audit_event_record(
        type=AuditEventType.LOGIN_FAILED,
        user=user,
        email=email,
        method=AuthMethod.GOOGLE,
        origin=origin,
        detail=error.code,
    )
    metrics.login_record(method=AuthMethod.GOOGLE, result=error.code)
    return error


class GoogleProvisioning(Protocol):
    def __call__(self, *, identity: GoogleIdentity, user: User | None) -> bool: ...


@cache
def _provisioning_function(path: str) -> GoogleProvisioning:
    return import_string(path)


def google_provisioning(*, identity: GoogleIdentity, user: User | None) -> bool:
    """Whether a client takes this Google identity in just in time (its policy names the Workspace);
    given a user, also makes them a member of those clients. Asked through ``GOOGLE_PROVISIONING_FUNCTION``:
    the clusters app owns clients, and accounts must not import it."""
    if not settings.GOOGLE_PROVISIONING_FUNCTION or not identity.hosted_domain:
        return False
    return _provisioning_function(settings.GOOGLE_PROVISIONING_FUNCTION)(identity=identity, user=user)


def _google_linked_user(*, sub: str) -> User | None:
    account = GoogleAccount.objects.select_related("user").filter(sub=sub).first()
    return account.user if account else None


def google_account_link(
    *, user: User, identity: GoogleIdentity, origin: RequestOrigin | None = None, detail: str = ""
) -> GoogleAccount:
    """Link a verified Google account to ``user``; IntegrityError when another sign-in linked it first."""
    account = GoogleAccount(user=user, sub=identity.sub, email=identity.email[:254])
    # The unique sub is left to the database: checking it first would only narrow the race.
    account.full_clean(validate_constraints=False)
    with transaction.atomic():
        account.save(force_insert=True)
        audit_event_record(
            type=AuditEventType.GOOGLE_LINKED,
            user=user,
            method=AuthMethod.GOOGLE,
            origin=origin,
            detail=detail,
        )
    return account


def google_account_unlink(*, account: GoogleAccount, actor: User | None = None) -> None:
    """Forget a Google account: its next sign-in is treated like a stranger's (email, then domain)."""
    with transaction.atomic():
        account.delete()
        audit_event_record(
            type=AuditEventType.GOOGLE_UNLINKED,
            user=account.user,
            method=AuthMethod.GOOGLE,
            detail=f"Google {account.sub} ({account.email})" + (f"; by {actor.email}" if actor else ""),
        )


def _google_user_link_or_create(*, identity: GoogleIdentity, origin: RequestOrigin) -> User:
    email = email_canonical_or_none(identity.email)
    if email is None:  # an address no account here can have: treated like an unknown one
        raise _google_login_failed(error=NoAccount(), email=identity.email, origin=origin)
    # Only an address Google is authoritative for proves who this is today: a consumer Google
    # account can hold a verified address of a company mailbox it has long lost.
    existing = User.objects.filter(email=email).first() if identity.email_authoritative else None
    if existing is not None:
        if not existing.is_active:
            raise _google_login_failed(error=AccountDisabled(), user=existing, origin=origin)
        google_account_link(
            user=existing, identity=identity, origin=origin, detail="linked by verified email"
        )
        return existing
    allowed = identity.domain_allowed(settings.GOOGLE_ALLOWED_DOMAINS)
    if not allowed and not google_provisioning(identity=identity, user=None):
        raise _google_login_failed(error=NoAccount(), email=email, origin=origin)
    with transaction.atomic():
        # No grants here: an operator grants them, or the clients that provision this Workspace do.
        user = User.objects.create_user(email=email, password=None, name=identity.name[:150])
        google_account_link(user=user, identity=identity, origin=origin, detail="new user (allowed domain)")
    return user


def google_sign_in(*, credential: str, nonce: str | None, origin: RequestOrigin) -> SignInStep:
    """Sign in with a Google ID token: the linked user, else link by email, else provision by domain.

    ``nonce``: the one the browser sending it holds (``accounts.google_nonce``), if any.
    """
    try:
        identity = google_id_token_verify(token=credential, nonce=nonce)
    except PortalError as error:
        if error.status_code in (401, 403):  # a refused sign-in, not an outage or a client bug
            raise _google_login_failed(error=error, origin=origin) from None
        raise

    user = _google_linked_user(sub=identity.sub)
    if user is None:
        try:
            user = _google_user_link_or_create(identity=identity, origin=origin)
        except (IntegrityError, ValidationError):
            # A concurrent sign-in with the same Google account linked (or created) first.
            user = _google_linked_user(sub=identity.sub)
            if user is None:
                raise
    if not user.is_active:
        raise _google_login_failed(error=AccountDisabled(), user=user, origin=origin)
    google_provisioning(identity=identity, user=user)
    domain = identity.hosted_domain or ""
    return sign_in_step(user=user, method=AuthMethod.GOOGLE, origin=origin, google_domain=domain)


def google_invitee_user(*, identity: GoogleIdentity, email: str, origin: RequestOrigin) -> User:
    """Who accepts an invitation sent to ``email`` with this Google account: the user linked to it,
    the user with that address (linked now, when Google vouches for the address today), or a new
    user. The invitation stands in for GOOGLE_ALLOWED_DOMAINS: it went to that very address."""
    if email_canonical_or_none(identity.email) != email:
        raise InvitationEmailMismatch()
    user = _google_linked_user(sub=identity.sub)
    if user is None:
        user = User.objects.filter(email=email).first()
        if user is not None and not identity.email_authoritative:
            raise AccountExists()
        if user is None:
            user = User.objects.create_user(email=email, password=None, name=identity.name[:150])
        google_account_link(
            user=user, identity=identity, origin=origin, detail="invitation accepted with Google"
        )
    if user.email != email:
        raise InvitationEmailMismatch()
    if not user.is_active:
        raise AccountDisabled()
    return user
