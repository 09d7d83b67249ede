"""The operators' endpoints: ``GET /api/system/status`` (staff) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from drf_spectacular.utils import extend_schema
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response

from config import errors
from config.api import APIView
from config.health import probe
from config.openapi import AUTHENTICATION_ERRORS, error_responses
from operations.metrics import metrics_exposition
from operations.selectors import system_status
from operations.serializers import SystemStatusSerializer


class SystemStatusView(APIView):
    permission_classes = [IsAdminUser]  # staff: the users who may use the admin

    @extend_schema(
        operation_id="system_status",
        responses={
            200: SystemStatusSerializer,
            **error_responses(
                *AUTHENTICATION_ERRORS,
                errors.PermissionDenied,
                errors.DatabaseUnavailable,
                notes={
                    "permission_denied": "The user is not staff.",
                    "database_unavailable": "The database is down and the caller's session needed it "
                    "(its user's cached claims had expired); the admin's status page says the same.",
                },
            ),
        },
        description="For staff: each dependency as a probe found it just now (database, cache, the GitOps "
        "remote and outbox, Argo CD, the token signing keys). Answers 200 whatever the probes found: "
        "a dependency that failed says `ok: false` and why, within a few seconds.",
    )
    def get(self, request: Request) -> Response:
        response = Response(SystemStatusSerializer(system_status()).data)
        response["Cache-Control"] = "no-store"
        return response


def _bearer_matches(request: HttpRequest, token: str) -> bool:
    scheme, _, presented = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    # Constant time: a scraper guessing the token learns nothing from how long a refusal takes.
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


@probe
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus's text format, for ``Authorization: Bearer <METRICS_TOKEN>``; 404 while unset."""
    token = settings.METRICS_TOKEN
    if not token:  # as text, like the 401: a scraper's log shows why (not Django's 404 page)
        return HttpResponse(
            "Metrics are off: METRICS_TOKEN is not set.\n", status=404, content_type="text/plain"
        )
    if not _bearer_matches(request, token):
        response = HttpResponse("A valid metrics token is required.\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    # The classic text format (0.0.4): every Prometheus reads it, and the names need no escaping.
    return HttpResponse(metrics_exposition(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
