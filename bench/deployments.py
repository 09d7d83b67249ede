"""Deployment states with a long git history: the admin's cluster list, its deployment filter,
the system status's count and ``manage.py deployments``, with M clusters and N commits.

Run: python bench/deployments.py [--commits 1000,5000,20000] [--clusters 300] [--runs 3]
     [--before-up-to 20000]

One portal runs in this process (Django, SQLite and a local gitops repository in a temporary
folder, no remote) with M clusters made through ``clusters.services`` (5 per client), and the
tests' fake Argo CD (tests/support/fake_argocd.py, on loopback) reports every Application
synced and healthy at the branch tip. The history grows to each N commits: people's commits to
a file outside the cluster folders (``git fast-import``), then one cluster changed through the
portal, so the tip is the portal's and the other clusters' latest changes lie N commits back
(about a year of changes at 20,000), and packed as housekeeping leaves it
(``repository_compact``). Argo CD's answers stay cached: only the portal's own work is timed.

Each of the four is timed three ways, side by side (the median of ``--runs`` after one untimed
run; "before" once, without the untimed run, as it takes over a minute at 20,000 commits):

- before: each row asks git whether the deployed revision holds its change, walking back from
  the revision to it (``commit_is_ancestor``, twice a row), as the portal did before;
- first: the portal now, as in a fresh process: the histories it keeps are dropped, and so are
  libgit2's parsed commits (the repository is opened again);
- next: the portal now, a later page of the same process (the tip's history is kept).

No remote and no other service is needed; the fake Argo CD wants Argo CD's API description in
``../shared/reference`` (as the tests do). Repositories live under ``TMPDIR``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.portal_server import server_env  # noqa: E402
from tests.support.fake_argocd import FakeArgoCD  # noqa: E402

CLUSTERS_PER_CLIENT = 5
ARGOCD_TOKEN = "bench-argocd-token"  # noqa: S105 - the fake's, on loopback
PASSWORD = "bench password 123"  # noqa: S105 - a throwaway operator of the benchmark
PAGES = {
    "cluster list": "/admin/clusters/cluster/",
    "?deployment=deployed": "/admin/clusters/cluster/?deployment=deployed",
}
WAYS = ("before", "first", "next")


def _django_start(run_dir: Path, argocd_url: str) -> None:
    os.environ.update(
        server_env(
            run_dir,
            ARGOCD_URL=argocd_url,
            ARGOCD_TOKEN=ARGOCD_TOKEN,
            ARGOCD_TIMEOUT="30s",
            ARGOCD_CACHE_TTL="1h",  # Argo CD answers once: the portal's work is what is timed
            MFA_REQUIRED_FOR_STAFF="0",  # the operator signs in with a password alone
        )
    )
    import django

    warnings.filterwarnings("ignore", message="No directory at")  # no collectstatic: no static files served
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _operator_browser():
    """An operator's browser signed in to the admin, as the sign-in page leaves it."""
    from django.test import Client

    from accounts.admin_site import PORTAL_SESSION_KEY
    from accounts.audit import RequestOrigin
    from accounts.models import AuthMethod, User
    from accounts.services import session_start

    user = User.objects.create_superuser(email="ops@example.com", password=PASSWORD, name="Ops")
    browser = Client(HTTP_HOST="localhost")
    browser.force_login(user)
    issued = session_start(
        user=user, method=AuthMethod.PASSWORD, origin=RequestOrigin(ip="127.0.0.1", user_agent="bench")
    )
    session = browser.session
    session[PORTAL_SESSION_KEY] = str(issued.session_id)
    session.save()
    return browser


def _clusters_make(count: int) -> list[tuple[str, str]]:
    from clusters.services import client_create, cluster_create

    made = []
    for index in range(count):
        client, slug = f"client{index // CLUSTERS_PER_CLIENT}", f"cluster{index % CLUSTERS_PER_CLIENT}"
        if index % CLUSTERS_PER_CLIENT == 0:
            owner = client_create(slug=client, name=f"Client {client}")
        cluster_create(client=owner, slug=slug, actor=None, replicas=1)
        made.append((client, slug))
    return made


def _history_grow(repository, commits: int) -> None:
    """People's commits on the branch tip until it holds ``commits`` commits (one file, ``git fast-import``)."""
    from gitops.repository import branch_tip

    handle, tip = _handle(repository), branch_tip(repository=repository)
    have = sum(1 for _ in handle.walk(handle[tip].id))
    if have >= commits:
        return
    when = handle[tip].commit_time  # no commit older than its parent: no clock skew to walk through
    lines = []
    for number in range(commits - have):
        message, content = f"hand edit {number}\n", f"change {number}\n"
        lines += [
            f"commit {repository.ref_name}",
            f"committer Ops <ops@example.com> {when} +0000",
            f"data {len(message)}",
            message,
        ]
        if number == 0:
            lines.append(f"from {tip}")
        lines += ["M 100644 inline notes/changes.txt", f"data {len(content)}", content]
    subprocess.run(
        ["git", "--git-dir", str(repository.path), "fast-import", "--quiet"],
        input="\n".join(lines).encode(),
        check=True,
    )


def _handle(repository):
    import pygit2

    return pygit2.Repository(str(repository.path))


def _fresh_process(repository) -> None:
    """As a process that has not read the repository yet: no kept histories, a new handle."""
    from gitops import remote
    from gitops import repository as repositories

    with remote._histories_lock:
        remote._histories.clear()
    repositories._handle_forget(repository)


def _revision_contains_before(*, deployed: str, change) -> bool:
    """The rule as it was: a walk back from ``deployed`` to ``change``'s commit for each row."""
    from clusters import deployment_states as states
    from gitops.errors import RepositoryUnavailable
    from gitops.remote import commit_is_ancestor
    from gitops.repository import commit_exists

    if not deployed or not states._GIT_COMMIT.fullmatch(deployed):
        return False
    if deployed == change.commit:
        return True
    repository = states._repository()
    try:
        if commit_exists(repository=repository, commit=deployed) and commit_exists(
            repository=repository, commit=change.commit
        ):
            return commit_is_ancestor(repository=repository, ancestor=change.commit, descendant=deployed)
    except RepositoryUnavailable:
        pass
    return states._portal_order_contains(deployed, change)


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def _cases(browser) -> dict[str, Callable[[], object]]:
    from django.core.management import CommandError, call_command

    from clusters.deployments import deployments_summary

    def page(path: str) -> Callable[[], object]:
        def get() -> None:
            response = browser.get(path)
            assert response.status_code == 200, (path, response.status_code)

        return get

    def command() -> None:
        try:
            call_command("deployments", stdout=StringIO())
        except CommandError as error:
            raise SystemExit(f"manage.py deployments exited {error.returncode}") from error

    return {
        **{name: page(path) for name, path in PAGES.items()},
        "status: clusters by state": deployments_summary,
        "manage.py deployments": command,
    }


def _measure(repository, cases: dict[str, Callable[[], object]], runs: int, before: bool) -> dict:
    from clusters import deployment_states as states

    figures: dict[tuple[str, str], float | None] = {}
    now = states.revision_contains
    for name, case in cases.items():
        if before:
            states.revision_contains = _revision_contains_before
            try:
                _fresh_process(repository)
                figures[name, "before"] = _timed(case)
            finally:
                states.revision_contains = now
        else:
            figures[name, "before"] = None
        firsts, nexts = [], []
        for _ in range(runs):
            _fresh_process(repository)
            firsts.append(_timed(case))
            nexts.append(_timed(case))
        figures[name, "first"], figures[name, "next"] = statistics.median(firsts), statistics.median(nexts)
    return figures


def _size_run(repository, argocd, made, browser, commits: int, runs: int, before: bool) -> dict:
    from django.core.cache import cache

    from clusters.models import Cluster
    from clusters.services import cluster_update
    from gitops.repository import branch_tip, repository_compact

    _history_grow(repository, commits - 1)
    cluster = Cluster.objects.get(client__slug=made[0][0], slug=made[0][1])
    cluster_update(
        cluster=cluster, actor=None, replicas=cluster.replicas % 3 + 1, confirm=True
    )  # the portal's tip
    repository_compact(repository=repository)
    tip = branch_tip(repository=repository)
    for client, slug in made:
        argocd.application_put(client=client, cluster=slug, revision=tip)
    # What Argo CD said of the older tip (the portal's sessions live in the cache too: not cleared)
    cache.delete_many(["argocd:backoff", *(f"argocd:application:qdrant.{c}.{k}" for c, k in made)])
    cases = _cases(browser)
    for case in cases.values():
        case()  # Argo CD answers, and the answers are cached; the first page is not timed
    return _measure(repository, cases, runs, before)


def _milliseconds(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:,.0f} ms"


def _table(results: dict[int, dict], clusters: int) -> None:
    print(f"\n{clusters} clusters, Argo CD at the branch tip for all; times per page or command")
    print("| commits | what | before (walk per row) | now, first | now, next | before / first |")
    print("|---|---|---|---|---|---|")
    for commits, figures in results.items():
        for name in [*PAGES, "status: clusters by state", "manage.py deployments"]:
            before, first, later = (figures[name, way] for way in WAYS)
            ratio = f"{before / first:,.0f} ×" if before else "—"
            row = [
                f"{commits:,}",
                name,
                _milliseconds(before),
                _milliseconds(first),
                _milliseconds(later),
                ratio,
            ]
            print("| " + " | ".join(row) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", default="1000,5000,20000", help="history sizes, ascending")
    parser.add_argument("--clusters", type=int, default=300)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before-up-to", type=int, default=20000, help="time 'before' up to this size")
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.commits.split(","))
    with (
        tempfile.TemporaryDirectory(prefix="bench-deployments-") as folder,
        FakeArgoCD(token=ARGOCD_TOKEN) as argocd,
    ):
        _django_start(Path(folder), argocd.url)
        from clusters.deployment_states import _repository

        started = time.perf_counter()
        made = _clusters_make(args.clusters)
        browser = _operator_browser()
        print(f"{args.clusters} clusters made in {time.perf_counter() - started:.1f} s", flush=True)
        results = {}
        for commits in sizes:
            started = time.perf_counter()
            results[commits] = _size_run(
                _repository(), argocd, made, browser, commits, args.runs, commits <= args.before_up_to
            )
            print(f"{commits:,} commits measured in {time.perf_counter() - started:.1f} s", flush=True)
        _table(results, args.clusters)


if __name__ == "__main__":
    main()
