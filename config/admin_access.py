"""What the admin offers an operator who is not a superuser leads where their permissions let
them go: a search box only where they may search, a link only to a list they may view, and a page
they may not open says so in the admin's own frame, with a way back."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse


def admin_may_view(*, request: HttpRequest, model: type[Model]) -> bool:
    """Whether this operator may open ``model``'s list in the admin."""
    model_admin = admin.site.get_model_admin(model) if admin.site.is_registered(model) else None
    return model_admin is not None and model_admin.has_view_permission(request)


class PermittedSearchAdmin:
    """``autocomplete_fields`` for operators who may view the related model: Django's search asks
    that model's admin, which refuses the others, and a search box that can never answer would
    leave the form impossible to finish. They pick from the form's list instead."""

    def get_autocomplete_fields(self, request: HttpRequest) -> tuple[str, ...]:
        fields = super().get_autocomplete_fields(request)  # type: ignore[misc]
        return tuple(
            name
            for name in fields
            if admin_may_view(request=request, model=self.model._meta.get_field(name).related_model)  # type: ignore[attr-defined]
        )


class LiveChoicesSearchAdmin:
    """The admin's search for this model, as a form's search box asks it (the autocomplete), finds
    only rows whose ``live_field`` is true: every such form gives the row something (a role, a
    cluster, an invitation), and a deactivated one would gain what nobody can use."""

    live_field = "is_active"

    def get_search_results(self, request: HttpRequest, queryset, search_term: str):
        found, may_have_duplicates = super().get_search_results(request, queryset, search_term)  # type: ignore[misc]
        if request.path == reverse("admin:autocomplete"):
            found = found.filter(**{self.live_field: True})
        return found, may_have_duplicates


def admin_permission_denied(request: HttpRequest) -> HttpResponse:
    """The admin's 403: what happened and the way back, under the admin's header."""
    context = {**admin.site.each_context(request), "title": "Not allowed"}
    # Rendered here: Django renders a view's TemplateResponse, not an error handler's.
    return TemplateResponse(request, "admin/403.html", context, status=403).render()
