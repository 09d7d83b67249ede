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
from collections.abc import Callable
from functools import partial

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connections, transaction
from django.template.loader import render_to_string

logger = logging.getLogger(__name__)


def _render_and_send(*, to: str, subject: str, template: str, context: dict, what: str) -> None:
    message = EmailMultiAlternatives(
        subject=subject, body=render_to_string(f"{template}.txt", context), to=[to]
    )
    message.attach_alternative(render_to_string(f"{template}.html", context), "text/html")
    try:
        message.send()
    except OSError:  # SMTP failures are OSErrors (smtplib.SMTPException included)
        logger.exception("the %s email could not be sent", what)


def mail_send(*, to: str, subject: str, template: str, context: dict, what: str) -> None:
    """Render ``template`` (.txt and .html) with ``context`` and send it to ``to``; ``what`` names it in logs.

    In the background the templates are rendered there too: their time would otherwise be the
    difference between a reset asked for a known address and one for an unknown address.
    """
    send = partial(_render_and_send, to=to, subject=subject, template=template, context=context, what=what)
    if settings.EMAIL_SEND_IN_BACKGROUND:
        transaction.on_commit(
            lambda: threading.Thread(target=_on_own_thread, args=(send,), daemon=True).start()
        )
    else:
        send()


def _on_own_thread(send: Callable[[], None]) -> None:
    try:
        send()
    finally:
        connections.close_all()  # this thread's own, if a template read the database
