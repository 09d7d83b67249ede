"""GET /metrics: off without METRICS_TOKEN, bearer-protected, and counting what real requests did.

Every check parses the exposition with prometheus-client's own text-format parser, as
Prometheus would read it, and compares the counters before and after the requests.
"""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clusters.models import ClusterChange
from tests.conftest import b64, login

TOKEN = "metrics-test-token-0123456789"
LOGIN_ROUTE = "api/auth/login"
CLUSTER_ROUTE = "api/clients/<name:client>/clusters/<name:cluster>"

Samples = dict[tuple[str, frozenset], float]


@pytest.fixture(autouse=True)
def _metrics_on(settings):
    settings.METRICS_TOKEN = TOKEN


def scrape(client) -> Samples:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def answered(before: Samples, after: Samples, route: str, method: str, status: int) -> float:
    """How many requests ``route`` answered with ``status`` in between."""
    return delta(before, after, "portal_http_requests_total", route=route, method=method, status=str(status))


# --- Access ----------------------------------------------------------------------------------------


def test_metrics_do_not_exist_without_a_token(client, settings, db):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/plain")
    assert response.content == b"Metrics are off: METRICS_TOKEN is not set.\n"  # not Django's 404 page


@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
def test_metrics_refuse_a_missing_or_wrong_token(client, db, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
    assert b"portal_" not in response.content


def test_metrics_are_served_over_plain_http_to_the_scraper(client, settings, db):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/api/clients").status_code == 301
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200


# --- What real requests leave behind -----------------------------------------------------------------


def test_requests_are_counted_by_route_and_status_and_timed(api_client, user, db):
    client = api_client
    before = scrape(client)
    login(client, user)
    login(client, user, "wrong password")
    client.get("/api/no/such/thing")
    after = scrape(client)

    assert answered(before, after, LOGIN_ROUTE, "POST", 200) == 1
    assert answered(before, after, LOGIN_ROUTE, "POST", 401) == 1
    timed = {"route": LOGIN_ROUTE, "method": "POST"}
    assert delta(before, after, "portal_http_request_duration_seconds_count", **timed) == 2
    assert delta(before, after, "portal_http_request_duration_seconds_sum", **timed) > 0
    # An unknown path counts under the pattern that answered it, never under the path itself.
    assert not [key for key in after if any("no/such" in value for _, value in key[1])]
    routes = {dict(labels).get("route") for name, labels in after if name == "portal_http_requests_total"}
    assert "^(?:api|\\.well-known)(?:/|$)" in routes
    assert after[("portal_http_requests_in_progress", frozenset())] == 1  # the scrape itself


def test_sign_ins_are_counted_by_method_and_result(api_client, user_factory, settings, db):
    client = api_client
    settings.LOGIN_THROTTLE_ACCOUNT = "3/min"
    user = user_factory(email="alice@example.com")
    user_factory(email="disabled@example.com", is_active=False)
    before = scrape(client)

    assert login(client, user).status_code == 200
    client.cookies.clear()  # no device cookie: alice's tries count in her account's bucket
    assert login(client, user, "wrong").status_code == 401
    assert login(client, "nobody@example.com", "wrong").status_code == 401
    assert login(client, "disabled@example.com").status_code == 403
    assert login(client, user, "wrong").status_code == 401  # alice's third try of three a minute
    throttled = client.post("/api/auth/login", {"email": user.email, "password": b64("wrong")}, format="json")
    after = scrape(client)

    assert throttled.status_code == 429
    logins = "portal_logins_total"
    assert delta(before, after, logins, method="password", result="success") == 1
    assert delta(before, after, logins, method="password", result="invalid_credentials") == 3
    assert delta(before, after, logins, method="password", result="account_disabled") == 1
    assert delta(before, after, logins, method="password", result="throttled") == 1
    assert delta(before, after, "portal_login_throttled_total", throttle="login_account") == 1


def test_refresh_reuse_logout_and_revocations_are_counted(api_client, user, settings, db):
    before = scrape(api_client)
    first = login(api_client, user, tokenDelivery="body").json()["refreshToken"]
    rotated = api_client.post("/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {first}")
    assert rotated.status_code == 200
    settings.JWT_REFRESH_REUSE_GRACE = __import__("datetime").timedelta(0)
    reused = api_client.post("/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {first}")
    assert reused.json()["code"] == "refresh_token_reused"

    second = login(api_client, user, tokenDelivery="body").json()["refreshToken"]
    api_client.cookies.clear()
    assert api_client.post("/api/auth/logout", HTTP_AUTHORIZATION=f"Bearer {second}").status_code == 204
    after = scrape(api_client)

    assert delta(before, after, "portal_refresh_reuse_detected_total") == 1
    assert delta(before, after, "portal_sessions_revoked_total", reason="refresh_reuse") == 1
    assert delta(before, after, "portal_sessions_revoked_total", reason="logout") == 1
    assert answered(before, after, "api/auth/refresh", "POST", 403) == 1


@pytest.mark.django_db(transaction=True)  # deliveries run once the change is committed
def test_a_cluster_change_counts_its_commit_and_push(git_server, cluster1, as_user1, client):
    before = scrape(client)
    response = as_user1.patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")
    after = scrape(client)

    assert response.status_code == 200
    assert answered(before, after, CLUSTER_ROUTE, "PATCH", 200) == 1
    assert delta(before, after, "portal_gitops_commits_total") == 1
    assert delta(before, after, "portal_gitops_pushes_total", result="pushed") == 1
    assert after[("portal_gitops_outbox_pending_changes", frozenset())] == 0
    assert after[("portal_gitops_outbox_oldest_age_seconds", frozenset())] == 0
    assert after[("portal_gitops_last_push_timestamp_seconds", frozenset())] > 0


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_remote_counts_a_failed_push_and_the_outbox_grows(
    cluster1, as_user1, client, settings, tmp_path
):
    settings.GITOPS_REMOTE_URL = str(tmp_path / "no-such-remote.git")
    before = scrape(client)
    response = as_user1.patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")
    after = scrape(client)

    assert response.status_code == 202
    assert delta(before, after, "portal_gitops_commits_total") >= 1  # the change (and the waiting create)
    assert delta(before, after, "portal_gitops_pushes_total", result="failed") == 1
    pending = ClusterChange.objects.filter(pushed=False).exclude(action="storage_request").count()
    assert after[("portal_gitops_outbox_pending_changes", frozenset())] == pending >= 1
    assert after[("portal_gitops_outbox_oldest_age_seconds", frozenset())] >= 0
    assert ("portal_gitops_last_push_timestamp_seconds", frozenset()) not in after


def test_the_deployment_states_gauge_is_there_for_the_argocd_integration(client, db):
    from config.metrics import deployment_states_set

    deployment_states_set(clusters_by_state={"Healthy": 4, "Degraded": 1})
    after = scrape(client)
    assert after[("portal_cluster_deployments", frozenset({("state", "Healthy")}))] == 4
    assert after[("portal_cluster_deployments", frozenset({("state", "Degraded")}))] == 1


@pytest.mark.django_db(transaction=True)
def test_a_scrape_reports_the_clusters_deployment_states_and_whether_argo_cd_answered(
    client, argocd, git_server, client1
):
    import threading

    from django.core.cache import cache

    from clusters.services import cluster_create

    commit = cluster_create(client=client1, slug="main", actor=None).change.commit
    argocd.application_put(
        client="client1", cluster="main", revision=commit, health="Degraded", health_message="0/2 pods ready"
    )
    for thread in threading.enumerate():
        if thread.name.startswith("argocd-refresh"):
            thread.join(timeout=5)
    cache.delete("argocd:application:qdrant.client1.main")

    after = scrape(client)

    assert after[("portal_cluster_deployments", frozenset({("state", "degraded")}))] == 1
    assert after[("portal_cluster_deployments", frozenset({("state", "deployed")}))] == 0
    assert after[("portal_argocd_up", frozenset())] == 1

    argocd.answer_status = 500  # Argo CD breaks: the states stay as they were, and say they are stale
    cache.delete("argocd:application:qdrant.client1.main")
    broken = scrape(client)

    assert broken[("portal_argocd_up", frozenset())] == 0
    assert broken[("portal_cluster_deployments", frozenset({("state", "degraded")}))] == 1
