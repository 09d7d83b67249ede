from django.core.management.base import BaseCommand

from clusters.services import cluster_keys_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every cluster's API keys under the first FIELD_ENCRYPTION_KEY secret, "
        "so that the older secrets after it can be removed."
    )

    def handle(self, *args, **options) -> None:
        count = cluster_keys_reencrypt()
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted the API keys of {count} cluster(s)."))
