from django.conf import settings
from django.shortcuts import render
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET


@require_GET
@ensure_csrf_cookie
def app_shell(request):
    """The browser app's one HTML page; it sets the CSRF cookie the app sends back on writes."""
    portal_config = {
        "apiBaseUrl": settings.API_BASE_URL.rstrip("/"),
        "googleClientId": settings.GOOGLE_CLIENT_IDS[0] if settings.GOOGLE_CLIENT_IDS else None,
        # The Tokens page offers no lifetime the server would refuse.
        "tokenMaxSeconds": int(settings.PAT_MAX_TTL.total_seconds()),
        # Whether cluster pages show a deployment's state (read from Argo CD), which the key
        # rotation's messages point at.
        "deploymentsFollowed": bool(settings.ARGOCD_URL),
    }
    response = render(request, "frontend/index.html", {"portal_config": portal_config})
    response["Cache-Control"] = "no-cache"
    return response
