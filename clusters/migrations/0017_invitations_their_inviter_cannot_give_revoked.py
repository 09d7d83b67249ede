"""Invitations stored before they ended with their inviter's rank (clusters.services.invitation_ends):
a pending one its inviter can no longer give (the inviter deleted, deactivated, removed from the
client or demoted since) is revoked, on the client's audit trail. Its sign-up was refused
already, yet it was listed as pending, and a reactivation or a promotion would have revived it."""

from django.db import migrations
from django.utils import timezone

# clusters.permissions.ROLE_ORDER as this migration was written: later roles must not change it.
RANKS = {"viewer": 0, "operator": 1, "admin": 2}


def _inviter_rank(inviter, client_id: int, Grant) -> int:
    if inviter is None or not inviter.is_active:
        return -1
    if inviter.is_staff and inviter.is_operator:
        return len(RANKS)
    role = (
        Grant.objects.filter(user_id=inviter.pk, client_id=client_id).values_list("role", flat=True).first()
    )
    return RANKS.get(role, -1)


def beyond_their_inviter_revoke(apps, schema_editor) -> None:
    Invitation = apps.get_model("clusters", "Invitation")
    Grant = apps.get_model("clusters", "Grant")
    ClientAuditEvent = apps.get_model("clusters", "ClientAuditEvent")
    now = timezone.now()
    pending = Invitation.objects.filter(accepted_at=None, revoked_at=None, expires_at__gt=now)
    for invitation in pending.select_related("invited_by").iterator():
        if RANKS[invitation.role] <= _inviter_rank(invitation.invited_by, invitation.client_id, Grant):
            continue
        Invitation.objects.filter(pk=invitation.pk).update(revoked_at=now)
        ClientAuditEvent.objects.create(
            client_id=invitation.client_id,
            at=now,
            type="invitation_revoked",
            target_email=invitation.email,
            detail=f"as {invitation.role}; the inviter can no longer give it",
        )


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0016_removed_members"),
        ("accounts", "0017_user_password_version"),
    ]

    operations = [migrations.RunPython(beyond_their_inviter_revoke, migrations.RunPython.noop)]
