"""Content-Security-Policy for every response (the app, the admin, the API docs).

The browser app has no inline scripts or styles, so the policy allows only this origin,
plus Google's sign-in origins when Google sign-in is configured (Google's documented set).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse

GOOGLE_SIGN_IN_SCRIPT = "https://accounts.google.com/gsi/client"
GOOGLE_SIGN_IN_ORIGIN = "https://accounts.google.com/gsi/"


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


@cache
def content_security_policy(api_base_url: str, google_enabled: bool) -> str:
    script_src = ["'self'"]
    style_src = ["'self'"]
    connect_src = ["'self'"]
    frame_src = ["'none'"]
    api_origin = _origin(api_base_url)
    if api_origin:
        connect_src.append(api_origin)
    if google_enabled:
        script_src.append(GOOGLE_SIGN_IN_SCRIPT)
        style_src.append(GOOGLE_SIGN_IN_ORIGIN + "style")
        connect_src.append(GOOGLE_SIGN_IN_ORIGIN)
        frame_src = [GOOGLE_SIGN_IN_ORIGIN]
    directives = {
        "default-src": ["'self'"],
        "script-src": script_src,
        "style-src": style_src,
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": connect_src,
        "frame-src": frame_src,
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
    return "; ".join(f"{name} {' '.join(values)}" for name, values in directives.items())


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = content_security_policy(
                settings.API_BASE_URL, bool(settings.GOOGLE_CLIENT_IDS)
            )
        return response
