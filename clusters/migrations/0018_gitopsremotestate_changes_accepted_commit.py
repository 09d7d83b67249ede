"""Where an operator had the database's state written over changes git held and it did not
(``gitops_sync --database-wins``): ``clusters.lost_changes`` looks only above it."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0017_invitations_their_inviter_cannot_give_revoked"),
    ]

    operations = [
        migrations.AddField(
            model_name="gitopsremotestate",
            name="changes_accepted_commit",
            field=models.CharField(blank=True, max_length=64),
        ),
    ]
