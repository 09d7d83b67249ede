"""GET /api/system/status and the admin's System status page: who may see them, and what each probe finds."""

from __future__ import annotations

import logging
import os
import socket
from urllib.parse import urlsplit

import pytest
from django.db import connections
from django.utils import timezone

from accounts.keys import keys_dir_add
from clusters.models import ClusterChange, GitopsRemoteState
from clusters.remote import gitops_remote, remote_state_record
from clusters.repository import repository_get
from clusters.services import client_update
from config.outages import REPORT_INTERVAL_SECONDS, gitops_remote_outage
from gitops.remote import remote_fetch
from operations import selectors
from operations.selectors import cache_status, database_status, system_status
from tests.helpers import free_port, hand_commit
from tests.support.git_http import GitHttpServer

STATUS_URL = "/api/system/status"
ADMIN_STATUS_URL = "/admin/operations/systemstatus/"


def _listening(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def _database_wrapper(engine: str, **fields):
    """A Django connection of its own, outside the test's databases (a server the test picks)."""
    configured = connections.configure_settings({"default": {}, "probe": {"ENGINE": engine, **fields}})
    settings_dict = configured["probe"]
    backend = __import__(f"{engine}.base", fromlist=["DatabaseWrapper"])
    return backend.DatabaseWrapper(settings_dict, alias="probe")


@pytest.fixture
def dead_redis(settings):
    """``dead_redis()`` makes the cache a Redis that refuses connections (with a password in its URL)."""
    original = settings.CACHES

    def kill() -> None:
        settings.CACHES = {
            "default": {
                "BACKEND": "config.cache.RedisCache",
                "LOCATION": f"redis://:hunter2@127.0.0.1:{free_port()}/0",
                "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
            }
        }

    yield kill
    settings.CACHES = original  # before the shared fixtures clear the cache


@pytest.fixture
def staff(user_factory):
    return user_factory(email="staff@example.com", is_staff=True)


# --- Who may ask -----------------------------------------------------------------------------


def test_staff_get_every_probe_in_camel_case(client_for, staff):
    response = client_for(staff).get(STATUS_URL)

    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    body = response.json()
    assert set(body) == {"ok", "checkedAt", "database", "cache", "gitops", "argocd", "signingKeys"}
    assert body["ok"] is True
    database = body["database"]
    assert database["ok"] is True and database["error"] is None
    assert database["vendor"] == connections["default"].vendor
    assert database["serverVersion"]
    assert database["roundTripMs"] >= 0 and database["slow"] in (True, False)
    if database["vendor"] == "sqlite":
        assert database["connections"] is None
    else:
        assert 1 <= database["connections"]["inUse"] <= database["connections"]["max"]
    assert body["cache"]["ok"] is True and body["cache"]["keys"] >= 1  # at least this session's entries
    assert body["gitops"] == {
        "ok": True,
        "error": None,
        "remote": {
            "configured": False,
            "lastPushAt": None,
            "lastPushCommit": "",
            "lastFailureAt": None,
            "lastFailureReason": "",
        },
        "pendingChanges": 0,
        "oldestPendingAt": None,
        "oldestPendingAgeSeconds": 0.0,
    }
    assert body["argocd"] == {
        "configured": False,
        "ok": None,
        "error": None,
        "clustersByState": {},
        "clustersByStateError": None,
    }
    keys = body["signingKeys"]
    assert keys["ok"] is True and keys["algorithm"] == "RS256" and keys["source"] == "JWT_PRIVATE_KEYS"
    assert [key["signing"] for key in keys["keys"]] == [True]
    assert keys["keys"][0]["createdAt"] is None  # a key given in the environment has no file


def test_anonymous_callers_are_asked_to_sign_in(api_client, db):
    response = api_client.get(STATUS_URL)
    assert response.status_code == 403 and response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_users_who_are_not_staff_are_refused(client_for, user_factory, client1, role):
    from clusters.models import Grant
    from clusters.services import grant_set

    user = user_factory(email=f"{role}@example.com")
    grant_set(user=user, client=client1, role=Grant.Role(role))
    response = client_for(user).get(STATUS_URL)
    assert response.status_code == 403
    assert response.json() == {"code": "permission_denied", "detail": "Insufficient permissions"}


def test_a_staff_user_signed_in_with_cookies_may_ask_too(auth_client, staff):
    assert auth_client(staff).get(STATUS_URL).status_code == 200


# --- The cache ---------------------------------------------------------------------------------


def test_a_dead_redis_is_reported_with_its_error_and_no_password(dead_redis, db):
    dead_redis()

    status = cache_status()

    assert status.ok is False
    assert status.backend == "RedisCache"
    assert "ConnectionError" in status.error
    assert "hunter2" not in status.error


@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL)")
def test_a_live_redis_reports_memory_keys_and_version(settings, db):
    from django.core.cache import cache

    cache.set("operations-test", 1)
    status = cache_status()
    assert status.ok and status.backend == "redis" and status.server_version
    assert status.used_memory_bytes > 0 and status.keys >= 1


def test_with_a_dead_session_cache_the_api_fails_closed_and_the_admin_page_still_answers(
    client_for, client, staff, dead_redis
):
    """The API authenticates against the cache (503 auth_unavailable without it, by design); the
    admin's sessions live in the database, so its status page shows the dead cache."""
    api = client_for(staff)
    client.force_login(staff)
    dead_redis()

    refused = api.get(STATUS_URL)
    page = client.get(ADMIN_STATUS_URL)

    assert refused.status_code == 503 and refused.json()["code"] == "auth_unavailable"
    assert page.status_code == 200
    cache_section = page.content.decode().split('id="status-cache"')[1].split('id="status-gitops"')[0]
    assert "Cache: failed" in cache_section and "ConnectionError" in cache_section
    assert "hunter2" not in page.content.decode()


# --- The database ------------------------------------------------------------------------------


def test_an_unreachable_postgresql_is_reported_not_raised(db):
    wrapper = _database_wrapper(
        "django.db.backends.postgresql",
        NAME="portal",
        USER="portal",
        PASSWORD="s3cret-password",
        HOST="127.0.0.1",
        PORT=str(free_port()),
        OPTIONS={"connect_timeout": 2},
    )
    status = database_status(connection=wrapper)

    assert status.ok is False and status.vendor == "postgresql"
    assert status.error.startswith("OperationalError: ")
    assert "s3cret-password" not in status.error


def _postgres_address() -> tuple[str, int, str]:
    url = os.environ.get("DATABASE_URL", "")
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(url)
        return parts.hostname or "127.0.0.1", parts.port or 5432, parts.username or "postgres"
    return "127.0.0.1", 5432, "postgres"


@pytest.mark.skipif(not _listening(*_postgres_address()[:2]), reason="no PostgreSQL server to ask")
def test_a_live_postgresql_reports_version_and_connections(db):
    host, port, user = _postgres_address()
    wrapper = _database_wrapper(
        "django.db.backends.postgresql", NAME="postgres", USER=user, HOST=host, PORT=str(port)
    )
    try:
        status = database_status(connection=wrapper)
    finally:
        wrapper.close()
    assert status.ok, status.error
    assert status.server_version[0].isdigit()
    assert 1 <= status.connections_in_use <= status.connections_max


@pytest.mark.skipif(not _listening("127.0.0.1", 3306), reason="no MariaDB/MySQL server on 127.0.0.1:3306")
def test_a_live_mariadb_reports_version_and_connections(db):
    pymysql = pytest.importorskip("pymysql")
    pymysql.install_as_MySQLdb()
    wrapper = _database_wrapper(
        "django.db.backends.mysql", NAME="", USER="root", HOST="127.0.0.1", PORT="3306"
    )
    try:
        status = database_status(connection=wrapper)
    finally:
        wrapper.close()
    assert status.ok, status.error
    assert status.vendor == "mysql" and "MariaDB" in status.server_version
    assert 1 <= status.connections_in_use <= status.connections_max


def test_a_database_that_does_not_answer_in_time_is_reported_and_the_outbox_left_unread(monkeypatch, db):
    monkeypatch.setattr(selectors, "PROBE_TIMEOUT_SECONDS", 1.0)  # the cache probe must fit in it
    monkeypatch.setattr(selectors, "database_status", lambda: __import__("time").sleep(2))

    status = system_status()

    assert status.ok is False
    assert status.database.ok is False and status.database.error == "no answer within 1 s"
    assert status.gitops.ok is False and "database did not answer" in status.gitops.error
    assert status.cache.ok is True


# --- GitOps --------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)  # deliveries run once the change is committed
def test_a_push_to_the_remote_is_recorded_and_the_outbox_empties(
    git_server, client_for, staff, as_user1, cluster1
):
    response = as_user1.patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")
    assert response.status_code == 200

    gitops = client_for(staff).get(STATUS_URL).json()["gitops"]

    state = GitopsRemoteState.objects.get()
    assert state.last_push_commit == response.json()["revision"]["commit"]
    assert gitops["remote"]["configured"] is True
    assert gitops["remote"]["lastPushCommit"] == state.last_push_commit
    assert gitops["remote"]["lastPushAt"] is not None and gitops["remote"]["lastFailureAt"] is None
    assert gitops["pendingChanges"] == 0


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_remote_is_recorded_and_the_waiting_change_counted(
    client_for, staff, as_user1, cluster1, settings, tmp_path, caplog, monkeypatch
):
    settings.GITOPS_REMOTE_URL = str(tmp_path / "no-such-remote.git")
    monkeypatch.setattr(gitops_remote_outage, "_last_report", -REPORT_INTERVAL_SECONDS)  # a new outage
    with caplog.at_level(logging.ERROR, logger="portal.outages"):
        answers = [
            as_user1.patch("/api/clients/client1/clusters/main", {"replicas": replicas}, format="json")
            for replicas in (3, 4)
        ]
    body = client_for(staff).get(STATUS_URL).json()
    gitops = body["gitops"]

    assert [answer.status_code for answer in answers] == [202, 202]
    assert body["ok"] is False and gitops["ok"] is False
    # Why, on the page and in the log (there once for both requests, not once per request).
    reason = gitops["remote"]["lastFailureReason"]
    assert reason.startswith("GitError: ") and len(reason) > len("GitError: ")
    assert gitops["error"] == f"the last push to the remote failed ({reason}); changes wait for the next one"
    (reported,) = [r.getMessage() for r in caplog.records if r.name == "portal.outages"]
    assert reported.startswith("gitops remote unreachable: GitError: ")
    assert gitops["remote"]["lastFailureAt"] is not None and gitops["remote"]["lastPushAt"] is None
    waiting = ClusterChange.objects.filter(pushed=False).exclude(action="storage_request").order_by("id")
    assert gitops["pendingChanges"] == waiting.count() >= 1
    oldest = min(change.created_at for change in waiting)
    assert gitops["oldestPendingAt"] == oldest.isoformat().replace("+00:00", "Z")
    assert gitops["oldestPendingAgeSeconds"] >= 0


@pytest.mark.django_db(transaction=True)
def test_a_push_the_remote_refuses_is_shown_with_its_reason_and_logged_as_a_refusal(
    client_for, client, staff, as_user1, cluster1, settings, tmp_path, caplog
):
    with GitHttpServer(tmp_path / "served") as server:
        server.repository_create("gitops.git")
        server.refusing_hook_install("gitops.git", "frozen for the audit")
        settings.GITOPS_REMOTE_URL = server.url("gitops.git")
        with caplog.at_level(logging.WARNING):
            answer = as_user1.patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")
        gitops = client_for(staff).get(STATUS_URL).json()["gitops"]
        client.force_login(staff)
        page = client.get(ADMIN_STATUS_URL).content.decode().split('id="status-gitops"')[1]

    assert answer.status_code == 202
    reason = gitops["remote"]["lastFailureReason"]
    assert reason.startswith("PushRejected: refs/heads/") and "frozen for the audit" in reason
    assert reason in gitops["error"]
    logged = [
        record.getMessage() for record in caplog.records if "frozen for the audit" in record.getMessage()
    ]
    assert logged and all(message.startswith("The gitops remote refused the push") for message in logged)
    assert "GitOps: failed" in page and "frozen for the audit" in page

    # A fetch that fails later (a deployment read's, in the background) is not why the push failed.
    settings.GITOPS_REMOTE_URL = f"http://127.0.0.1:{free_port()}/gitops.git"
    assert not remote_fetch(repository=repository_get(), remote=gitops_remote()).reachable
    assert client_for(staff).get(STATUS_URL).json()["gitops"]["remote"]["lastFailureReason"] == reason


@pytest.mark.django_db(transaction=True)
def test_a_failure_an_earlier_request_met_is_not_given_as_a_later_pushs_reason(
    settings, git_server, cluster1, user1, as_user1
):
    """Worker threads serve request after request: what one met and did not record stays out of
    the next one's reason."""
    first = as_user1.patch("/api/clients/client1/clusters/main", {"replicas": 4}, format="json")
    assert first.status_code == 200  # on the remote: it is reachable
    reachable = settings.GITOPS_REMOTE_URL
    settings.GITOPS_REMOTE_URL = f"http://127.0.0.1:{free_port()}/gitops.git"
    assert not remote_fetch(repository=repository_get(), remote=gitops_remote()).reachable  # not recorded
    settings.GITOPS_REMOTE_URL, settings.GITOPS_PUSH_RETRIES = reachable, 0
    hand_commit(git_server, "notes.txt", b"someone pushed meanwhile")

    client_update(client=cluster1.client, name="Renamed", active=True, actor=user1)  # refused as behind

    state = GitopsRemoteState.objects.get()
    assert state.last_failure_at is not None
    assert state.last_failure_reason == "The remote refused the push: it had moved on at every try."


def test_a_failed_fetch_alone_is_no_failed_push_on_the_status_page(client_for, staff, cluster1, settings):
    settings.GITOPS_REMOTE_URL = f"http://127.0.0.1:{free_port()}/gitops.git"

    assert not remote_fetch(repository=repository_get(), remote=gitops_remote()).reachable

    remote = client_for(staff).get(STATUS_URL).json()["gitops"]["remote"]
    assert (remote["lastFailureAt"], remote["lastFailureReason"]) == (None, "")


# --- Signing keys and Argo CD ----------------------------------------------------------------------


def test_keys_from_a_key_directory_report_their_age_and_which_one_signs(settings, tmp_path, db):
    keys_dir = tmp_path / "jwt-keys"
    old = keys_dir_add(keys_dir, algorithm="RS256")
    os.utime(keys_dir / f"{old}.pem", (0, timezone.now().timestamp() - 86_400))
    new = keys_dir_add(keys_dir, algorithm="RS256")
    settings.JWT_PRIVATE_KEYS = ""
    settings.JWT_KEYS_DIR = keys_dir

    status = selectors.signing_keys_status()

    assert status.ok and status.source == "JWT_KEYS_DIR"
    assert [(key.kid, key.signing) for key in status.keys] == [(new, True), (old, False)]
    assert 86_000 < status.keys[1].age_seconds < 87_000
    assert status.keys[0].age_seconds < 60


def test_a_file_in_the_key_directory_that_is_not_a_key_is_reported_beside_the_keys_in_use(
    settings, tmp_path, db, monkeypatch
):
    monkeypatch.setattr("accounts.tokens.KEYS_DIR_RECHECK_SECONDS", 0)
    keys_dir = tmp_path / "jwt-keys"
    signing = keys_dir_add(keys_dir, algorithm="RS256")
    settings.JWT_PRIVATE_KEYS = ""
    settings.JWT_KEYS_DIR = keys_dir
    assert selectors.signing_keys_status().ok

    (keys_dir / "copied-wrong.pem").write_text("not a key")
    status = selectors.signing_keys_status()

    assert not status.ok and "copied-wrong.pem is not a PEM private key" in status.error
    assert [(key.kid, key.signing) for key in status.keys] == [(signing, True)]

    (keys_dir / "copied-wrong.pem").unlink()
    assert selectors.signing_keys_status().ok


def test_argocd_is_asked_once_configured_and_a_failure_is_shown(settings, argocd, cluster1):
    from django.core.cache import cache

    settings.ARGOCD_URL = ""
    assert selectors.argocd_status().configured is False
    assert argocd.requests() == []  # not configured: never asked
    settings.ARGOCD_URL = argocd.url
    argocd.application_put(client="client1", cluster="main", revision="0" * 40)

    status = selectors.argocd_status()
    assert (status.configured, status.ok) == (True, True)
    assert sum(status.clusters_by_state.values()) == 1  # client1/main, in whatever state it is
    assert argocd.requests()  # the answer came from Argo CD's API

    argocd.answer_status = 503
    cache.delete_many(["argocd:backoff", "argocd:application:qdrant.client1.main"])
    down = selectors.argocd_status()
    assert (down.configured, down.ok) == (True, False) and "503" in down.error


# --- The admin page -------------------------------------------------------------------------------


def test_the_admin_index_lists_the_status_page_for_staff_and_it_renders(client, staff):
    client.force_login(staff)

    index = client.get("/admin/")
    page = client.get(ADMIN_STATUS_URL)

    assert index.status_code == 200 and ADMIN_STATUS_URL.encode() in index.content
    assert page.status_code == 200
    html = page.content.decode()
    for section in (
        "Database: ok",
        "Cache: ok",
        "GitOps: ok",
        "Argo CD: not configured",
        "Token signing keys: ok",
    ):
        assert section in html
    assert "no-cache" in page["Cache-Control"]


def test_the_admin_page_is_not_for_users_who_are_not_staff(client, user1):
    client.force_login(user1)
    response = client.get(ADMIN_STATUS_URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


# --- Argo CD, configured (the clusters app's deployments, against a fake Argo CD) ----------------


@pytest.mark.django_db(transaction=True)
def test_argo_cd_configured_counts_clusters_by_state_and_feeds_the_gauge(
    argocd, git_server, client_for, staff, client1
):
    import threading

    from django.core.cache import cache
    from prometheus_client import REGISTRY

    from clusters.services import cluster_create

    deployed = cluster_create(client=client1, slug="main", actor=None).change.commit
    cluster_create(client=client1, slug="new", actor=None)  # no Application yet: unknown
    argocd.application_put(client="client1", cluster="main", revision=deployed)
    for thread in threading.enumerate():
        if thread.name.startswith("argocd-refresh"):
            thread.join(timeout=5)
    cache.delete_many(["argocd:application:qdrant.client1.main", "argocd:application:qdrant.client1.new"])

    body = client_for(staff).get(STATUS_URL).json()

    assert body["argocd"] == {
        "configured": True,
        "ok": True,
        "error": None,
        "clustersByState": {
            "pending": 0,
            "syncing": 0,
            "deployed": 1,
            "degraded": 0,
            "failed": 0,
            "unknown": 1,
        },
        "clustersByStateError": None,
    }
    assert REGISTRY.get_sample_value("portal_cluster_deployments", {"state": "deployed"}) == 1
    assert REGISTRY.get_sample_value("portal_cluster_deployments", {"state": "failed"}) == 0

    argocd.answer_status = 401  # the token was revoked
    cache.delete_many(["argocd:application:qdrant.client1.main", "argocd:application:qdrant.client1.new"])
    body = client_for(staff).get(STATUS_URL).json()

    assert body["ok"] is False
    assert body["argocd"]["ok"] is False and "refused the portal's token" in body["argocd"]["error"]
    assert "argocd-read-only-token" not in str(body)


@pytest.mark.django_db(transaction=True)
def test_argo_cd_answering_at_once_is_ok_however_long_the_portal_takes_to_count_states(
    argocd, git_server, client, client_for, staff, client1, monkeypatch
):
    """The deadline is Argo CD's: the portal's own work after its answer (which revision holds
    which change, from git and the database) is not Argo CD failing to answer."""
    import time

    from clusters import deployments
    from clusters.services import cluster_create

    deployed = cluster_create(client=client1, slug="main", actor=None).change.commit
    argocd.application_put(client="client1", cluster="main", revision=deployed)
    monkeypatch.setattr(selectors, "PROBE_TIMEOUT_SECONDS", 1.0)
    judge = deployments.status_state

    def slow_judge(*args, **kwargs):
        time.sleep(1.5)  # a long git history to look through
        return judge(*args, **kwargs)

    monkeypatch.setattr(deployments, "status_state", slow_judge)

    body = client_for(staff).get(STATUS_URL).json()
    client.force_login(staff)
    page = client.get(ADMIN_STATUS_URL).content.decode()

    assert [r.path for r in argocd.requests()][-1] == "/api/v1/applications/qdrant.client1.main"  # asked
    assert body["ok"] is True
    assert body["argocd"] == {
        "configured": True,
        "ok": True,
        "error": None,
        "clustersByState": {},
        "clustersByStateError": "Argo CD answered; counting the clusters' states took longer than 1 s",
    }
    assert "Argo CD: ok" in page
    assert "counting the clusters&#x27; states took longer than 1 s" in page


@pytest.mark.django_db(transaction=True)
def test_argo_cd_not_answering_in_time_is_failed(
    argocd, git_server, client_for, staff, client1, settings, monkeypatch
):
    from datetime import timedelta

    from clusters.services import cluster_create

    deployed = cluster_create(client=client1, slug="main", actor=None).change.commit
    argocd.application_put(client="client1", cluster="main", revision=deployed)
    monkeypatch.setattr(selectors, "PROBE_TIMEOUT_SECONDS", 1.0)
    settings.ARGOCD_TIMEOUT = timedelta(seconds=5)
    argocd.hang_seconds = 2

    body = client_for(staff).get(STATUS_URL).json()

    assert body["ok"] is False
    assert body["argocd"]["ok"] is False and body["argocd"]["error"] == "no answer within 1 s"
    assert body["argocd"]["clustersByStateError"] is None


def test_the_failure_reason_shown_to_operators_hides_a_urls_credentials(db, settings):
    import pygit2

    settings.GITOPS_REMOTE_URL = "https://git.example.com/x.git"
    told = gitops_remote().on_failure  # what the transport calls with git's error
    told(pygit2.GitError("failed to send request to https://bot:hunter2@git.example.com/x.git"))
    remote_state_record(pushed=False, tip=None)  # the delivery that met it records it

    state = GitopsRemoteState.objects.get()
    assert state.last_failure_reason.startswith("GitError: failed to send request to https://")
    assert "hunter2" not in state.last_failure_reason


@pytest.mark.django_db(transaction=True)
def test_a_remote_taken_out_of_the_settings_leaves_no_failure_on_the_status_page(
    client_for, staff, as_user1, cluster1, settings, tmp_path
):
    """A remote tried and then removed: the portal pushes nowhere now, so nothing is failing."""
    settings.GITOPS_REMOTE_URL = str(tmp_path / "no-such-remote.git")
    as_user1.patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")
    assert client_for(staff).get(STATUS_URL).json()["gitops"]["ok"] is False

    settings.GITOPS_REMOTE_URL = ""
    gitops = client_for(staff).get(STATUS_URL).json()["gitops"]

    assert gitops["ok"] is True and gitops["error"] is None
    assert gitops["remote"]["configured"] is False
