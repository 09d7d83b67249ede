"""The admin site: signed in to through the portal, never with a password form of its own.

Django's admin login form takes a password and nothing else, which would let a stolen staff
password skip the second factor. So its login page sends the browser to the portal's sign-in
(password or Google, then the second factor), whose ``POST /api/auth/admin-session`` opens the
admin session for staff. A staff user whom the policy requires a second factor, and who has
none yet, is not let in until they set one up.
"""

from __future__ import annotations

from urllib.parse import quote

from django.contrib.admin import AdminSite
from django.http import HttpRequest, HttpResponseRedirect
from django.urls import reverse

from accounts.selectors import user_mfa_required, user_second_factors


class PortalAdminSite(AdminSite):
    site_header = "Qdrant Portal operations"
    site_title = "Qdrant Portal admin"

    def has_permission(self, request: HttpRequest) -> bool:
        if not super().has_permission(request):
            return False
        user = request.user
        return not (user_mfa_required(user=user) and not user_second_factors(user=user))

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponseRedirect:
        if self.has_permission(request):
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        target = request.GET.get("next")
        next_path = target if target and target.startswith("/admin/") else reverse("admin:index")
        return HttpResponseRedirect(f"/#/login?next={quote(next_path)}")
