"""Record with each cluster change the credential and address of the request that asked for it,
and whether its actor was one of the portal's operators (whose are not the client's to see).

Changes recorded before have no credential or address; they are marked from who is an
operator now, as 0008 did for the client's audit trail.
"""

from django.db import migrations, models


def mark_operators_changes(apps, schema_editor) -> None:
    ClusterChange = apps.get_model("clusters", "ClusterChange")
    ClusterChange.objects.filter(actor__is_operator=True).update(by_operator=True)


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0008_clientauditevent_by_operator"),
    ]

    operations = [
        migrations.AddField(
            model_name="clusterchange",
            name="by_operator",
            field=models.BooleanField(default=False),
        ),
        migrations.AddField(
            model_name="clusterchange",
            name="credential",
            field=models.CharField(blank=True, max_length=255),
        ),
        migrations.AddField(
            model_name="clusterchange",
            name="ip",
            field=models.GenericIPAddressField(blank=True, null=True, verbose_name="IP address"),
        ),
        migrations.RunPython(mark_operators_changes, migrations.RunPython.noop),
    ]
