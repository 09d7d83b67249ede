"""Content negotiation: a ``?format=`` the API does not render is 406, as an ``Accept`` is.

DRF's default answers an unknown ``?format=`` with 404, before authentication: ``not_found``
for a path that exists, and the same for another client's paths and for anonymous callers.
``?format=json`` keeps working (the OpenAPI document is fetched that way).
"""

from __future__ import annotations

from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation


class FormatNotAcceptableNegotiation(DefaultContentNegotiation):
    def filter_renderers(self, renderers, format):  # noqa: A002 - DRF's signature
        matching = [renderer for renderer in renderers if renderer.format == format]
        if not matching:
            raise NotAcceptable(available_renderers=renderers)
        return matching
