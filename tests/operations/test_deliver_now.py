"""System status → "Deliver now": the operator retries a failed delivery from the admin, and the
page says how many changes wait, and since when, while GitOps is failing.

The remote is a real git server over HTTP (``git http-backend``) whose ``pre-receive`` hook
refuses pushes during a change freeze.
"""

from __future__ import annotations

import pytest

from clusters.models import ClusterChange
from gitops.remote import commit_is_ancestor
from gitops.repository import GitopsRepository, branch_tip
from tests.helpers import hand_commit
from tests.support.git_http import GitHttpServer

STATUS_PAGE = "/admin/operations/systemstatus/"
DELIVER_NOW = "/admin/operations/systemstatus/deliver/"
CLUSTER = "/api/clients/client1/clusters/main"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def served(tmp_path, settings):
    """The team's git server, set as the remote; yields (server, the served repository's path)."""
    with GitHttpServer(tmp_path / "served") as server:
        path = server.repository_create("gitops.git")
        settings.GITOPS_REMOTE_URL = server.url("gitops.git")
        yield server, path


@pytest.fixture
def operator_browser(client, user_factory):
    operator = user_factory(email="ops@example.com", is_staff=True, is_superuser=True, is_operator=True)
    client.force_login(operator)
    return client


def _gitops_section(page) -> str:
    html = page.content.decode()
    return html.split('id="status-gitops"')[1].split('id="status-argocd"')[0]


def _refused_change(served, as_user1) -> ClusterChange:
    server, _ = served
    server.refusing_hook_install("gitops.git", "change freeze until 06:00")
    answer = as_user1.patch(CLUSTER, {"replicas": 3}, format="json")
    assert answer.status_code == 202
    return ClusterChange.objects.get(commit=answer.json()["revision"]["commit"])


def test_while_gitops_fails_the_page_shows_what_waits_and_since_when(
    served, cluster1, as_user1, operator_browser
):
    _refused_change(served, as_user1)

    section = _gitops_section(operator_browser.get(STATUS_PAGE))

    assert "GitOps: failed" in section and "change freeze until 06:00" in section
    assert "<th>Pending changes</th><td>1, the oldest since" in section
    assert "Last successful push" in section and "Deliver now" in section


def test_deliver_now_pushes_what_waits_once_the_remote_takes_it_again(
    served, cluster1, as_user1, operator_browser
):
    change = _refused_change(served, as_user1)
    _, path = served
    (path / "hooks" / "pre-receive").unlink()  # the freeze is over; nothing else would push soon

    answer = operator_browser.post(DELIVER_NOW, follow=True)

    assert answer.redirect_chain == [(STATUS_PAGE, 302)]
    html = answer.content.decode()
    assert "Pushed 1 pending change(s) to the remote." in html
    change.refresh_from_db()
    assert change.pushed is True
    remote = GitopsRepository(path=path, branch="main")
    assert commit_is_ancestor(
        repository=remote, ancestor=change.commit, descendant=branch_tip(repository=remote)
    )
    section = _gitops_section(answer)
    assert "GitOps: ok" in section and "<th>Pending changes</th><td>0" in section


def test_deliver_now_while_the_remote_still_refuses_says_so_and_why(
    served, cluster1, as_user1, operator_browser
):
    change = _refused_change(served, as_user1)

    html = operator_browser.post(DELIVER_NOW, follow=True).content.decode()

    assert "not pushed" in html and "change freeze until 06:00" in html
    change.refresh_from_db()
    assert change.pushed is False


def test_deliver_now_with_nothing_waiting_says_git_matches(served, cluster1, operator_browser, caplog):
    html = operator_browser.post(DELIVER_NOW, follow=True).content.decode()

    assert "Nothing to deliver" in html
    # Who ran it, and what it did, is in the log: a sync writes over hand edits in git.
    (record,) = [r for r in caplog.records if r.getMessage().startswith("deliver now:")]
    assert str(record.actor_id) == operator_browser.session["_auth_user_id"]
    assert "Nothing to deliver" in record.getMessage()


def test_deliver_now_names_folders_in_git_the_database_does_not_know(served, cluster1, operator_browser):
    _, path = served
    operator_browser.post(DELIVER_NOW)  # the remote gets the branch
    hand_commit(
        GitopsRepository(path=path, branch="main"), "clients/ghost/db/values.yaml", b"replicaCount: 1\n"
    )

    html = operator_browser.post(DELIVER_NOW, follow=True).content.decode()

    assert "clients/ghost/db/" in html and "left as they are" in html


def test_staff_who_may_not_change_clusters_see_no_button_and_cannot_post(
    served, client, user_factory, cluster1
):
    client.force_login(user_factory(email="watcher@example.com", is_staff=True))

    assert "Deliver now" not in _gitops_section(client.get(STATUS_PAGE))
    assert client.post(DELIVER_NOW).status_code == 403


def test_deliver_now_answers_only_a_post(served, operator_browser):
    assert operator_browser.get(DELIVER_NOW).status_code == 405
