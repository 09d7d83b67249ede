"""Deployment status read back from Argo CD: committed -> pushed -> synced -> healthy, in the API.

The portal talks to a fake Argo CD on loopback (tests/support/fake_argocd.py) whose answers
are checked against Argo CD 3.6's API description; the test moves it through every state the
API names and reads ``deployment`` as a client would.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction

from clusters.models import Cluster, ClusterChange
from clusters.services import cluster_create, cluster_update
from gitops.repository import blobs_read, file_read
from tests.conftest import ARGOCD_TEST_TOKEN, portal_repository
from tests.helpers import free_port, hand_commit

pytestmark = pytest.mark.django_db(transaction=True)  # deliveries run once the data is committed

DETAIL = "/api/clients/client1/clusters/main"
LIST = "/api/clients/client1/clusters"
APP = "qdrant.client1.main"


@pytest.fixture
def scaled(argocd, git_server, as_user1, cluster1):
    """client1/main scaled to 3 and pushed: the change whose way to the cluster is followed."""
    response = as_user1.patch(DETAIL, {"replicas": 3}, format="json")
    assert response.status_code == 200, response.content
    _refreshes_done()  # its answer is cached before the test moves Argo CD on
    return response.json()["revision"]["commit"]


@pytest.fixture
def older(cluster1) -> str:
    """The commit that created client1/main: what Argo CD runs before it sees a later change."""
    return ClusterChange.objects.get(cluster=cluster1, action="create").commit


def _deployment(client, path: str = DETAIL) -> dict:
    response = client.get(path)
    assert response.status_code == 200, response.content
    return response.json()["deployment"]


def _refreshes_done() -> None:
    """Wait for the refreshes the pushes so far asked of Argo CD, and the fetches reads asked
    for (they run in the background)."""
    import threading

    for thread in threading.enumerate():
        if thread.name.startswith("argocd-refresh") or thread.name == "gitops-fetch":
            thread.join(timeout=10)


def _cache_expire(*names: str) -> None:
    """As if the cache period were over: what the portal kept of Argo CD's answers, and its back-off."""
    from django.core.cache import cache

    cache.delete_many(["argocd:backoff", *(f"argocd:application:{name}" for name in names or [APP])])


def _fresh(client, path: str = DETAIL) -> dict:
    """The deployment as Argo CD says it now (what the portal cached is dropped)."""
    _cache_expire()
    return _deployment(client, path)


# --- Off unless configured ----------------------------------------------------------------------


def test_without_argocd_url_clusters_carry_no_deployment_and_argo_cd_is_never_asked(as_user1, cluster1):
    assert as_user1.get(DETAIL).json()["deployment"] is None
    assert [cluster["deployment"] for cluster in as_user1.get(LIST).json()] == [None]


# --- Every state --------------------------------------------------------------------------------


def test_a_change_not_pushed_yet_is_pending_without_asking_whether_argo_cd_has_it(
    argocd, settings, tmp_path, as_user1, cluster1
):
    settings.GITOPS_REMOTE_URL = str(tmp_path / "not-there.git")  # the remote cannot be reached
    response = as_user1.patch(DETAIL, {"replicas": 3}, format="json")
    assert response.status_code == 202

    deployment = response.json()["deployment"]

    assert deployment["state"] == "pending"
    assert deployment["committedRevision"] == response.json()["revision"]["commit"]
    assert "not pushed" in deployment["message"]
    assert argocd.refreshes() == []  # nothing reached the remote: nothing for Argo CD to see


def test_a_change_not_in_git_yet_is_pending_whatever_argo_cd_says_of_the_older_one(
    argocd, scaled, as_user1, cluster1, operator_staff
):
    """The cluster shows the new spec; what Argo CD applied is an older one, however healthy."""
    argocd.application_put(client="client1", cluster="main", revision=scaled)  # synced, healthy
    with transaction.atomic():  # as the admin saves: delivered once its transaction commits
        cluster_update(cluster=cluster1, actor=operator_staff, replicas=4)
        detail = as_user1.get(DETAIL).json()
        [listed] = as_user1.get(LIST).json()

    assert listed["deployment"] == detail["deployment"]
    assert detail["replicas"] == 4 and detail["revision"]["commit"] == scaled  # git's latest
    assert detail["deployment"]["state"] == "pending"
    assert detail["deployment"]["committedRevision"] is None
    assert detail["deployment"]["message"] == "Not committed to git yet: it goes out with the next delivery."
    _refreshes_done()
    _cache_expire()
    after = as_user1.get(DETAIL).json()  # delivered: now waiting for Argo CD to see the new commit
    assert after["deployment"]["committedRevision"] == after["revision"]["commit"] != scaled
    assert after["deployment"]["state"] == "pending"


def test_a_pushed_change_argo_cd_has_not_seen_is_pending(argocd, scaled, older, as_user1):
    argocd.application_put(client="client1", cluster="main", revision=older)

    deployment = _fresh(as_user1)

    assert deployment["state"] == "pending"
    assert deployment["committedRevision"] == scaled
    assert deployment["deployedRevision"] == older
    assert "has not picked up this commit yet" in deployment["message"]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"sync": "OutOfSync", "health": "Healthy", "operation": "Running"}, "applying"),
        (
            {"sync": "Synced", "health": "Progressing", "health_message": "Waiting for 3 pods"},
            "Waiting for 3 pods",
        ),
        ({"sync": "OutOfSync", "health": "Healthy", "operation": "Succeeded"}, "about to apply"),
    ],
    ids=["operation-running", "health-progressing", "out-of-sync"],
)
def test_argo_cd_applying_the_latest_commit_is_syncing(argocd, scaled, as_user1, fields, words):
    argocd.application_put(client="client1", cluster="main", revision=scaled, **fields)

    deployment = _fresh(as_user1)

    assert deployment["state"] == "syncing"
    assert words in deployment["message"]
    assert deployment["deployedRevision"] == scaled


@pytest.mark.parametrize(("minutes_ago", "state"), [(9, "syncing"), (11, "degraded")])
def test_a_change_argo_cd_sees_but_never_applies_is_degraded_past_the_deadline(
    argocd, scaled, as_user1, settings, minutes_ago, state
):
    """OutOfSync with no sync running: automated sync would have started one at once."""
    from clusters.models import ClusterChange

    settings.DEPLOYMENT_PROGRESS_DEADLINE = timedelta(minutes=10)
    then = datetime.now(tz=UTC) - timedelta(minutes=minutes_ago)
    ClusterChange.objects.filter(commit=scaled).update(committed_at=then)
    argocd.application_put(
        client="client1",
        cluster="main",
        revision=scaled,
        sync="OutOfSync",
        operation="Succeeded",
        operation_revision=scaled,
        since=then.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )

    deployment = _fresh(as_user1)

    assert deployment["state"] == state
    if state == "degraded":
        assert "not applying it (OutOfSync, no sync running)" in deployment["message"]


@pytest.mark.parametrize(("minutes_ago", "state"), [(9, "syncing"), (11, "degraded")])
def test_a_rollout_still_progressing_past_the_deadline_is_degraded(
    argocd, scaled, as_user1, settings, minutes_ago, state
):
    """Argo CD calls a StatefulSet whose pods cannot start Progressing for ever."""
    settings.DEPLOYMENT_PROGRESS_DEADLINE = timedelta(minutes=10)
    since = (datetime.now(tz=UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    argocd.application_put(
        client="client1",
        cluster="main",
        revision=scaled,
        health="Progressing",
        health_message="Waiting for 1 pods to be ready...",
        since=since,
    )

    deployment = _fresh(as_user1)

    assert deployment["state"] == state
    if state == "degraded":
        assert deployment["message"] == (
            "The cluster's pods have not become ready in 11 minutes since Argo CD applied the "
            "latest change: Waiting for 1 pods to be ready..."
        )


def test_an_application_of_another_argo_cd_project_is_never_taken_for_the_clusters(
    argocd, scaled, as_user1, client1
):
    """Labels can be copied into any project; the portal asks for ARGOCD_PROJECT's only."""
    argocd.project = "someone-elses"
    argocd.application_put(client="client1", cluster="main", revision=scaled)

    alone = _fresh(as_user1)  # asked by name
    cluster_create(client=client1, slug="other", actor=None)
    _cache_expire(APP, "qdrant.client1.other")
    listed = [cluster["deployment"] for cluster in as_user1.get(LIST).json()]  # by label

    assert len(listed) == 2
    for deployment in (alone, *listed):
        assert deployment["state"] == "unknown"
        assert deployment["message"].startswith("Argo CD has no Application qdrant.client1.")


def test_a_synced_healthy_multi_source_application_at_the_commit_is_deployed(argocd, scaled, as_user1):
    argocd.application_put(client="client1", cluster="main", revision=scaled)

    deployment = _fresh(as_user1)

    assert deployment == {
        "state": "deployed",
        "committedRevision": scaled,
        "deployedRevision": scaled,
        "sync": "Synced",
        "health": "Healthy",
        "message": "Argo CD applied the latest change and the cluster is healthy.",
        "checkedAt": deployment["checkedAt"],
    }
    assert deployment["checkedAt"]


def test_a_later_revision_holding_the_commit_counts_as_deployed(argocd, scaled, as_user1, client1):
    later = cluster_create(client=client1, slug="other", actor=None).change.commit  # the branch moves on
    assert later and later != scaled
    argocd.application_put(client="client1", cluster="main", revision=later)

    assert _fresh(as_user1)["state"] == "deployed"


def test_an_unrelated_revision_does_not_count_as_deployed(argocd, scaled, as_user1):
    # Argo CD follows another branch or repository: synced and healthy at a commit the portal
    # never made and its repository does not have.
    argocd.application_put(client="client1", cluster="main", revision="f" * 40)

    deployment = _fresh(as_user1)

    assert (deployment["state"], deployment["deployedRevision"]) == ("pending", "f" * 40)
    assert deployment["message"] == (
        "Pushed; Argo CD is at fffffff, a revision the portal's git repository does not have: "
        "Argo CD may follow another branch or repository than the portal pushes to."
    )
    argocd.application_put(client="client1", cluster="main", revision="1.19.0")  # not a git commit at all

    assert _fresh(as_user1)["state"] == "pending"


@pytest.mark.parametrize("health", ["Degraded", "Missing"])
def test_a_synced_but_unhealthy_cluster_is_degraded_with_argo_cds_message(argocd, scaled, as_user1, health):
    message = "StatefulSet qdrant-client1-main: 1 of 3 pods ready (CrashLoopBackOff)"
    argocd.application_put(
        client="client1", cluster="main", revision=scaled, health=health, health_message=message
    )

    deployment = _fresh(as_user1)

    assert (deployment["state"], deployment["health"], deployment["message"]) == ("degraded", health, message)


@pytest.mark.parametrize("health", ["Unknown", ""])
def test_a_synced_cluster_whose_health_argo_cd_does_not_know_is_unknown(argocd, scaled, as_user1, health):
    argocd.application_put(client="client1", cluster="main", revision=scaled, health=health)

    deployment = _fresh(as_user1)

    assert (deployment["state"], deployment["health"]) == ("unknown", health or None)
    assert deployment["message"] == "Argo CD does not know the cluster's health yet."


@pytest.mark.parametrize("phase", ["Failed", "Error"])
def test_a_sync_kubernetes_refused_is_failed_with_argo_cds_message(argocd, scaled, as_user1, phase):
    refusal = (
        'one or more objects failed to apply, reason: StatefulSet.apps "qdrant-client1-main" is invalid: '
        "spec: Forbidden: updates to statefulset spec for fields other than 'replicas' are forbidden"
    )
    argocd.application_put(
        client="client1",
        cluster="main",
        revision=scaled,
        sync="OutOfSync",
        operation=phase,
        operation_message=refusal,
    )

    deployment = _fresh(as_user1)

    assert (deployment["state"], deployment["message"]) == ("failed", refusal)


@pytest.mark.parametrize("compared", ["the commit", "nothing"])
def test_a_change_argo_cd_cannot_render_is_failed_with_the_condition(argocd, scaled, as_user1, compared):
    problem = "Failed to load target state: helm template: values.yaml: replicaCount must be an integer"
    argocd.application_put(
        client="client1",
        cluster="main",
        revision=scaled if compared == "the commit" else "",
        sync="Unknown",
        health="Healthy",
        operation="",
        conditions=(("ComparisonError", problem),),
    )

    assert _fresh(as_user1)["state"] == "failed"
    assert _deployment(as_user1)["message"] == problem


def test_a_failure_of_an_older_revision_does_not_fail_the_latest_change(argocd, scaled, older, as_user1):
    argocd.application_put(
        client="client1",
        cluster="main",
        revision=scaled,
        sync="OutOfSync",
        operation="Failed",
        operation_message="an older change failed",
        operation_revision=older,
    )

    assert _fresh(as_user1)["state"] == "syncing"


# --- Argo CD cannot be asked ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "words"),
    [(401, "refused the portal's token"), (403, "RBAC")],
)
def test_a_refused_token_reads_unknown_with_the_reason(argocd, scaled, as_user1, status, words):
    argocd.application_put(client="client1", cluster="main", revision=scaled)
    argocd.answer_status = status

    deployment = _fresh(as_user1)

    assert deployment["state"] == "unknown" and words in deployment["message"]
    assert deployment["deployedRevision"] is None and deployment["committedRevision"] == scaled


def test_a_cluster_argo_cd_has_no_application_for_reads_unknown(argocd, scaled, as_user1):
    deployment = _fresh(as_user1)

    assert deployment["state"] == "unknown"
    assert "has no Application qdrant.client1.main" in deployment["message"]


def test_a_hanging_argo_cd_reads_unknown_after_the_timeout(argocd, argocd_short_timeout, scaled, as_user1):
    argocd.application_put(client="client1", cluster="main", revision=scaled)
    argocd.hang_seconds = 5

    started = time.monotonic()
    deployment = _fresh(as_user1)

    assert time.monotonic() - started < 1 + 1.5
    assert deployment["state"] == "unknown" and "did not answer within 1 s" in deployment["message"]


def test_a_refused_connection_reads_unknown(argocd, settings, scaled, as_user1):
    settings.ARGOCD_URL = f"http://127.0.0.1:{free_port()}"

    deployment = _fresh(as_user1)

    assert deployment["state"] == "unknown" and "cannot be reached" in deployment["message"]


def test_a_slow_argo_cd_does_not_slow_the_cluster_list_beyond_the_timeout(
    argocd, argocd_short_timeout, git_server, as_user1, client1
):
    for slug in ("main", "b", "c", "d", "e", "f"):
        cluster_create(client=client1, slug=slug, actor=None)
    argocd.hang_seconds = 10

    started = time.monotonic()
    clusters = as_user1.get(LIST).json()
    elapsed = time.monotonic() - started

    assert elapsed < 1 + 1.5, f"the list took {elapsed:.1f} s with a 1 s timeout"
    assert {cluster["deployment"]["state"] for cluster in clusters} == {"unknown"}
    # The next pages do not ask Argo CD at all (cached, then backing off).
    asked = len(argocd.requests())
    again = as_user1.get(DETAIL).json()["deployment"]
    assert len(argocd.requests()) == asked
    assert again["state"] == "unknown"


def test_after_a_failure_argo_cd_is_left_alone_then_asked_again(argocd, settings, scaled, as_user1):
    from django.core.cache import cache

    argocd.application_put(client="client1", cluster="main", revision=scaled)
    argocd.answer_status = 500
    assert _fresh(as_user1)["state"] == "unknown"
    asked = len(argocd.requests())

    cache.delete(f"argocd:application:{APP}")  # the cluster's own cache entry is gone, the back-off is not
    assert "asks again in" in _deployment(as_user1)["message"]
    assert len(argocd.requests()) == asked

    argocd.answer_status = 0
    _cache_expire()  # the back-off period is over
    assert _deployment(as_user1)["state"] == "deployed"


def test_statuses_are_cached_a_few_seconds_and_a_list_asks_once(
    argocd, git_server, as_user1, client1, cluster1, older
):
    cluster_create(client=client1, slug="second", actor=None)
    argocd.application_put(client="client1", cluster="main", revision=older)
    argocd.application_put(client="client1", cluster="second", revision=older)
    _refreshes_done()
    _cache_expire(APP, "qdrant.client1.second")  # what the creation's refresh cached
    asked = len(argocd.requests())

    as_user1.get(LIST)
    as_user1.get(LIST)
    as_user1.get(DETAIL)

    [request] = argocd.requests()[asked:]
    assert request.path == "/api/v1/applications"
    assert request.query["selector"] == ["qdrant-portal/client=client1"]


# --- After a push -------------------------------------------------------------------------------


def test_a_push_asks_argo_cd_to_refresh_the_application_at_once(
    argocd, settings, git_server, as_user1, cluster1, older
):
    settings.ARGOCD_APP_NAMESPACE = "qdrant-apps"
    argocd.application_put(client="client1", cluster="main", revision=older)

    response = as_user1.patch(DETAIL, {"replicas": 4}, format="json")

    assert response.status_code == 200
    assert response.json()["deployment"]["state"] == "pending"
    assert argocd.wait_for_refresh(APP)
    _refreshes_done()
    refresh = [r for r in argocd.requests() if r.query.get("refresh")][-1]
    assert refresh.query["appNamespace"] == ["qdrant-apps"]
    assert refresh.query["projects"] == [settings.ARGOCD_PROJECT]


def test_a_refresh_argo_cd_does_not_answer_never_fails_or_holds_the_change(
    argocd, argocd_short_timeout, git_server, as_user1, cluster1
):
    argocd.hang_seconds = 10

    started = time.monotonic()
    response = as_user1.patch(DETAIL, {"replicas": 4}, format="json")

    assert response.status_code == 200
    assert response.json()["revision"]["pushed"] is True
    assert time.monotonic() - started < 1 + 1.5  # the refresh runs in the background
    assert Cluster.objects.get(slug="main").replicas == 4


# --- The token ----------------------------------------------------------------------------------


def test_the_token_goes_only_to_argo_cd_and_appears_in_no_answer_log_or_commit(
    argocd, scaled, as_user1, caplog, capsys, settings
):
    from config.logging import JsonFormatter

    caplog.set_level(logging.DEBUG)
    argocd.application_put(client="client1", cluster="main", revision=scaled)
    bodies = [_fresh(as_user1), as_user1.get(LIST).content.decode()]
    argocd.answer_status = 401
    bodies.append(_fresh(as_user1))
    settings.ARGOCD_URL = f"http://127.0.0.1:{free_port()}"
    bodies.append(_fresh(as_user1))

    assert argocd.requests() and {r.authorization for r in argocd.requests()} == {
        f"Bearer {ARGOCD_TEST_TOKEN}"
    }
    assert all(
        ARGOCD_TEST_TOKEN not in "".join(r.query.get(k, [""])[0] for k in r.query) for r in argocd.requests()
    )
    assert ARGOCD_TEST_TOKEN not in json.dumps(bodies)
    formatter = JsonFormatter()
    assert caplog.records, "the failures were logged"
    for record in caplog.records:
        assert ARGOCD_TEST_TOKEN not in formatter.format(record)
    assert ARGOCD_TEST_TOKEN not in capsys.readouterr().out
    assert all(
        ARGOCD_TEST_TOKEN.encode() not in blob for blob in blobs_read(repository=portal_repository(settings))
    )


def test_log_redaction_and_sentry_scrubbing_cover_the_argo_cd_token():
    from config.logging import text_redact, value_redact
    from config.sentry import event_scrub

    assert value_redact({"ARGOCD_TOKEN": ARGOCD_TEST_TOKEN}) == {"ARGOCD_TOKEN": "[REDACTED]"}
    assert ARGOCD_TEST_TOKEN not in text_redact(
        f"GET /api/v1/applications Authorization: Bearer {ARGOCD_TEST_TOKEN}"
    )
    event = {
        "exception": {
            "values": [
                {
                    "stacktrace": {
                        "frames": [
                            {
                                "vars": {
                                    "headers": {"Authorization": f"Bearer {ARGOCD_TEST_TOKEN}"},
                                    "settings": {"ARGOCD_TOKEN": ARGOCD_TEST_TOKEN},
                                }
                            }
                        ]
                    }
                }
            ]
        }
    }
    assert ARGOCD_TEST_TOKEN not in json.dumps(event_scrub(event))


# --- The latest change ---------------------------------------------------------------------------


def test_the_deployment_follows_the_latest_change_not_an_older_deployed_one(argocd, scaled, as_user1):
    argocd.application_put(client="client1", cluster="main", revision=scaled)
    assert _fresh(as_user1)["state"] == "deployed"

    response = as_user1.patch(DETAIL, {"replicas": 5}, format="json")
    newer = response.json()["revision"]["commit"]
    _refreshes_done()

    assert response.json()["deployment"]["state"] == "pending"
    assert response.json()["deployment"]["committedRevision"] == newer
    argocd.application_put(client="client1", cluster="main", revision=newer, health="Progressing")
    assert _fresh(as_user1)["state"] == "syncing"
    argocd.application_put(client="client1", cluster="main", revision=newer)
    assert _fresh(as_user1)["state"] == "deployed"


def test_another_replica_without_the_commit_decides_from_the_database(
    argocd, scaled, as_user1, client1, settings
):
    later = cluster_create(client=client1, slug="other", actor=None).change.commit
    argocd.application_put(client="client1", cluster="main", revision=later)
    settings.GITOPS_REPO_PATH = settings.GITOPS_REPO_PATH.parent / "another-replica.git"  # lacks both commits

    assert _fresh(as_user1)["state"] == "deployed"
    assert ClusterChange.objects.filter(commit=later, pushed=True).exists()
    argocd.application_put(client="client1", cluster="main", revision="e" * 40)
    assert _fresh(as_user1)["state"] == "pending"  # unknown here and not the portal's: cannot tell


def test_a_commit_made_elsewhere_is_fetched_and_then_judged(argocd, scaled, git_server, as_user1):
    """A person's commit on top of the portal's (or another replica's, or the gitops_sync job's):
    this replica's clone lacks it until it fetches, which the first read asks for."""
    path = "clients/client1/main/values.yaml"
    body = file_read(repository=git_server, file_path=path) + b"resources:\n  requests:\n    cpu: 500m\n"
    argocd.application_put(client="client1", cluster="main", revision=hand_commit(git_server, path, body))

    assert _fresh(as_user1)["state"] == "pending"  # not in this clone yet: cannot tell
    _refreshes_done()

    assert _fresh(as_user1)["state"] == "deployed"


def test_the_openapi_document_names_every_state(client, db):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    deployment = schema["components"]["schemas"]["DeploymentOutput"]
    [reference] = deployment["properties"]["state"]["allOf"]
    states = schema["components"]["schemas"][reference["$ref"].rsplit("/", 1)[1]]

    assert states["enum"] == ["pending", "syncing", "deployed", "degraded", "failed", "unknown"]
    assert "health `Unknown` or none" in deployment["properties"]["state"]["description"]
    assert set(deployment["properties"]) == {
        "state",
        "committedRevision",
        "deployedRevision",
        "sync",
        "health",
        "message",
        "checkedAt",
    }
    cluster = schema["components"]["schemas"]["ClusterOutput"]["properties"]["deployment"]
    assert cluster.get("nullable") or any(part.get("type") == "null" for part in cluster.get("oneOf", []))


def _settings_load(env: dict[str, str], show: str = "") -> subprocess.CompletedProcess:
    """Load config.settings in a fresh interpreter with ``env``; print the setting ``show``."""
    code = "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='config.settings'; django.setup()"
    if show:
        code += f"; from django.conf import settings; print(settings.{show})"
    return subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def test_argocd_ui_url_defaults_to_argocd_url_and_must_be_a_url():
    argocd = {"ARGOCD_URL": "http://argocd-server.argocd.svc/", "ARGOCD_TOKEN": "t", "ARGOCD_UI_URL": ""}

    default = _settings_load(argocd, show="ARGOCD_UI_URL")
    own = _settings_load({**argocd, "ARGOCD_UI_URL": "https://argocd.example.com/"}, show="ARGOCD_UI_URL")
    wrong = _settings_load({**argocd, "ARGOCD_UI_URL": "argocd.example.com"})

    assert default.stdout.strip() == "http://argocd-server.argocd.svc", default.stderr
    assert own.stdout.strip() == "https://argocd.example.com", own.stderr
    assert wrong.returncode != 0 and "ARGOCD_UI_URL must be an https://" in wrong.stderr


def test_settings_refuse_an_argocd_url_without_a_token_in_production():
    env = {"ARGOCD_URL": "https://argocd.example.com", "ARGOCD_TOKEN": ""}

    result = _settings_load(env)
    ok = _settings_load({**env, "ARGOCD_TOKEN": "t", "ARGOCD_TIMEOUT": "3s"})

    assert result.returncode != 0 and "ARGOCD_TOKEN is required" in result.stderr
    assert ok.returncode == 0, ok.stderr


def test_a_failure_of_the_argo_cd_set_before_is_not_given_for_the_one_set_now(
    argocd, settings, scaled, as_user1
):
    """An operator fixes a wrong token: the next page asks Argo CD with it, rather than repeating
    the old token's refusal until its back-off ends."""
    from django.core.cache import cache

    argocd.application_put(client="client1", cluster="main", revision=scaled)
    settings.ARGOCD_TOKEN = "a-token-argo-cd-does-not-know"
    assert _fresh(as_user1)["state"] == "unknown"

    settings.ARGOCD_TOKEN = ARGOCD_TEST_TOKEN
    cache.delete(f"argocd:application:{APP}")  # statuses live a few seconds; the back-off is longer

    assert _deployment(as_user1)["state"] == "deployed"


@pytest.mark.parametrize(("minutes_ago", "state"), [(9, "syncing"), (11, "degraded")])
def test_a_sync_still_running_past_the_deadline_is_degraded(
    argocd, scaled, as_user1, settings, minutes_ago, state
):
    """A sync that waits for ever (a SealedSecret the controller cannot unseal holds back the
    chart's wave) is no change on its way: past the deadline a monitor must hear of it."""
    settings.DEPLOYMENT_PROGRESS_DEADLINE = timedelta(minutes=10)
    since = (datetime.now(tz=UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    waiting = "waiting for healthy state of bitnami.com/SealedSecret/qdrant-client1-main-apikey"
    argocd.application_put(
        client="client1",
        cluster="main",
        revision=scaled,
        sync="OutOfSync",
        health="Degraded",
        operation="Running",
        operation_message=waiting,
        since=since,
    )

    deployment = _fresh(as_user1)

    assert deployment["state"] == state
    if state == "degraded":
        assert deployment["message"] == (
            f"Argo CD has been applying the latest change for 11 minutes without finishing: {waiting}"
        )


def test_a_change_whose_commit_a_force_push_rewrote_away_is_deployed_once_argo_cd_runs_its_content(
    argocd, git_server, scaled, as_user1, settings
):
    """Someone squashed the branch (git push --force): no revision will ever hold the change's
    commit, but Argo CD runs exactly what the database says, so it is not pending for ever."""
    import pygit2

    from clusters.remote import gitops_remote
    from gitops.remote import remote_fetch
    from gitops.repository import branch_tip

    def fetched() -> None:  # as the portal's next delivery or look at Argo CD does
        remote_fetch(repository=portal_repository(settings), remote=gitops_remote())

    handle = pygit2.Repository(str(git_server.path))
    tip = handle.revparse_single("refs/heads/main")
    ops = pygit2.Signature("Ops", "ops@example.com")
    squashed = str(
        handle.create_commit(None, ops, ops, "squash\n", tip.tree_id, [])
    )  # same files, new history
    handle.references["refs/heads/main"].set_target(squashed)
    fetched()
    argocd.application_put(client="client1", cluster="main", revision=squashed)

    assert _fresh(as_user1)["state"] == "deployed"

    # A revision of the rewritten history whose files are not the database's holds nothing.
    hand_commit(git_server, "clients/client1/main/values.yaml", b"replicaCount: 1\n")
    fetched()
    argocd.application_put(client="client1", cluster="main", revision=branch_tip(repository=git_server))

    assert _fresh(as_user1)["state"] == "pending"
