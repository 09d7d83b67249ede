"""The admin's pages answer a service's refusal with a message, never a 500."""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from config.errors import PortalError


class ServiceRefusalsAdmin(admin.ModelAdmin):
    """A model admin whose saves go through services.

    The forms ask the services' checks before saving; what changes between that check and the
    save (another request won a race, a dependency failed) is refused by the service inside the
    page's transaction. The transaction rolls back, and the page says why instead of a 500.
    """

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context=None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except PortalError as error:
            reason = str(error.detail)
        except ValidationError as error:
            reason = " ".join(error.messages)
        self.message_user(request, f"Nothing was saved: {reason}", messages.ERROR)
        return HttpResponseRedirect(request.get_full_path())
