"""The base of every API view: DRF's ``APIView`` without ``OPTIONS``.

DRF answers OPTIONS with metadata describing the view, to callers the view itself may refuse;
the portal turns that off (``DEFAULT_METADATA_CLASS``) and CORS preflight is answered by
corsheaders before any view. Leaving ``options`` out of ``http_method_names`` also keeps it out
of the ``Allow`` header every response carries, so a 405 never offers the method it refused.
"""

from __future__ import annotations

from rest_framework import views


class APIView(views.APIView):
    http_method_names = [name for name in views.APIView.http_method_names if name != "options"]
