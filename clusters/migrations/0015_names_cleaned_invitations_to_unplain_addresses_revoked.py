"""Data stored before today's rules: client names are cleaned to config.text's rule (else saving a
client for another reason fails on its name), and open invitations to an address that is no longer
accepted (a quoted part, an IP literal: accounts.emails) are revoked, on the client's audit trail:
their sign-up would fail, and such an address reads as another to a careless parser."""

from django.core.exceptions import ValidationError
from django.db import migrations
from django.utils import timezone

from accounts.emails import email_canonical
from config.text import display_text_clean, display_text_validator


def _accepted(check, value: str) -> bool:
    try:
        check(value)
    except ValidationError:
        return False
    return True


def client_names_clean(apps, schema_editor) -> None:
    Client = apps.get_model("clusters", "Client")
    for client in Client.objects.only("pk", "slug", "name").iterator():
        if not _accepted(display_text_validator, client.name):
            Client.objects.filter(pk=client.pk).update(name=display_text_clean(client.name) or client.slug)


def unplain_invitations_revoke(apps, schema_editor) -> None:
    Invitation = apps.get_model("clusters", "Invitation")
    ClientAuditEvent = apps.get_model("clusters", "ClientAuditEvent")
    now = timezone.now()
    for invitation in Invitation.objects.filter(accepted_at=None, revoked_at=None).iterator():
        if _accepted(email_canonical, invitation.email):
            continue
        Invitation.objects.filter(pk=invitation.pk).update(revoked_at=now)
        ClientAuditEvent.objects.create(
            client_id=invitation.client_id,
            at=now,
            type="invitation_revoked",
            target_email=invitation.email,
            detail=f"as {invitation.role}; the address is no longer accepted",
        )


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0014_client_slug_not_the_portals_namespace"),
        ("accounts", "0014_names_cleaned"),
    ]

    operations = [
        migrations.RunPython(client_names_clean, migrations.RunPython.noop),
        migrations.RunPython(unplain_invitations_revoke, migrations.RunPython.noop),
    ]
