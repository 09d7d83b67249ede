"""Deployment states for operators: the admin's column, filter and link, and ``manage.py deployments``."""

from __future__ import annotations

import html
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from clusters.services import cluster_create
from tests.helpers import free_port

pytestmark = pytest.mark.django_db(transaction=True)  # deliveries run once the data is committed

CLUSTERS = "/admin/clusters/cluster/"


@pytest.fixture
def three_clusters(argocd, git_server, client1, client2):
    """client1/main deployed, client1/broken failed, client2/main still syncing."""
    made = {
        (client.slug, slug): cluster_create(client=client, slug=slug, actor=None).change.commit
        for client, slug in [(client1, "main"), (client1, "broken"), (client2, "main")]
    }
    argocd.application_put(client="client1", cluster="main", revision=made["client1", "main"])
    argocd.application_put(
        client="client1",
        cluster="broken",
        revision=made["client1", "broken"],
        sync="OutOfSync",
        operation="Failed",
        operation_message="StatefulSet.apps is invalid: spec: Forbidden",
    )
    argocd.application_put(
        client="client2", cluster="main", revision=made["client2", "main"], health="Progressing"
    )
    _settle()
    return made


def _settle() -> None:
    """Let the creations' background refreshes finish, and forget what they cached."""
    import threading

    from django.core.cache import cache

    for thread in threading.enumerate():
        if thread.name.startswith("argocd-refresh"):
            thread.join(timeout=5)
    cache.delete_many(
        ["argocd:backoff"]
        + [f"argocd:application:qdrant.{name}" for name in ("client1.main", "client1.broken", "client2.main")]
    )


def _rows(page: str) -> list[str]:
    return [row for row in page.split("<tr") if "field-deployment_state" in row]


def test_the_cluster_list_shows_each_state_and_filters_the_clusters_not_deployed(
    admin_browser, three_clusters, argocd
):
    page = admin_browser.get(CLUSTERS).content.decode()

    rows = {row.split("/change/")[0].rsplit("/", 1)[-1]: row for row in _rows(page)}
    assert len(rows) == 3
    states = sorted(row.split('data-state="')[1].split('"')[0] for row in rows.values())
    assert states == ["deployed", "failed", "syncing"]
    failed_row = html.unescape(next(row for row in rows.values() if 'data-state="failed"' in row))
    # the message, beside the state for the keyboard and screen readers too (not a mouse-only title)
    assert "<summary>failed</summary><small>" in failed_row and "StatefulSet.apps is invalid" in failed_row
    listed = [r for r in argocd.requests() if r.path == "/api/v1/applications"]
    assert len(listed) == 1, "one question to Argo CD for the whole page"

    not_deployed = admin_browser.get(CLUSTERS, {"deployment": "not_deployed"}).content.decode()
    assert sorted(row.split('data-state="')[1].split('"')[0] for row in _rows(not_deployed)) == [
        "failed",
        "syncing",
    ]
    failed = admin_browser.get(CLUSTERS, {"deployment": "failed"}).content.decode()
    assert len(_rows(failed)) == 1 and "client1/broken" in failed


def test_a_cluster_page_shows_argo_cds_message_and_links_to_the_application(
    admin_browser, three_clusters, settings
):
    from clusters.models import Cluster

    broken = Cluster.objects.get(slug="broken")
    page = html.unescape(admin_browser.get(f"{CLUSTERS}{broken.pk}/change/").content.decode())

    assert "failed" in page and "StatefulSet.apps is invalid: spec: Forbidden" in page
    assert f'href="{settings.ARGOCD_URL}/applications/argocd/qdrant.client1.broken"' in page
    settings.ARGOCD_APP_NAMESPACE = "qdrant-apps"
    page = admin_browser.get(f"{CLUSTERS}{broken.pk}/change/").content.decode()
    assert f"{settings.ARGOCD_URL}/applications/qdrant-apps/qdrant.client1.broken" in page


def test_the_link_to_argo_cd_s_ui_uses_the_address_browsers_reach(admin_browser, three_clusters, settings):
    from clusters.models import Cluster

    settings.ARGOCD_UI_URL = "https://argocd.example.com"  # ARGOCD_URL: an in-cluster address
    broken = Cluster.objects.get(slug="broken")

    page = html.unescape(admin_browser.get(f"{CLUSTERS}{broken.pk}/change/").content.decode())

    assert 'href="https://argocd.example.com/applications/argocd/qdrant.client1.broken"' in page
    assert f'href="{settings.ARGOCD_URL}/' not in page
    assert "StatefulSet.apps is invalid" in page  # the status itself still comes from ARGOCD_URL


def test_the_cluster_list_s_queries_do_not_grow_with_its_rows(
    admin_browser, three_clusters, client1, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    admin_browser.get(CLUSTERS)  # Argo CD's answers are cached from here on
    with CaptureQueriesContext(connection) as three_rows:
        assert len(_rows(admin_browser.get(CLUSTERS).content.decode())) == 3
    for slug in ("extra1", "extra2", "extra3"):
        cluster_create(client=client1, slug=slug, actor=None)
    _settle()

    with django_assert_max_num_queries(len(three_rows.captured_queries)):
        page = admin_browser.get(CLUSTERS).content.decode()

    assert len(_rows(page)) == 6
    assert sorted(row.split('data-state="')[1].split('"')[0] for row in _rows(page))[:3] == [
        "deployed",
        "failed",
        "syncing",
    ]


def test_the_history_of_the_revision_argo_cd_reports_is_read_once_for_every_row(
    admin_browser, argocd, git_server, client1, client2, monkeypatch
):
    """Argo CD reports every Application at the branch tip: its history is walked once, not once
    per cluster (a year of commits made a page take half a minute); a new tip walks again."""
    from gitops import remote

    walked: list[str] = []
    walk = remote._history_walk
    monkeypatch.setattr(
        remote,
        "_history_walk",
        lambda handle, commit, known: walked.append(commit) or walk(handle, commit, known),
    )
    clusters = [(client1, "main"), (client1, "second"), (client2, "main"), (client2, "second")]
    for client, slug in clusters:
        cluster_create(client=client, slug=slug, actor=None)
    tip = cluster_create(client=client1, slug="newest", actor=None).change.commit
    for client, slug in [*clusters, (client1, "newest")]:
        argocd.application_put(client=client.slug, cluster=slug, revision=tip)
    _settle()

    page = admin_browser.get(CLUSTERS).content.decode()
    output, status = _deployments()
    deployed = admin_browser.get(CLUSTERS, {"deployment": "deployed"}).content.decode()

    assert walked == [tip]
    assert [row.split('data-state="')[1].split('"')[0] for row in _rows(page)] == ["deployed"] * 5
    assert len(_rows(deployed)) == 5 and (status, output.splitlines()[-1]) == (0, "5 cluster(s): 5 deployed")
    later = cluster_create(client=client2, slug="later", actor=None).change.commit
    argocd.application_put(client="client1", cluster="main", revision=later)
    argocd.application_put(client="client2", cluster="later", revision=later)
    _settle()

    states = [
        row.split('data-state="')[1].split('"')[0]
        for row in _rows(admin_browser.get(CLUSTERS).content.decode())
    ]

    assert walked == [tip, later]
    assert states == ["deployed"] * 6


def test_without_argo_cd_the_admin_has_no_deployment_filter_and_says_why(admin_browser, cluster1):
    page = admin_browser.get(CLUSTERS).content.decode()
    assert "?deployment=" not in page
    detail = html.unescape(admin_browser.get(f"{CLUSTERS}{cluster1.pk}/change/").content.decode())
    assert "Argo CD is not configured (ARGOCD_URL)" in detail


# --- manage.py deployments -----------------------------------------------------------------------


def _deployments(*args: str) -> tuple[str, int]:
    out = StringIO()
    try:
        call_command("deployments", *args, stdout=out)
    except CommandError as error:
        return out.getvalue(), error.returncode
    return out.getvalue(), 0


@pytest.mark.parametrize(
    ("interval", "said"),
    [("nan", "between"), ("1e308", "between"), ("0.1", "between"), ("soon", "not a number")],
)
def test_the_command_refuses_an_interval_nobody_could_wait_and_says_so(argocd, interval, said):
    with pytest.raises(CommandError, match=f"--interval: .*{said}"):
        call_command("deployments", "--watch", "--interval", interval, stdout=StringIO())


def test_the_command_prints_every_cluster_and_fails_when_one_failed(three_clusters):
    output, status = _deployments()

    assert status == 1
    lines = output.splitlines()
    assert lines[1].split() == ["CLUSTER", "STATE", "COMMITTED", "DEPLOYED", "SYNC", "HEALTH", "MESSAGE"]
    table = {line.split()[0]: line.split()[1] for line in lines[2:5]}
    assert table == {"client1/broken": "failed", "client1/main": "deployed", "client2/main": "syncing"}
    assert three_clusters["client1", "broken"][:12] in output
    assert lines[-1] == "3 cluster(s): 1 syncing, 1 deployed, 1 failed"


def test_the_command_succeeds_when_nothing_failed_or_degraded(argocd, three_clusters):
    argocd.application_put(client="client1", cluster="broken", revision=three_clusters["client1", "broken"])
    _settle()

    output, status = _deployments()

    assert status == 0 and "0 failed" not in output and "1 syncing, 2 deployed" in output


def test_a_degraded_cluster_fails_the_check_too(argocd, three_clusters):
    argocd.application_put(client="client1", cluster="broken", revision=three_clusters["client1", "broken"])
    argocd.application_put(
        client="client1",
        cluster="main",
        revision=three_clusters["client1", "main"],
        health="Degraded",
        health_message="1/2 pods ready",
    )
    _settle()

    output, status = _deployments()

    assert status == 1 and "1/2 pods ready" in output


def test_watch_prints_the_table_again_as_states_change(argocd, three_clusters):
    output, status = _deployments("--watch", "--interval", "0.5", "--rounds", "2")

    assert status == 1
    assert output.count("CLUSTER") == 2


@pytest.mark.parametrize(
    ("argo_cd", "words"),
    [("unreachable", "cannot be reached"), ("refusing the token", "refused the portal's token")],
)
def test_the_command_exits_3_when_argo_cd_cannot_tell(settings, argocd, three_clusters, argo_cd, words):
    if argo_cd == "unreachable":
        settings.ARGOCD_URL = f"http://127.0.0.1:{free_port()}"
    else:
        settings.ARGOCD_TOKEN = "a-revoked-token"
    _settle()

    output, status = _deployments()

    assert status == 3  # not "all is well": a monitor must not read an Argo CD it cannot ask as fine
    assert [line.split()[1] for line in output.splitlines()[2:5]] == ["unknown"] * 3
    assert words in output


def test_a_failed_cluster_outranks_an_unknown_one_in_the_exit_status(argocd, three_clusters):
    argocd.application_remove("qdrant.client1.main")  # Argo CD has no Application for it: unknown
    _settle()

    assert _deployments()[1] == 1  # client1/broken failed
    argocd.application_put(client="client1", cluster="broken", revision=three_clusters["client1", "broken"])
    _settle()

    output, status = _deployments()
    assert status == 3 and "1 unknown" in output


def test_the_command_s_help_documents_each_exit_status():
    from clusters.management.commands.deployments import Command

    for words in (
        "1 when any cluster is failed or degraded",
        "3 when any is unknown",
        "2 when Argo CD is not configured",
    ):
        assert words in Command.help


def test_the_command_needs_argo_cd(cluster1):
    output, status = _deployments()
    assert status == 2
