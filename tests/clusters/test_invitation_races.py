"""What ends an inviter's invitations (their password changed, their deactivation, their removal
from the client) and an invitation being sent by them wait for each other: whichever commits
first, no invitation the other should have ended is left pending.

Each test holds one side's transaction open once it has done its work, starts the other side,
then lets the first commit (as tests/accounts/test_races.py does).
"""

from __future__ import annotations

import pytest

from accounts.audit import RequestOrigin
from accounts.passwords import password_change
from accounts.services import session_start
from clusters.models import ClientAuditEvent, Grant, Invitation
from clusters.services import account_deactivate, grant_set, invitation_create, member_remove
from config.errors import AccountDisabled, RoleEscalation, SessionEnded
from tests.conftest import DEFAULT_PASSWORD
from tests.helpers import Racer, concurrent_writers_required, side_by_side

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ORIGIN = RequestOrigin(ip="192.0.2.10", user_agent="race")


@pytest.fixture(autouse=True)
def _writers_wait_for_each_other():
    concurrent_writers_required()


@pytest.fixture
def inviter(user_factory, client1):
    user = user_factory(email="inviter@example.com")
    grant_set(user=user, client=client1, role=Grant.Role.ADMIN)
    return user


def _session(user):
    return session_start(user=user, method="password", origin=ORIGIN).session_id


def _send(inviter, client, session_id=None) -> Racer:
    return Racer(
        lambda: invitation_create(
            client=client, email="newcomer@example.com", role="viewer", actor=inviter, session_id=session_id
        ),
        held=True,
    )


def _pending() -> list[str]:
    return [invitation.email for invitation in Invitation.objects.all() if invitation.state == "pending"]


def _revoked_because() -> list[str]:
    return list(ClientAuditEvent.objects.filter(type="invitation_revoked").values_list("detail", flat=True))


def _change_password(inviter, session_id) -> Racer:
    return Racer(
        lambda: password_change(
            user_id=inviter.pk,
            session_id=session_id,
            current_password=DEFAULT_PASSWORD,
            new_password="a quite new passphrase 42",
            origin=ORIGIN,
        ),
        held=True,
    )


def test_an_invitation_sent_while_the_password_changes_is_refused(inviter, client1):
    changer, sender = _session(inviter), _session(inviter)

    changed, sent = side_by_side(_change_password(inviter, changer), _send(inviter, client1, sender))

    assert not isinstance(changed, Exception)
    assert isinstance(sent, SessionEnded)  # its session ended with the old password
    assert _pending() == []


def test_an_invitation_sent_just_before_the_password_changes_is_ended_by_the_change(inviter, client1):
    changer, sender = _session(inviter), _session(inviter)

    sent, changed = side_by_side(_send(inviter, client1, sender), _change_password(inviter, changer))

    assert isinstance(sent, Invitation) and not isinstance(changed, Exception)
    assert _pending() == []  # the change waited for it, found it and ended it
    assert _revoked_because() == ["as viewer; the inviter's password was changed"]


def test_an_invitation_sent_while_the_inviter_is_deactivated_is_refused(inviter, client1):
    sender = _session(inviter)

    deactivated, sent = side_by_side(
        Racer(lambda: account_deactivate(user=inviter), held=True), _send(inviter, client1, sender)
    )

    assert deactivated is True
    assert isinstance(sent, SessionEnded | AccountDisabled)
    assert _pending() == []


def test_an_invitation_sent_just_before_the_inviter_is_deactivated_is_ended(inviter, client1):
    sent, deactivated = side_by_side(
        _send(inviter, client1), Racer(lambda: account_deactivate(user=inviter), held=True)
    )

    assert isinstance(sent, Invitation) and deactivated is True
    assert _pending() == []
    assert _revoked_because() == ["as viewer; the inviter's account was deactivated"]


def test_an_invitation_sent_while_the_inviter_is_removed_is_refused(inviter, admin1, client1):
    removed, sent = side_by_side(
        Racer(lambda: member_remove(client=client1, user_id=inviter.pk, actor=admin1), held=True),
        _send(inviter, client1),
    )

    assert removed is None
    assert isinstance(sent, RoleEscalation)  # checked once the removal is in
    assert _pending() == []


def test_an_invitation_sent_just_before_the_inviter_is_removed_is_ended(inviter, admin1, client1):
    sent, removed = side_by_side(
        _send(inviter, client1),
        Racer(lambda: member_remove(client=client1, user_id=inviter.pk, actor=admin1), held=True),
    )

    assert isinstance(sent, Invitation) and removed is None
    assert _pending() == []
    assert _revoked_because() == ["as viewer; the inviter was removed from the client"]
