"""The peer's routes: dj-rest-auth under /auth/ and a bare JSON view (a template, see settings.py)."""

from django.contrib import admin
from django.http import JsonResponse
from django.urls import include, path


def healthz(request):
    return JsonResponse({"status": "ok"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz),
    # login/, user/, token/refresh/ (USE_JWT), logout/, password/...
    path("auth/", include("dj_rest_auth.urls")),
]
