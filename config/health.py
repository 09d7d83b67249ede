"""Liveness and readiness probes (Kubernetes, load balancers)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable

from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt

from config import errors
from config.exceptions import error_json
from config.outages import cache_outage, database_outage

PROBE_METHODS = ("GET", "HEAD")


def probe(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """A machine-read endpoint: never cached, answers GET and HEAD (load balancers and uptime
    monitors send either), and refuses other methods with a 405 in the API's error shape (not
    a CSRF page first: nothing here changes state)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method not in PROBE_METHODS:
            refused = error_json(errors.MethodNotAllowed())
            refused["Allow"] = ", ".join(PROBE_METHODS)
            return refused
        return view(request, *args, **kwargs)

    return csrf_exempt(never_cache(wrapper))


@probe
def healthz(request) -> JsonResponse:
    """The process is up and serving; checks nothing else, so a database outage never kills pods."""
    return JsonResponse({"status": "ok"})


def _database_ready(request: HttpRequest) -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        database_outage.report(exc, request)
        return f"database unreachable: {type(exc).__name__}"
    return None


def _cache_ready(request: HttpRequest) -> str | None:
    probe_key = f"readyz:{uuid.uuid4().hex}"
    try:
        cache.set(probe_key, "1", timeout=5)
        value = cache.get(probe_key)
        cache.delete(probe_key)
    except Exception as exc:
        cache_outage.report(exc, request)
        return f"cache unreachable: {type(exc).__name__}"
    if value != "1":
        return "cache did not return what was stored"
    return None


@probe
def readyz(request) -> JsonResponse:
    """Ready to take traffic: the database and the cache answer.

    A failure is logged by the dependency's outage reporter, once per burst, not once per probe.
    """
    problems = {
        name: reason
        for name, reason in (("database", _database_ready(request)), ("cache", _cache_ready(request)))
        if reason
    }
    if problems:
        return JsonResponse(
            {
                "status": "unavailable",
                "code": "not_ready",
                "detail": "; ".join(problems.values()),
                "checks": {name: problems.get(name, "ok") for name in ("database", "cache")},
            },
            status=503,
        )
    return JsonResponse({"status": "ok", "checks": {"database": "ok", "cache": "ok"}})
