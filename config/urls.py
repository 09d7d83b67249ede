from django.contrib import admin
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from config import exceptions, health
from config.api import DocsView, SchemaView

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Before the rest: its first route, /api/auth/validate, is asked on every request a gateway
    # proxies, and each pattern tried before it is a regular expression matched in vain.
    path("", include("accounts.urls")),
    # The bare /admin as the admin answers its own addresses without a final slash (a redirect
    # for every method), not as CommonMiddleware does: with DEBUG on, a 500 to a POST.
    path("admin", RedirectView.as_view(url="/admin/", permanent=True, query_string=True)),
    path("admin/", admin.site.urls),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", DocsView.as_view(url_name="schema"), name="docs"),
    path("api/", include("clusters.urls")),
    # GET /api/system/status (staff) and GET /metrics (Prometheus, with METRICS_TOKEN).
    path("", include("operations.urls")),
    # Anything else under /api/ (and the bare prefix: no slash-appending redirect) answers the
    # contract's JSON 404, also with DEBUG on.
    re_path(r"^(?:api|\.well-known)(?:/|$)", exceptions.json_not_found),
    path("", include("frontend.urls")),
]

handler400 = "config.exceptions.handler400"
handler403 = "config.exceptions.handler403"
handler404 = "config.exceptions.handler404"
handler500 = "config.exceptions.handler500"
