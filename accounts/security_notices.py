"""The email an account's owner gets when something about how it signs in changed.

OWASP's Authentication, Forgot Password and MFA cheat sheets ask for it: whoever took an account
over (the password, a session, a mailbox) changes these things first, and the owner hears of it
at an address the change did not touch. One notice per audited event of the kinds below, sent
once the transaction commits (``accounts.mail``, with EMAIL_SEND_IN_BACKGROUND, the default); it
holds no secret, no link that acts, and nothing the actor chose (not even their browser's name).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from accounts.mail import mail_send
from accounts.models import AuditEvent, AuditEventType


def _factor(detail: str) -> str:
    if detail == "totp":
        return "an authenticator app"
    if detail.startswith("passkey "):
        return f"the passkey “{detail.removeprefix('passkey ')}”"
    return "a second factor"


def _sentence_start(text: str) -> str:
    return text[:1].upper() + text[1:]  # not capitalize(): a passkey's name keeps its capitals


def _password_changed(event: AuditEvent) -> str:
    if event.detail.startswith("turned off"):
        return "An operator turned password sign-in off for your account."
    by = " by an operator" if event.detail.startswith("set") else ""
    return (
        f"The password of your account was changed{by}. Every other device signed in to it was "
        "signed out, and its personal access tokens were revoked."
    )


# What each notified event says: the subject, then the sentence, from the audit event.
NOTICES: dict[str, tuple[str, Callable[[AuditEvent], str]]] = {
    AuditEventType.PASSWORD_CHANGED: ("Your password was changed", _password_changed),
    AuditEventType.PASSWORD_RESET: (
        "Your password was reset",
        lambda event: (
            "The password of your account was reset with a link sent to this address. Every "
            "device signed in to it was signed out, and its personal access tokens were revoked."
        ),
    ),
    AuditEventType.SECOND_FACTOR_ENROLLED: (
        "A second factor was added",
        lambda event: (
            f"{_sentence_start(_factor(event.detail))} was added to your account as a second factor."
        ),
    ),
    AuditEventType.SECOND_FACTOR_REMOVED: (
        "A second factor was removed",
        lambda event: (
            f"{_sentence_start(_factor(event.detail))} was removed from your account's second factors."
        ),
    ),
    AuditEventType.SECOND_FACTORS_RESET: (
        "Your second factors were removed",
        lambda event: (
            "An operator removed every second factor of your account (authenticator app, "
            "passkeys and recovery codes): a password alone signs in until you add one again."
        ),
    ),
    AuditEventType.RECOVERY_CODES_ISSUED: (
        "New recovery codes",
        lambda event: "New recovery codes were made for your account; the earlier ones no longer work.",
    ),
    AuditEventType.ACCESS_TOKEN_CREATED: (
        "A personal access token was created",
        lambda event: (
            "A personal access token was created for your account (its name and what it may "
            "do are on the Tokens page)."
        ),
    ),
    AuditEventType.GOOGLE_LINKED: (
        "A Google account was linked",
        lambda event: (
            "A Google account was linked to your account: signing in with it now opens your account."
        ),
    ),
    AuditEventType.GOOGLE_UNLINKED: (
        "A Google account was unlinked",
        lambda event: (
            "A Google account was unlinked from your account: signing in with it no longer opens it."
        ),
    ),
    AuditEventType.EMAIL_CHANGED: (
        "Your email address was changed",
        lambda event: (
            f"An operator changed the email address of your account from {event.email} to "
            f"{event.user.email}. This notice goes to both addresses."
        ),
    ),
    AuditEventType.REFRESH_REUSED: (
        "A session was ended",
        lambda event: (
            "A session of your account was ended because its sign-in token was used again after "
            "it had been replaced, as happens when a token is copied."
        ),
    ),
}


def security_notice_send(*, event: AuditEvent) -> None:
    """Email the account's owner about ``event`` when it is one of ``NOTICES``' kinds."""
    notice = NOTICES.get(event.type)
    if notice is None or event.user is None:
        return
    subject, sentence = notice
    # A changed address: the old one hears of it too, where whoever changed it cannot read.
    addresses = [event.user.email, *([event.email] if event.type == AuditEventType.EMAIL_CHANGED else [])]
    for address in addresses:
        _notice_send(event=event, to=address, subject=subject, what=sentence(event))


def _notice_send(*, event: AuditEvent, to: str, subject: str, what: str) -> None:
    mail_send(
        to=to,
        subject=f"{subject} (Qdrant Portal)",
        template="accounts/security_notice_email",
        context={
            "user": event.user,
            "what": what,
            "at": event.at,
            "ip": event.ip,  # not the browser's self-description: whoever took the account writes that
            "security_url": f"{settings.PUBLIC_URL}/#/security" if settings.PUBLIC_URL else "",
        },
        what=f"security notice ({event.type})",
    )
