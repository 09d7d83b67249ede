from django.core.management.base import BaseCommand

from accounts.factor_enrolment import totp_secrets_reencrypt
from clusters.services import cluster_keys_reencrypt


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret stored encrypted (the clusters' API keys, the authenticator apps' "
        "secrets) under the first FIELD_ENCRYPTION_KEY secret, so that the older secrets after it "
        "can be removed."
    )

    def handle(self, *args, **options) -> None:
        clusters = cluster_keys_reencrypt()
        devices = totp_secrets_reencrypt()
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted the API keys of {clusters} cluster(s) and the secrets of {devices} "
                "authenticator app(s)."
            )
        )
