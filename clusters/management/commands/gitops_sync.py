"""``manage.py gitops_sync [--check]``: make the GitOps repository equal to the database."""

from django.core.management.base import BaseCommand, CommandError

from clusters.delivery import repository_sync
from gitops.errors import RepositoryUnavailable


class Command(BaseCommand):
    help = (
        "Make the GitOps repository equal to the database: commit pending changes (one commit each) "
        "and any drift, push, then compact the local repository. With --check, only report the files "
        "that differ (exit status 1 when any do)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--check", action="store_true", help="Report drift without writing.")

    def handle(self, *args, check: bool = False, **options) -> None:
        try:
            report = repository_sync(check=check)
        except RepositoryUnavailable as error:
            raise CommandError(f"GitOps repository unavailable: {error}") from error
        for conflict in report.conflicts:
            self.stdout.write(f"conflict: {conflict}")
        if check:
            for path in report.drifted_paths:
                self.stdout.write(f"drift: {path}")
            if report.drifted_paths or report.conflicts:
                raise CommandError(
                    f"{len(report.drifted_paths)} file(s) differ from the database; "
                    f"{len(report.conflicts)} cluster(s) cannot be rendered."
                )
            self.stdout.write(self.style.SUCCESS("No drift: git matches the database."))
            return
        if report.commit:
            state = "pushed" if report.pushed else "committed locally (remote unreachable)"
            self.stdout.write(f"Synced {len(report.drifted_paths)} file(s) in {report.commit[:12]}, {state}.")
        else:
            self.stdout.write(self.style.SUCCESS("Nothing to sync: git matches the database."))
        if report.conflicts:
            raise CommandError(
                f"Everything else is synced; {len(report.conflicts)} cluster(s) cannot be rendered until "
                "their files in git are fixed."
            )
