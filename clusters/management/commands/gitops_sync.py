"""``manage.py gitops_sync [--check] [--bootstrap]``: make the GitOps repository equal to the database.

It also finishes the key rotations whose grace period (``KEY_ROTATION_GRACE``) is over, before
it delivers: run by the CronJob, that is what makes a forgotten rotation end on time.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from clusters.services import key_rotations_finish_due
from clusters.sync import SyncReport, repository_sync
from gitops.errors import RepositoryUnavailable

_LOCAL_ONLY = "Delivered {} pending change(s) (no GITOPS_REMOTE_URL: local only)."


class Command(BaseCommand):
    help = (
        "Make the GitOps repository equal to the database: commit pending changes (one commit each) "
        "and any drift, push, then compact the local repository. With --check, only report the files "
        "that differ (exit status 1 when any do). Key rotations past their grace period are finished first "
        "(not with --check)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--check", action="store_true", help="Report drift without writing.")
        parser.add_argument(
            "--bootstrap",
            action="store_true",
            help="Also rewrite argocd/applicationset.yaml, argocd/appproject.yaml and README.md as this "
            "version of the portal renders them (after an upgrade or a QDRANT_CHART_VERSION change; hand "
            "edits are lost).",
        )

    def handle(self, *args, check: bool = False, bootstrap: bool = False, **options) -> None:
        if not check:
            for cluster in key_rotations_finish_due():
                self.stdout.write(f"Key rotation of {cluster} finished after its grace period.")
        try:
            report = repository_sync(check=check, bootstrap=bootstrap)
        except RepositoryUnavailable as error:
            raise CommandError(f"GitOps repository unavailable: {error}") from error
        matched = "git matches the database" + (
            ", the Argo CD manifests and README included" if bootstrap else ""
        )
        for conflict in report.conflicts:
            self.stdout.write(f"conflict: {conflict}")
        if check:
            for path in report.drifted_paths:
                self.stdout.write(f"drift: {path}")
            if report.remote_empty:
                raise CommandError(
                    f"The GitOps remote has no branch yet: Argo CD has nothing to deploy. gitops_sync pushes "
                    f"the {len(report.drifted_paths)} file(s) above, the Argo CD manifests among them."
                )
            if report.drifted_paths or report.conflicts:
                raise CommandError(
                    f"{len(report.drifted_paths)} file(s) differ from the database; "
                    f"{len(report.conflicts)} cluster(s) cannot be rendered."
                )
            self.stdout.write(self.style.SUCCESS(f"No drift: {matched}."))
            return
        self._sync_report(report, matched)

    def _sync_report(self, report: SyncReport, matched: str) -> None:
        """What the sync did; a non-zero exit when something is left undelivered."""
        if report.changes_committed:
            self.stdout.write(f"Committed {report.changes_committed} pending change(s), one commit each.")
        if report.changes_pushed:
            pushed = (
                "Pushed {} pending change(s) to the remote." if settings.GITOPS_REMOTE_URL else _LOCAL_ONLY
            )
            self.stdout.write(pushed.format(report.changes_pushed))
        if report.commit:
            self.stdout.write(f"Synced {len(report.drifted_paths)} drifted file(s) in {report.commit[:12]}.")
        if report.remote_started:
            self.stdout.write(
                "The GitOps remote had no branch: pushed it, with the Argo CD manifests to apply once "
                "from a clone (argocd/, see its README)."
            )
        problems = []
        if not report.pushed:  # a CronJob that exits 0 here would look healthy while nothing deploys
            problems.append(
                "Committed locally, not pushed: the GitOps remote did not take the commits (see the log), "
                "so Argo CD cannot deploy them; the next change or gitops_sync pushes them."
            )
        if not report.remote_reachable and report.pushed:
            problems.append(
                "The GitOps remote could not be fetched (see the log): edits made there, if any, were not "
                "seen, so git may still differ from the database."
            )
        if report.conflicts:
            rest = "Everything else is synced; " if report.pushed else ""
            problems.append(
                f"{rest}{len(report.conflicts)} cluster(s) cannot be rendered until their files in git are fixed."
            )
        if problems:
            raise CommandError(" ".join(problems))
        if not (report.changes_committed or report.changes_pushed or report.commit or report.remote_started):
            self.stdout.write(self.style.SUCCESS(f"Nothing to sync: {matched}."))
