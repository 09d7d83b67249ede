"""Whatever push carries a cluster change marks it pushed: a client save's push included.

The remote is a real git server over HTTP (``git http-backend``) whose ``pre-receive`` hook
refuses pushes while a change freeze lasts, as the team's git host would.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from clusters.models import ClusterChange
from clusters.services import client_update
from gitops.remote import commit_is_ancestor
from gitops.repository import GitopsRepository, branch_tip
from operations.selectors import outbox_summary
from tests.support.git_http import GitHttpServer

CLUSTER = "/api/clients/client1/clusters/main"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def frozen_remote(tmp_path, settings, cluster1):
    """A served remote holding the branch, then refusing pushes (a change freeze): its path."""
    with GitHttpServer(tmp_path / "served") as server:
        served = server.repository_create("gitops.git")
        settings.GITOPS_REMOTE_URL = server.url("gitops.git")
        call_command("gitops_sync", stdout=StringIO())  # the remote gets the branch, cluster1 in it
        server.refusing_hook_install("gitops.git", "change freeze")
        yield served


def _thaw(served: Path) -> None:
    (served / "hooks" / "pre-receive").unlink()


def _after_the_pause(settings):
    return time_machine.travel(timezone.now() + settings.GITOPS_REMOTE_RETRY_AFTER + timedelta(seconds=1))


def test_a_client_save_that_pushes_the_branch_marks_the_cluster_changes_it_carried(
    frozen_remote, settings, cluster1, user1, client_for
):
    scale = client_for(user1)
    refused = scale.patch(CLUSTER, {"replicas": 3}, format="json")
    assert refused.status_code == 202 and refused.json()["revision"]["pushed"] is False
    change = ClusterChange.objects.get(commit=refused.json()["revision"]["commit"])
    _thaw(frozen_remote)

    with _after_the_pause(settings):
        client_update(client=cluster1.client, name="Client One, renamed", active=True, actor=user1)

    remote = GitopsRepository(path=frozen_remote, branch="main")
    tip = branch_tip(repository=remote)
    assert commit_is_ancestor(repository=remote, ancestor=change.commit, descendant=tip)  # it went out
    change.refresh_from_db()
    assert change.pushed is True
    assert scale.get(CLUSTER).json()["revision"]["pushed"] is True
    assert outbox_summary().pending_changes == 0  # no outbox alert for a change Argo CD has
    out = StringIO()
    call_command("gitops_sync", stdout=out)
    assert "Pushed" not in out.getvalue() and "Nothing to sync" in out.getvalue()


def test_a_client_save_whose_push_is_refused_marks_nothing(
    frozen_remote, settings, cluster1, user1, client_for
):
    refused = client_for(user1).patch(CLUSTER, {"replicas": 3}, format="json")
    assert refused.status_code == 202

    with _after_the_pause(settings):
        client_update(client=cluster1.client, name="Client One, renamed", active=True, actor=user1)

    assert ClusterChange.objects.get(commit=refused.json()["revision"]["commit"]).pushed is False
    assert outbox_summary().pending_changes == 1
