from django.core.management.base import BaseCommand, CommandError

from gitops.repository import GitopsUnavailable
from gitops.services import GitopsConflict, repository_sync


class Command(BaseCommand):
    help = (
        "Make the GitOps repository equal to the database: commit pending changes and any drift, "
        "then push. With --check, only report the files that differ (exit status 1 when any do)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--check", action="store_true", help="Report drift without writing.")

    def handle(self, *args, check: bool = False, **options) -> None:
        try:
            report = repository_sync(check=check)
        except GitopsUnavailable as error:
            raise CommandError(f"GitOps repository unavailable: {error}") from error
        except GitopsConflict as error:
            raise CommandError(f"Everything else is synced. {error}") from error
        if check:
            for conflict in report.conflicts:
                self.stdout.write(f"conflict: {conflict}")
            if report.drifted_paths or report.conflicts:
                for path in report.drifted_paths:
                    self.stdout.write(f"drift: {path}")
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
