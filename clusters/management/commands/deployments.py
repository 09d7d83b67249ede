"""``manage.py deployments [--watch]``: every cluster's deployment state, as Argo CD reports it.

Exit status (for a monitoring check): 1 when any cluster is ``failed`` or ``degraded``; else 3
when any is ``unknown`` (Argo CD unreachable, the token refused, no Application: nothing is
known to be wrong, but nothing is known to be right either); 2 when Argo CD is not
configured. With ``--watch`` the table is printed again every ``--interval`` seconds until
interrupted, and the exit status is the last table's.
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from clusters.deployment_states import ALERTING_STATES, DEPLOYMENT_STATES, UNKNOWN
from clusters.deployments import all_deployments, argocd_configured

_COLUMNS = ("CLUSTER", "STATE", "COMMITTED", "DEPLOYED", "SYNC", "HEALTH", "MESSAGE")
EXIT_ALERTING = 1
EXIT_NOT_CONFIGURED = 2
EXIT_UNKNOWN = 3


def _seconds(raw: str) -> float:
    """--interval: a number of seconds a person would wait between two tables (not nan, inf)."""
    try:
        seconds = float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a number of seconds") from None
    if not 0.5 <= seconds <= 86400:  # False for nan too
        raise argparse.ArgumentTypeError(f"{raw} is not between 0.5 and 86400 seconds")
    return seconds


def _rounds(raw: str) -> int:
    try:
        rounds = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number") from None
    if rounds < 0:
        raise argparse.ArgumentTypeError("--rounds cannot be negative")
    return rounds


class Command(BaseCommand):
    help = (
        "Print every cluster's deployment state as Argo CD reports it (pending, syncing, deployed, "
        "degraded, failed, unknown). Exit status: 1 when any cluster is failed or degraded; else 3 "
        "when any is unknown (Argo CD unreachable, token refused, no Application); 2 when Argo CD is "
        "not configured; 0 otherwise."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--watch", action="store_true", help="Print the table again until interrupted.")
        parser.add_argument(
            "--interval",
            type=_seconds,
            default=5.0,
            help="Seconds between two tables with --watch, 0.5 to 86400 (default 5).",
        )
        parser.add_argument(
            "--rounds",
            type=_rounds,
            default=0,
            help="With --watch, stop after this many tables (default: never).",
        )

    def handle(self, *args, watch: bool = False, interval: float = 5.0, rounds: int = 0, **options) -> None:
        if not argocd_configured():
            raise CommandError(
                "Argo CD is not configured: set ARGOCD_URL and ARGOCD_TOKEN.", returncode=EXIT_NOT_CONFIGURED
            )
        counts, printed = Counter(), 0
        try:
            while True:
                counts = self._table()
                printed += 1
                if not watch or (rounds and printed >= rounds):
                    break
                time.sleep(interval)
        except KeyboardInterrupt:
            self.stdout.write("")
        alerting = sum(counts[state] for state in ALERTING_STATES)
        if alerting:
            raise CommandError(f"{alerting} cluster(s) failed or degraded.", returncode=EXIT_ALERTING)
        if counts[UNKNOWN]:
            raise CommandError(
                f"{counts[UNKNOWN]} cluster(s) unknown: Argo CD could not tell (see MESSAGE).",
                returncode=EXIT_UNKNOWN,
            )

    def _table(self) -> Counter[str]:
        """Print one table; returns how many clusters are in each state."""
        rows = [
            (
                str(cluster),
                deployment.state,
                (deployment.committed_revision or "-")[:12],
                (deployment.deployed_revision or "-")[:12],
                deployment.sync or "-",
                deployment.health or "-",
                deployment.message,
            )
            for cluster, deployment in all_deployments()
        ]
        widths = [
            max([len(column), *(len(row[index]) for row in rows)]) for index, column in enumerate(_COLUMNS)
        ]
        self.stdout.write(f"{timezone.now():%Y-%m-%d %H:%M:%S} UTC")
        for row in [_COLUMNS, *rows]:
            self.stdout.write(
                "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
            )
        counts = Counter(row[1] for row in rows)
        summary = ", ".join(f"{counts[state]} {state}" for state in DEPLOYMENT_STATES if counts[state])
        self.stdout.write(f"{len(rows)} cluster(s): {summary or 'none'}")
        return counts
