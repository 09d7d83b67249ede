"""Record with each client audit event whether its actor was one of the portal's operators.

Events recorded before are marked from who is an operator now: the best there is to go on.
"""

from django.db import migrations, models


def mark_operators_events(apps, schema_editor) -> None:
    ClientAuditEvent = apps.get_model("clusters", "ClientAuditEvent")
    ClientAuditEvent.objects.filter(actor__is_operator=True).update(by_operator=True)


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0007_clientauditevent_credentials_revealed"),
        ("accounts", "0011_session_end_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="clientauditevent",
            name="by_operator",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(mark_operators_events, migrations.RunPython.noop),
    ]
