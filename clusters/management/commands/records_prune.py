"""``manage.py records_prune [--dry-run] [--older-than 365d]``: delete audit trails past their retention.

Deletes the sign-in audit events, the ended sessions and personal access tokens (with the IP
address each recorded), the clients' audit events and ended invitations older than
``AUDIT_RETENTION``, and blanks the address and credential of older cluster changes; run daily
by the CronJob ``portal-records-prune``. Live sessions and tokens are never deleted.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.audit import sign_in_records_prune
from clusters.services.audit import client_records_prune
from config.env import duration_parse

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = (
        "Delete sign-in audit events, ended sessions and access tokens, client audit events and ended "
        "invitations older than AUDIT_RETENTION (or --older-than), and forget older cluster changes' "
        "addresses. Live sessions and tokens are never deleted."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--older-than",
            metavar="DURATION",
            help="Keep this much instead of AUDIT_RETENTION: seconds or a number with a unit (s, m, h, d), "
            "at least 1d.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )

    def handle(self, *args, older_than: str | None = None, dry_run: bool = False, **options) -> None:
        retention = self._retention(older_than)
        before = timezone.now() - retention
        counts = sign_in_records_prune(before=before, dry_run=dry_run)
        counts |= client_records_prune(before=before, dry_run=dry_run)
        summary = ", ".join(f"{count} {what}" for what, count in counts.items())
        verb = "Would delete" if dry_run else "Deleted"
        self.stdout.write(f"{verb} {summary} from before {before:%Y-%m-%d %H:%M} UTC.")
        if not dry_run:
            logger.info("records pruned: %s, before %s", summary, before.isoformat())

    @staticmethod
    def _retention(older_than: str | None) -> timedelta:
        if older_than is None:
            return settings.AUDIT_RETENTION
        try:
            retention = duration_parse(older_than)
        except ValueError as error:
            raise CommandError(f"--older-than: {error}; for example 90d.") from None
        if retention < settings.AUDIT_RETENTION_MINIMUM:
            raise CommandError(f"--older-than must be at least 1d, got {older_than!r}.")
        return retention
