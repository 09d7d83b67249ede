"""The portal's Prometheus metrics: every definition, and the one-line helpers the apps call.

Defined here, at the base of the apps (``config`` imports no app), so that accounts and
clusters can count what happens to them without importing each other or the app that serves
``/metrics`` (``operations``). Label values are bounded: a route is the URL pattern, never the
path, and every other label comes from a fixed vocabulary (error codes, revocation reasons).

Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` switches prometheus-client to its multiprocess
mode (each worker writes its values to files there; a scrape, served by any worker, adds them
up). It must be set before this module is imported, which the environment guarantees.
Metrics computed from the database at scrape time (the GitOps outbox) are not here: they
belong to the scrape (``operations.metrics``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from django.http import HttpRequest, HttpResponse
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# `_created` series are not exported in multiprocess mode: leave them out everywhere alike.
disable_created_metrics()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "(unmatched)"

http_requests = Counter(
    "portal_http_requests",
    "HTTP requests answered, by route (the URL pattern), method and status.",
    ["route", "method", "status"],
)
http_request_duration = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer an HTTP request, by route and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
http_requests_in_progress = Gauge(
    "portal_http_requests_in_progress",
    "HTTP requests being answered right now (summed over the live workers).",
    multiprocess_mode="livesum",
)
logins = Counter(
    "portal_logins",
    "Sign-in attempts by method (password, google) and result (success or the error code).",
    ["method", "result"],
)
login_throttled = Counter(
    "portal_login_throttled",
    "Sign-in attempts refused by a throttle, by throttle (login_ip, login_account).",
    ["throttle"],
)
refresh_reuse_detected = Counter(
    "portal_refresh_reuse_detected",
    "Retired refresh tokens presented again after the grace period (the session was revoked).",
)
sessions_revoked = Counter(
    "portal_sessions_revoked",
    "Sessions revoked, by reason (logout, user, operator, password_change, deactivated, refresh_reuse, idle).",
    ["reason"],
)
gitops_commits = Counter("portal_gitops_commits", "Commits made to the GitOps repository.")
gitops_pushes = Counter(
    "portal_gitops_pushes",
    "Deliveries to the GitOps remote: pushed (the remote holds every commit) or failed (left local).",
    ["result"],
)
# Set by the Argo CD integration when it learns the clusters' states (mostrecent: whichever
# process asked Argo CD last is right, also after it exited).
cluster_deployments = Gauge(
    "portal_cluster_deployments",
    "Clusters by deployment state, as Argo CD last reported them.",
    ["state"],
    multiprocess_mode="mostrecent",
)


# --- What the apps call: one line at each point -------------------------------------------------


def login_record(*, method: str, result: str) -> None:
    """A sign-in attempt: ``result`` is ``success`` or the error code that refused it."""
    logins.labels(method=method, result=result).inc()


def login_throttled_record(*, throttle: str) -> None:
    login_throttled.labels(throttle=throttle).inc()


def refresh_reuse_record() -> None:
    refresh_reuse_detected.inc()


def sessions_revoked_record(*, reason: str, count: int) -> None:
    if count:
        sessions_revoked.labels(reason=reason).inc(count)


def gitops_delivery_record(*, commits: int, pushed: bool | None) -> None:
    """One delivery: the commits it made and, with a remote (``pushed`` not None), how the push ended."""
    if commits:
        gitops_commits.inc(commits)
    if pushed is not None:
        gitops_pushes.labels(result="pushed" if pushed else "failed").inc()


def deployment_states_set(*, clusters_by_state: Mapping[str, int]) -> None:
    """For the Argo CD integration: how many clusters are in each state now."""
    for state, count in clusters_by_state.items():
        cluster_deployments.labels(state=state).set(count)


# --- Requests ----------------------------------------------------------------------------------


def request_route(request: HttpRequest) -> str:
    """The URL pattern that answered (``api/clients/<name:client>/clusters``): bounded, unlike paths."""
    match = getattr(request, "resolver_match", None)
    return (match.route if match is not None else "") or UNMATCHED_ROUTE


class RequestMetricsMiddleware:
    """Counts every response by route, method and status, and times it.

    Near the top of MIDDLEWARE, so redirects and errors answered by other middleware count too.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        with http_requests_in_progress.track_inprogress():
            response = self.get_response(request)
        route = request_route(request)
        method = request.method if request.method in HTTP_METHODS else "other"
        http_request_duration.labels(route=route, method=method).observe(time.perf_counter() - started)
        http_requests.labels(route=route, method=method, status=str(response.status_code)).inc()
        return response
