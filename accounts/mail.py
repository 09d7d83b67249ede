"""Email the portal sends (password resets, team invitations): one function renders and sends.

Each message is a text body with an HTML alternative, from ``<template>.txt`` and
``<template>.html``. With ``EMAIL_SEND_IN_BACKGROUND`` it leaves after the transaction
commits, on a thread of its own: the time an SMTP server takes never shows in an answer (a
password reset must not tell that an address exists), and nothing is sent for a change the
database rolled back. A failure is logged, never raised: the request it came from succeeded.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)


def _send(message: EmailMultiAlternatives, what: str) -> None:
    try:
        message.send()
    except OSError:  # SMTP failures are OSErrors (smtplib.SMTPException included)
        logger.exception("the %s email could not be sent", what)


def mail_send(*, to: str, subject: str, template: str, context: dict, what: str) -> None:
    """Render ``template`` (.txt and .html) with ``context`` and send it to ``to``; ``what`` names it in logs."""
    message = EmailMultiAlternatives(
        subject=subject, body=render_to_string(f"{template}.txt", context), to=[to]
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    if settings.EMAIL_SEND_IN_BACKGROUND:
        transaction.on_commit(
            lambda: threading.Thread(target=_send, args=(message, what), daemon=True).start()
        )
    else:
        _send(message, what)
