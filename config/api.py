"""The base of every API view: DRF's ``APIView`` without ``OPTIONS``.

DRF answers OPTIONS with metadata describing the view, to callers the view itself may refuse;
the portal turns that off (``DEFAULT_METADATA_CLASS``) and CORS preflight is answered by
corsheaders before any view. Leaving ``options`` out of ``http_method_names`` also keeps it out
of the ``Allow`` header every response carries, so a 405 never offers the method it refused.
"""

from __future__ import annotations

from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import views
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response


class APIView(views.APIView):
    http_method_names = [name for name in views.APIView.http_method_names if name != "options"]


class _DocumentView:
    """The OpenAPI document (YAML) and its page (HTML): read-only, and their errors (405, 406) in
    the API's JSON shape like every other answer under /api/, not in the document's format."""

    http_method_names = ["get", "head"]

    def handle_exception(self, exc: Exception) -> Response:
        self.request.accepted_renderer = JSONRenderer()
        self.request.accepted_media_type = JSONRenderer.media_type
        return super().handle_exception(exc)


class SchemaView(_DocumentView, SpectacularAPIView):
    pass


class DocsView(_DocumentView, SpectacularSwaggerSplitView):
    pass
