"""One permission class for the clusters API: the view declares what it requires."""

from __future__ import annotations

from collections.abc import Mapping

from django.core.exceptions import ImproperlyConfigured
from rest_framework.permissions import BasePermission

from clusters.selectors import client_access


class HasClientPermission(BasePermission):
    """The user holds the view's ``required_permission`` on the client named in the URL.

    ``required_permission`` is a permission name, or a mapping from HTTP method to one
    (an implemented method missing from the mapping is refused). Views without a ``client`` URL argument
    only need an authenticated, active user; their selectors filter by grants. Object
    access is checked again by the selector that fetches the object.
    """

    def has_permission(self, request, view) -> bool:
        required = getattr(view, "required_permission", None)
        if required is None:
            raise ImproperlyConfigured(f"{type(view).__name__} must declare required_permission.")
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        if isinstance(required, Mapping):
            method = "GET" if request.method == "HEAD" else request.method
            required = required.get(method)
            if required is None:
                # A method the view does not implement gets its 405; any other is refused.
                return not hasattr(view, method.lower())
        client_slug = view.kwargs.get("client")
        if client_slug is not None:
            client_access(user=user, client_slug=client_slug, permission=required)
        return True
