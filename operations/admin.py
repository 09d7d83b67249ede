"""The system status page in the admin: "Operations → System status", for staff.

Registered as the admin page of an unmanaged model (``operations.models.SystemStatus``), so it
is an ordinary entry of whichever admin site the project runs: in the index and the sidebar,
behind the site's own sign-in rules, with nothing to add, change or delete.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.cache import add_never_cache_headers

from accounts.admin import ReadOnlyAdmin
from operations.models import SystemStatus
from operations.selectors import PROBE_TIMEOUT_SECONDS, SLOW_ROUND_TRIP_MS, system_status


def _staff(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_staff)


@admin.register(SystemStatus)
class SystemStatusAdmin(ReadOnlyAdmin):
    def has_module_permission(self, request: HttpRequest) -> bool:
        return _staff(request)

    def has_view_permission(self, request: HttpRequest, obj=None) -> bool:
        return _staff(request)

    def get_urls(self):
        # The model's "changelist" is the page; the name is the one the admin index links to.
        return [
            path("", self.admin_site.admin_view(self.status_view), name="operations_systemstatus_changelist")
        ]

    def status_view(self, request: HttpRequest) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "title": "System status",
            "opts": self.model._meta,
            "status": system_status(),
            "probe_timeout_seconds": PROBE_TIMEOUT_SECONDS,
            "slow_round_trip_ms": SLOW_ROUND_TRIP_MS,
        }
        response = TemplateResponse(request, "admin/operations/system_status.html", context)
        add_never_cache_headers(response)
        return response
