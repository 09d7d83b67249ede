"""The email an account's owner gets when something about how it signs in changed.

OWASP's Authentication, Forgot Password and MFA cheat sheets ask for it: whoever took an account
over (the password, a session, a mailbox) changes these things first, and the owner hears of it
at an address the change did not touch. One notice per audited event of the kinds below, sent
after the transaction commits (``accounts.mail``); it holds no secret and no link that acts.
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
        lambda event: f"{_factor(event.detail).capitalize()} was added to your account as a second factor.",
    ),
    AuditEventType.SECOND_FACTOR_REMOVED: (
        "A second factor was removed",
        lambda event: f"{_factor(event.detail).capitalize()} was removed from your account's second factors.",
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
    mail_send(
        to=event.user.email,
        subject=f"{subject} (Qdrant Portal)",
        template="accounts/security_notice_email",
        context={
            "user": event.user,
            "what": sentence(event),
            "at": event.at,
            "ip": event.ip,
            "user_agent": event.user_agent,
            "security_url": f"{settings.PUBLIC_URL}/#/security" if settings.PUBLIC_URL else "",
        },
        what=f"security notice ({event.type})",
    )
