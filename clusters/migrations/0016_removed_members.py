"""Removed members, kept apart from the audit trail that records_prune deletes: filled from the
``member_removed`` events still on the trails (the latest per client and address), except for
people who are members again."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


def removed_members_fill(apps, schema_editor) -> None:
    ClientAuditEvent = apps.get_model("clusters", "ClientAuditEvent")
    Grant = apps.get_model("clusters", "Grant")
    RemovedMember = apps.get_model("clusters", "RemovedMember")
    removals = ClientAuditEvent.objects.filter(type="member_removed").exclude(target_email="")
    latest = {}
    for event in removals.order_by("at", "id").iterator():  # a later one replaces an earlier one
        latest[(event.client_id, event.target_email)] = event
    for (client_id, email), event in latest.items():
        again = Grant.objects.filter(client_id=client_id, user__email=email)
        if event.target_user_id is not None:
            again = again | Grant.objects.filter(client_id=client_id, user_id=event.target_user_id)
        if again.exists():
            continue
        RemovedMember.objects.create(
            client_id=client_id,
            email=email,
            user_id=event.target_user_id,
            removed_at=event.at,
            removed_by_email=event.actor_email,
        )


class Migration(migrations.Migration):
    dependencies = [
        ("clusters", "0015_names_cleaned_invitations_to_unplain_addresses_revoked"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="RemovedMember",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("email", models.EmailField(max_length=254)),
                ("removed_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("removed_by_email", models.CharField(blank=True, max_length=254)),
                (
                    "client",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="clusters.client"
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-removed_at", "-id"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("client", "email"), name="clusters_removedmember_one_per_email"
                    )
                ],
            },
        ),
        migrations.RunPython(removed_members_fill, migrations.RunPython.noop),
    ]
