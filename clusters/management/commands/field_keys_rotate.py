from django.core.management.base import BaseCommand, CommandError

from accounts.factor_enrolment import totp_secrets_reencrypt
from clusters.services import cluster_keys_reencrypt
from config.crypto import FieldDecryptionError


class Command(BaseCommand):
    help = (
        "Re-encrypt every secret stored encrypted (the clusters' API keys, the authenticator apps' "
        "secrets) under the first FIELD_ENCRYPTION_KEY secret, so that the older secrets after it "
        "can be removed."
    )

    def handle(self, *args, **options) -> None:
        try:
            clusters = cluster_keys_reencrypt()
            devices = totp_secrets_reencrypt()
        except FieldDecryptionError as error:
            # Each row is re-encrypted on its own: those before this one are done, and running
            # the command again once the secret is back finishes the rest.
            raise CommandError(
                f"{error} None of FIELD_ENCRYPTION_KEY's secrets opens it: the secret it was "
                "encrypted with was replaced instead of kept after the new one. Put it back at the "
                "end of FIELD_ENCRYPTION_KEY (comma-separated) and run this command again."
            ) from error
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted the API keys of {clusters} cluster(s) and the secrets of {devices} "
                "authenticator app(s)."
            )
        )
