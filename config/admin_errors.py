"""The admin's pages answer a service's refusal on the form, never with a 500."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse

from config.errors import PortalError

_REFUSAL = "_service_refusal"  # on the request: why the first attempt at saving was refused


def _reason(error: PortalError | ValidationError) -> str:
    return str(error.detail) if isinstance(error, PortalError) else " ".join(error.messages)


def _refused(form_class: type[forms.BaseForm], reason: str) -> type[forms.BaseForm]:
    """``form_class``, invalid with ``reason``: the page shows the operator's input and why."""

    class RefusedForm(form_class):  # type: ignore[valid-type, misc]
        def clean(self):
            super().clean()
            raise forms.ValidationError(f"Nothing was saved: {reason}")

    RefusedForm.__name__ = form_class.__name__
    return RefusedForm


class ServiceRefusalsAdmin(admin.ModelAdmin):
    """A model admin whose saves go through services.

    The forms ask the services' checks before saving; what changes between that check and the
    save (another request won a race, a dependency failed) is refused by the service inside the
    page's transaction. The transaction rolls back and the page is shown again with the
    operator's input and the reason, as for any form error.
    """

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context=None
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (PortalError, ValidationError) as error:
            if request.method != "POST" or hasattr(request, _REFUSAL):
                raise
            setattr(request, _REFUSAL, _reason(error))
        return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        reason = getattr(request, _REFUSAL, None)
        return form_class if reason is None else _refused(form_class, reason)
