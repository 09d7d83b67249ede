"""Dependencies fail under the running portal: every request gets a clear answer, nothing is lost,
and everything recovers by itself once the dependency is back (no restart).

Redis stopped and hung, PostgreSQL stopped and hung, the git remote unreachable and moved on by
someone else. The portal (gunicorn, DEBUG off, pooled connections) is started once by
``conftest.portal``; each test breaks one dependency, checks the answers, mends it and checks
that the same session, the same data and the same remote carry on.
"""

from __future__ import annotations

import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pygit2
import pytest
import requests
import yaml

from config.outages import REPORT_INTERVAL_SECONDS
from tests.faults.conftest import CONNECT_TIMEOUT_SECONDS, WORKERS, Portal, access_statuses
from tests.helpers import token_parts

pytestmark = pytest.mark.postgres

# The cache's socket timeouts are 2 s (config/settings.py), PostgreSQL's connect timeout is
# CONNECT_TIMEOUT_SECONDS: a request waits for one of them, plus the time to answer.
CACHE_TIMEOUT_SECONDS = 2
BOUNDED_SECONDS = max(CACHE_TIMEOUT_SECONDS, CONNECT_TIMEOUT_SECONDS) + 2.5
OUTAGE_LOGGER = "portal.outages"
REPORT_INTERVAL = timedelta(seconds=REPORT_INTERVAL_SECONDS)
outages_seen: set[str] = set()  # which dependencies the tests below broke (for the log check)


def _timed(call):
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _all_at_once(calls: dict) -> dict[str, tuple[requests.Response, float]]:
    """Every call at the same time, four at once (one worker's threads: none waits for another)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(calls, pool.map(_timed, calls.values()), strict=True))


def _assert_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.json()["code"] == code, response.text[:300]


def _assert_unavailable(response: requests.Response, code: str) -> None:
    _assert_error(response, 503, code)
    assert int(response.headers["Retry-After"]) > 0


def _session_works(portal: Portal, tokens: dict) -> None:
    """The session works again at once, on the first requests after the dependency is back: a
    pooled connection the outage broke is replaced, not answered 503 (config.cache)."""
    me = portal.request("GET", "/api/auth/me", token=tokens["accessToken"])
    assert me.status_code == 200, me.text
    validate = portal.request("GET", "/api/auth/validate", token=tokens["accessToken"])
    assert validate.status_code == 200, validate.text
    assert validate.headers["X-Auth-Email"] == me.json()["email"]


def _session_refused(portal: Portal, tokens: dict) -> None:
    _assert_error(portal.request("GET", "/api/auth/me", token=tokens["accessToken"]), 403, "token_not_valid")
    validate = portal.request("GET", "/api/auth/validate", token=tokens["accessToken"])
    _assert_error(validate, 403, "token_not_valid")
    assert validate.headers["X-Auth-Error-Code"] == "token_not_valid"
    refresh = portal.request("POST", "/api/auth/refresh", token=tokens["refreshToken"])
    assert refresh.status_code == 403, refresh.text


def _patch(portal: Portal, token: str, cluster: str, **changes) -> requests.Response:
    return portal.request("PATCH", f"/api/clients/client1/clusters/{cluster}", token=token, json=changes)


def _remote_tip(portal: Portal) -> pygit2.Commit:
    remote = pygit2.Repository(str(portal.remote))
    return remote.revparse_single("refs/heads/main").peel(pygit2.Commit)


def _remote_commits(portal: Portal) -> dict[str, pygit2.Commit]:
    remote = pygit2.Repository(str(portal.remote))
    return {str(commit.id): commit for commit in remote.walk(_remote_tip(portal).id)}


def _remote_values(portal: Portal, cluster: str) -> dict:
    remote = pygit2.Repository(str(portal.remote))
    return yaml.safe_load(remote.revparse_single(f"main:clients/client1/{cluster}/values.yaml").data)


def _assert_delivered(portal: Portal, token: str, cluster: str, authors: list[str]) -> None:
    """Every change of the cluster is its own commit on the remote, by the user who asked for it."""
    detail = portal.cluster(cluster, token)
    assert detail["revision"]["pushed"] is True, detail
    on_remote = _remote_commits(portal)
    changes = [change for change in portal.history(cluster, token) if change["author"] in authors]
    assert [change["author"] for change in reversed(changes)] == authors
    assert len({change["commit"] for change in changes}) == len(changes), "one commit per change"
    for change in changes:
        commit = on_remote.get(change["commit"])
        assert commit is not None, f"{change} is not on the remote"
        assert commit.author.email == change["author"]
        assert commit.message.startswith(change["message"])
    assert _remote_values(portal, cluster)["replicaCount"] == detail["replicas"]


def _admin_session(portal: Portal) -> requests.Session:
    """A signed-in Django admin session (its cookie), as an operator's browser holds one."""
    browser = requests.Session()
    tokens = portal.login("admin")
    opened = portal.request("POST", "/api/auth/admin-session", token=tokens["accessToken"], session=browser)
    if opened.status_code == 404:  # a portal without the sign-in bridge: the admin's own form
        portal.request("GET", "/admin/login/", session=browser)
        opened = portal.request(
            "POST",
            "/admin/login/?next=/admin/",
            session=browser,
            data={
                "csrfmiddlewaretoken": browser.cookies["csrftoken"],
                "username": "admin@example.com",
                "password": "admin",
            },
        )
    assert opened.status_code in (204, 302), opened.text[:500]
    assert portal.request("GET", "/admin/", session=browser).status_code == 200
    return browser


# --- Redis ---------------------------------------------------------------------------------


def test_redis_stopped_answers_auth_unavailable_and_the_session_survives(healthy: Portal):
    portal = healthy
    tokens = portal.login()
    before = portal.cluster("redis", tokens["accessToken"])

    portal.redis.refuse()
    outages_seen.add("session cache")
    for path in ("/api/auth/me", "/api/auth/validate", "/api/clients/client1/clusters/redis"):
        _assert_unavailable(portal.request("GET", path, token=tokens["accessToken"]), "auth_unavailable")
    assert (
        portal.request("GET", "/api/auth/validate", token=tokens["accessToken"]).headers["X-Auth-Error-Code"]
        == "auth_unavailable"
    )
    _assert_unavailable(_patch(portal, tokens["accessToken"], "redis", replicas=4), "auth_unavailable")
    _assert_unavailable(
        portal.request("POST", "/api/auth/refresh", token=tokens["refreshToken"]), "auth_unavailable"
    )
    login = portal.request(
        "POST", "/api/auth/login", json={"email": "client1@example.com", "password": "Y2xpZW50MQ=="}
    )
    _assert_unavailable(login, "auth_unavailable")  # fails closed: no unthrottled guessing
    assert portal.request("GET", "/healthz").status_code == 200
    readyz = portal.request("GET", "/readyz")
    assert readyz.status_code == 503
    assert readyz.json()["checks"]["database"] == "ok"
    assert readyz.json()["checks"]["cache"] != "ok"

    portal.redis.forward()
    _session_works(portal, tokens)
    assert portal.cluster("redis", tokens["accessToken"]) == before  # the refused PATCH changed nothing
    refreshed = portal.request("POST", "/api/auth/refresh", token=tokens["refreshToken"])
    assert refreshed.status_code == 200, refreshed.text  # the refused refresh retired nothing
    _session_works(portal, refreshed.json())


def test_redis_hung_answers_auth_unavailable_within_the_socket_timeout(healthy: Portal):
    portal = healthy
    tokens = portal.login()

    portal.redis.hang()
    outages_seen.add("session cache")
    calls = {
        "me": lambda: portal.request("GET", "/api/auth/me", token=tokens["accessToken"]),
        "validate": lambda: portal.request("GET", "/api/auth/validate", token=tokens["accessToken"]),
        "refresh": lambda: portal.request("POST", "/api/auth/refresh", token=tokens["refreshToken"]),
        "login": lambda: portal.request(
            "POST", "/api/auth/login", json={"email": "client1@example.com", "password": "Y2xpZW50MQ=="}
        ),
    }
    # All at once, as a busy portal sees it: no thread waits longer than one socket timeout.
    answers = _all_at_once(calls)
    for name, (response, seconds) in answers.items():
        _assert_unavailable(response, "auth_unavailable")
        assert seconds < BOUNDED_SECONDS, f"{name} waited {seconds:.1f} s"
    readyz, seconds = _timed(lambda: portal.request("GET", "/readyz"))
    assert readyz.status_code == 503
    assert seconds < BOUNDED_SECONDS
    assert portal.request("GET", "/healthz", timeout=2).status_code == 200

    portal.redis.forward()
    _session_works(portal, tokens)
    refreshed = portal.request("POST", "/api/auth/refresh", token=tokens["refreshToken"])
    assert refreshed.status_code == 200, refreshed.text


def _session_revoked_in_database(portal: Portal, tokens: dict) -> str | None:
    """The revocation reason the database recorded for the tokens' session (None: not revoked)."""
    sid = token_parts(tokens["accessToken"])[1]["sid"]
    [(revoked_at, reason)] = portal.sql(
        "SELECT revoked_at, revoked_reason FROM accounts_session WHERE id = %s", sid
    )
    return reason if revoked_at is not None else None


def test_a_logout_while_redis_hangs_then_restarts_revokes_nothing_and_a_second_one_everything(
    healthy: Portal,
):
    portal = healthy
    tokens = portal.login()
    _session_works(portal, tokens)

    portal.redis.hang()
    outages_seen.add("session cache")
    logout, seconds = _timed(lambda: portal.request("POST", "/api/auth/logout", token=tokens["refreshToken"]))
    _assert_unavailable(logout, "auth_unavailable")
    assert seconds < BOUNDED_SECONDS

    portal.redis.refuse()  # the hung server is killed and started again: what it had not read is gone
    portal.redis.forward()
    # Truthful: the user was told the logout failed, and nothing was revoked, neither at the API,
    # nor at the gateway, nor in the database.
    _session_works(portal, tokens)
    sessions = portal.request("GET", "/api/auth/sessions", token=tokens["accessToken"])
    assert [s["current"] for s in sessions.json()].count(True) == 1
    assert _session_revoked_in_database(portal, tokens) is None

    again = portal.request("POST", "/api/auth/logout", token=tokens["refreshToken"])
    assert again.status_code == 204
    _session_refused(portal, tokens)
    assert _session_revoked_in_database(portal, tokens) == "logout"


def test_a_logout_while_redis_hangs_then_resumes_leaves_api_and_gateway_agreeing(healthy: Portal):
    """A paused Redis that resumes still runs what it was sent before the portal gave up.

    Whether the revocation marker reached it depends on the connection the request drew: an
    open one carried it (it lands late, ending the session sooner, as the user asked); a new one
    was still saying hello. Either way the API and the gateway agree, the database recorded no
    revocation for a logout answered 503, and the logout the client retries settles it.
    """
    portal = healthy
    tokens = portal.login()
    _session_works(portal, tokens)

    portal.redis.hang()
    outages_seen.add("session cache")
    logout, seconds = _timed(lambda: portal.request("POST", "/api/auth/logout", token=tokens["refreshToken"]))
    _assert_unavailable(logout, "auth_unavailable")
    assert seconds < BOUNDED_SECONDS

    portal.redis.forward()
    time.sleep(0.5)  # what waited in the proxy reaches Redis now, as in a resumed server's buffers
    me = portal.request("GET", "/api/auth/me", token=tokens["accessToken"])
    validate = portal.request("GET", "/api/auth/validate", token=tokens["accessToken"])
    assert (me.status_code, validate.status_code) in {(200, 200), (403, 403)}, (me.text, validate.text)
    assert _session_revoked_in_database(portal, tokens) is None

    again = portal.request("POST", "/api/auth/logout", token=tokens["refreshToken"])
    assert again.status_code == 204
    _session_refused(portal, tokens)  # the API, the gateway and refresh alike
    assert _session_revoked_in_database(portal, tokens) == "logout"


# --- PostgreSQL ----------------------------------------------------------------------------


def test_postgres_unreachable_answers_database_unavailable_and_recovers(healthy: Portal):
    portal = healthy
    tokens = portal.login()
    admin = _admin_session(portal)
    before = portal.cluster("database", tokens["accessToken"])
    history_before = portal.history("database", tokens["accessToken"])
    tip_before = _remote_tip(portal).id
    _session_works(portal, tokens)  # caches the user's claims: /validate needs no database

    def get(path: str, **kwargs):
        return lambda: portal.request("GET", path, token=tokens["accessToken"], **kwargs)

    calls = {
        "sessions": get("/api/auth/sessions"),
        "clusters": get("/api/clients/client1/clusters"),
        "cluster": get("/api/clients/client1/clusters/database"),
        "me": get("/api/auth/me"),
        "patch": lambda: _patch(portal, tokens["accessToken"], "database", replicas=5),
        "login": lambda: portal.request(
            "POST", "/api/auth/login", json={"email": "client1@example.com", "password": "d3Jvbmc="}
        ),
        "admin": lambda: portal.request("GET", "/admin/", session=admin),
        "readyz": lambda: portal.request("GET", "/readyz"),
    }
    for broken in ("refuse", "hang"):  # stopped; then hung for new connections (pooled ones are cut)
        getattr(portal.database, broken)()
        outages_seen.add("database")
        answers = _all_at_once(calls)
        for name, (_response, seconds) in answers.items():
            assert seconds < BOUNDED_SECONDS, f"{broken}: {name} waited {seconds:.1f} s"
        for name in ("sessions", "clusters", "cluster", "patch"):
            _assert_unavailable(answers[name][0], "database_unavailable")
        # Not 401: the password could not be checked at all.
        _assert_unavailable(answers["login"][0], "database_unavailable")
        # Who the user is and the gateway's check come from the session cache alone.
        assert answers["me"][0].status_code == 200, answers["me"][0].text
        page = answers["admin"][0]
        assert page.status_code == 503, page.text[:300]
        assert int(page.headers["Retry-After"]) > 0
        readyz = answers["readyz"][0]
        assert readyz.status_code == 503
        assert readyz.json()["checks"]["cache"] == "ok"
        assert readyz.json()["checks"]["database"] != "ok"
        assert get("/api/auth/validate")().status_code == 200
        assert portal.request("GET", "/healthz", timeout=2).status_code == 200

    portal.database.forward()
    _session_works(portal, tokens)
    assert portal.cluster("database", tokens["accessToken"]) == before
    assert portal.history("database", tokens["accessToken"]) == history_before
    assert _remote_tip(portal).id == tip_before  # the refused PATCH reached neither database nor git
    assert portal.request("GET", "/admin/", session=admin).status_code == 200
    assert portal.login()["user"]["email"] == "client1@example.com"
    patch = _patch(portal, tokens["accessToken"], "database", replicas=before["replicas"] + 1)
    assert patch.status_code == 200, patch.text
    _assert_delivered(portal, tokens["accessToken"], "database", ["client1@example.com"])


# --- The git remote ------------------------------------------------------------------------


def _two_changes_while_unreachable(portal: Portal, cluster: str) -> tuple[dict, dict]:
    client1, admin = portal.login("client1"), portal.login("admin")
    portal.git.answering = False
    outages_seen.add("gitops remote")
    first = _patch(portal, client1["accessToken"], cluster, replicas=2)
    assert first.status_code == 202, first.text
    assert first.json()["revision"]["pushed"] is False
    assert first.json()["replicas"] == 2
    second = _patch(portal, admin["accessToken"], cluster, replicas=3)
    assert second.status_code == 202, second.text
    assert second.json()["revision"]["pushed"] is False
    assert portal.cluster(cluster, client1["accessToken"])["revision"]["pushed"] is False
    return client1, admin


def test_an_unreachable_remote_gets_every_change_with_the_next_one(healthy: Portal):
    portal = healthy
    client1, _admin = _two_changes_while_unreachable(portal, "unreachable")

    portal.git.answering = True
    third = _patch(portal, client1["accessToken"], "unreachable", replicas=4)
    assert third.status_code == 200, third.text
    assert third.json()["revision"]["pushed"] is True
    _assert_delivered(
        portal,
        client1["accessToken"],
        "unreachable",
        ["client1@example.com", "admin@example.com", "client1@example.com"],
    )


def test_an_unreachable_remote_gets_every_change_from_gitops_sync(healthy: Portal):
    portal = healthy
    client1, _admin = _two_changes_while_unreachable(portal, "synced")

    portal.git.answering = True
    portal.manage("gitops_sync")
    _assert_delivered(portal, client1["accessToken"], "synced", ["client1@example.com", "admin@example.com"])


def test_while_one_write_waits_on_a_stalled_remote_the_others_answer_at_once(healthy: Portal):
    """The write that retries the remote after a failure pays its delay alone: a write that
    arrives meanwhile commits locally and answers 202, not after the retry's push."""
    portal = healthy
    client1, admin = portal.login("client1"), portal.login("admin")
    portal.git.answering = False
    assert _patch(portal, client1["accessToken"], "stalled", replicas=2).status_code == 202
    portal.git.answering, portal.git.stall_seconds = True, 3  # back, but slow: a push takes 6 s
    with ThreadPoolExecutor(max_workers=1) as pool:
        retrying = pool.submit(_timed, lambda: _patch(portal, client1["accessToken"], "stalled", replicas=3))
        time.sleep(1)  # it has claimed the retry and waits on the remote
        meanwhile, meanwhile_took = _timed(
            lambda: _patch(portal, admin["accessToken"], "stalled", replicas=4)
        )
        retried, retry_took = retrying.result()

    assert meanwhile.status_code == 202, meanwhile.text
    assert meanwhile.json()["revision"]["pushed"] is False and meanwhile_took < 2
    assert retried.status_code == 200, retried.text
    assert retry_took > 5
    portal.git.stall_seconds = 0
    portal.manage("gitops_sync")
    _assert_delivered(
        portal,
        client1["accessToken"],
        "stalled",
        ["client1@example.com", "client1@example.com", "admin@example.com"],
    )


def _someone_pushes(portal: Portal, tmp_path, path: str) -> str:
    """An operator's own commit on the remote's branch, pushed straight to it (not through the portal)."""
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}
    work = tmp_path / "operator"

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=work, env=env, check=True, capture_output=True, text=True
        ).stdout.strip()

    subprocess.run(["git", "clone", "-q", str(portal.remote), str(work)], env=env, check=True)
    (work / path).parent.mkdir(parents=True, exist_ok=True)
    (work / path).write_text("Maintenance window: Sundays 02:00 UTC.\n")
    git("add", path)
    git("-c", "user.name=Ops", "-c", "user.email=ops@example.com", "commit", "-q", "-m", "ops: notes")
    git("push", "-q", "origin", "HEAD:main")
    return git("rev-parse", "HEAD")


def _on_top_of(portal: Portal, ancestor: str, path: str) -> None:
    remote = pygit2.Repository(str(portal.remote))
    tip = _remote_tip(portal)
    assert remote.descendant_of(tip.id, pygit2.Oid(hex=ancestor)), "the operator's commit was overwritten"
    assert path in [entry.name for entry in tip.tree["ops"]]


def test_a_remote_that_moved_gets_the_change_on_top(healthy: Portal, tmp_path):
    portal = healthy
    client1 = portal.login("client1")
    theirs = _someone_pushes(portal, tmp_path, "ops/moved.md")

    changed = _patch(portal, client1["accessToken"], "moved", replicas=2)
    assert changed.status_code == 200, changed.text
    assert changed.json()["revision"]["pushed"] is True
    _on_top_of(portal, theirs, "moved.md")
    _assert_delivered(portal, client1["accessToken"], "moved", ["client1@example.com"])


def test_a_remote_that_moved_while_unreachable_gets_every_change_on_top(healthy: Portal, tmp_path):
    portal = healthy
    client1, _admin = _two_changes_while_unreachable(portal, "moved-offline")
    theirs = _someone_pushes(portal, tmp_path, "ops/moved-offline.md")  # by another way in

    portal.git.answering = True
    third = _patch(portal, client1["accessToken"], "moved-offline", replicas=4)
    assert third.status_code == 200, third.text
    _on_top_of(portal, theirs, "moved-offline.md")
    _assert_delivered(
        portal,
        client1["accessToken"],
        "moved-offline",
        ["client1@example.com", "admin@example.com", "client1@example.com"],
    )


# --- What the portal said about it ---------------------------------------------------------


def test_the_log_reports_each_outage_once_without_tracebacks(portal: Portal):
    """Last in the file: reads what the portal wrote while the tests above broke its dependencies."""
    records = portal.log_records()
    tracebacks = [r for r in records if r.get("exception") or "Traceback" in str(r.get("raw", ""))]
    assert not tracebacks, tracebacks[:3]
    statuses = access_statuses(records)
    assert statuses, "gunicorn's access log is missing"
    assert not [line for line, status in statuses if status >= 500 and status != 503]
    # A 503 for a dependency is the reporter's to log, once per burst: no line per response or probe.
    per_answer = [r for r in records if r.get("logger") == "django.request" and r.get("status_code") == 503]
    assert not per_answer, per_answer[:3]
    if not outages_seen:
        pytest.skip("no outage test ran before this one")
    reports = [r for r in records if r.get("logger") == OUTAGE_LOGGER]
    for dependency in outages_seen:
        said = sorted(
            datetime.fromisoformat(r["time"])
            for r in reports
            if r["message"].startswith(f"{dependency} unreachable")
        )
        # Once per burst in each worker process that met it, then at most once a minute: however
        # long the tests above took, no minute holds more than one report per worker.
        busiest = max(
            (sum(1 for other in said if at <= other < at + REPORT_INTERVAL) for at in said), default=0
        )
        assert 1 <= busiest <= WORKERS, (dependency, [r["message"] for r in reports])
