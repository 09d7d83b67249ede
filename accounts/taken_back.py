"""An account taken back from whoever may have held it: what it sent out elsewhere ends too.

A password changed, reset or set by an operator, or a deactivation (a deletion starts with one):
whoever knew the old password may have used the account meanwhile. Accounts ends its own
(sessions, personal access tokens); what another app keeps that the account sent (the clusters
app: the invitations it sent) that app ends, asked through one hook, ``ACCOUNT_TAKEN_BACK_FUNCTION``,
since accounts must not import it. Asked in the change's transaction, which holds the user's row
lock (accounts.locks): what the account is sending meanwhile is found, or refused.
"""

from __future__ import annotations

from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from accounts.models import User


class TakenBackFunction(Protocol):
    def __call__(self, *, user: User, actor: User | None, why: str) -> None: ...


@cache
def _taken_back_function(path: str) -> TakenBackFunction:
    return import_string(path)


def account_taken_back(*, user: User, actor: User | None, why: str) -> None:
    """Tell the app named by ``ACCOUNT_TAKEN_BACK_FUNCTION``; ``why``: what happened to the
    account, as in "password was reset"."""
    if settings.ACCOUNT_TAKEN_BACK_FUNCTION:
        _taken_back_function(settings.ACCOUNT_TAKEN_BACK_FUNCTION)(user=user, actor=actor, why=why)
