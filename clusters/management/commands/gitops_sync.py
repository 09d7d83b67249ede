"""``manage.py gitops_sync [--check] [--bootstrap] [--database-wins]``: make the GitOps repository
equal to the database.

It also finishes the key rotations whose grace period (``KEY_ROTATION_GRACE``) is over, before
it delivers: run by the CronJob, that is what makes a forgotten rotation end on time.
"""

from django.core.management.base import BaseCommand, CommandError

from clusters.sync import (
    UNKNOWN_FOLDERS,
    SyncReport,
    lost_changes_problem,
    repository_sync,
    sync_done,
    sync_notes,
    sync_problems,
)
from gitops.errors import RepositoryUnavailable

_LOST_LISTED = 20  # lines; the count says how many there are


class Command(BaseCommand):
    help = (
        "Make the GitOps repository equal to the database: commit pending changes (one commit each) "
        "and any drift, push, then compact the local repository. With --check, only report the files "
        "that differ and what would change in them (exit status 1 when any do). Folders under clients/ that "
        "no client or cluster owns are reported, never deleted (exit status 1). When git holds cluster "
        "changes the database does not (restored from an older backup), nothing is written (exit status 1) "
        "unless --database-wins. Key rotations past their grace period are finished first (not with --check)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--check", action="store_true", help="Report drift without writing.")
        parser.add_argument(
            "--bootstrap",
            action="store_true",
            help="Also rewrite argocd/applicationset.yaml, argocd/appproject.yaml and README.md as this "
            "version of the portal renders them (after an upgrade, a QDRANT_CHART_VERSION or "
            "GITOPS_REMOTE_URL change; hand edits are lost).",
        )
        parser.add_argument(
            "--database-wins",
            action="store_true",
            help="Write the database's state over git even where git holds cluster changes the database "
            "does not (after restoring an older backup, once you have reconciled them: they are undone).",
        )

    def handle(self, *args, check: bool = False, bootstrap: bool = False, **options) -> None:
        database_wins = options.get("database_wins", False)
        if check and database_wins:
            raise CommandError("--check writes nothing: --database-wins goes without it.")
        report = self._sync_run(check=check, bootstrap=bootstrap, database_wins=database_wins)
        for cluster in report.rotations_finished:
            self.stdout.write(f"Key rotation of {cluster} finished after its grace period.")
        matched = "git matches the database" + (
            ", the Argo CD manifests and README included" if bootstrap else ""
        )
        self._findings_write(report)
        if check:
            self._check_report(report, matched)
        else:
            self._sync_report(report, matched)

    @staticmethod
    def _sync_run(*, check: bool, bootstrap: bool, database_wins: bool) -> SyncReport:
        try:
            return repository_sync(
                check=check, bootstrap=bootstrap, database_wins=database_wins, rotations_finish=not check
            )
        except RepositoryUnavailable as error:
            raise CommandError(f"GitOps repository unavailable: {error}") from error

    def _findings_write(self, report: SyncReport) -> None:
        """One line per finding: each drifted file (written, or not: ``--check``, changes git holds
        that the database lacks) with what changes in it."""
        for conflict in report.conflicts:
            self.stdout.write(f"conflict: {conflict}")
        for folder in report.unknown_folders:
            self.stdout.write(f"unknown folder: {folder}")
        for lost in report.lost_changes[:_LOST_LISTED] if report.held else ():
            self.stdout.write(f"not in the database: {lost}")
        if report.held and len(report.lost_changes) > _LOST_LISTED:
            self.stdout.write(f"not in the database: and {len(report.lost_changes) - _LOST_LISTED} more")
        for path in report.drifted_paths:
            described = report.drift_described.get(path)
            self.stdout.write(f"drift: {path} ({described})" if described else f"drift: {path}")
        for path in report.bootstrap_differs:
            self.stdout.write(f"bootstrap file differs: {path}")

    def _check_report(self, report: SyncReport, matched: str) -> None:
        if report.remote_empty:
            raise CommandError(
                f"The GitOps remote has no branch yet: Argo CD has nothing to deploy. gitops_sync pushes "
                f"the {len(report.drifted_paths)} file(s) above, the Argo CD manifests among them."
            )
        found = [lost_changes_problem(report), *sync_notes(report)]
        if report.drifted_paths or report.conflicts or report.unknown_folders or any(found):
            raise CommandError(
                " ".join(
                    [
                        f"{len(report.drifted_paths)} file(s) differ from the database; "
                        f"{len(report.conflicts)} cluster(s) cannot be rendered; "
                        f"{UNKNOWN_FOLDERS.format(len(report.unknown_folders))}.",
                        *filter(None, found),
                    ]
                )
            )
        self.stdout.write(self.style.SUCCESS(f"No drift: {matched}."))

    def _sync_report(self, report: SyncReport, matched: str) -> None:
        """What the sync did; a non-zero exit when something is left undone (a CronJob that exits 0
        then would look healthy while nothing deploys)."""
        done = sync_done(report)
        for line in done:
            self.stdout.write(line)
        for note in sync_notes(report):
            self.stdout.write(self.style.WARNING(note))
        problems = sync_problems(report)
        if problems:
            raise CommandError(" ".join(problems))
        if not done:
            self.stdout.write(self.style.SUCCESS(f"Nothing to sync: {matched}."))
