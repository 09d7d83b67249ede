from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from clusters.services import DEMO_USERS, demo_data_seed


class Command(BaseCommand):
    help = "Create the demo clients, users, grants and clusters (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run even with DEBUG off (the demo users have well-known passwords).",
        )

    def handle(self, *args, force: bool = False, **options) -> None:
        if not settings.DEBUG and not force:
            raise CommandError(
                "seed_demo creates accounts with well-known passwords; "
                "it runs only with DJANGO_DEBUG=1 unless --force is given."
            )
        demo_data_seed()
        logins = ", ".join(f"{u.email} / {u.password}" for u in DEMO_USERS)
        self.stdout.write(self.style.SUCCESS(f"Demo data ready. Sign in with: {logins}"))
