"""The admin's pages answer a service's refusal on the form, and input no page offers as Django
answers an unknown filter: never with a 500."""

from __future__ import annotations

import logging

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.options import IncorrectLookupParameters, csrf_protect_m
from django.contrib.admin.widgets import AutocompleteSelect
from django.core.exceptions import ValidationError
from django.db import DataError, transaction
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

from config.errors import PortalError

logger = logging.getLogger(__name__)

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


# What a lookup or a selection no page offers raises once the database is asked: a year past
# 9999, an id that is no id or past the column's range, a NUL PostgreSQL cannot compare.
_NOT_A_VALUE = (ValueError, OverflowError, ValidationError, DataError)
# The changelist's own parameters: with none but these, nothing hand-made can be at fault.
_PAGE_PARAMETERS = frozenset({"o", "p", "q", "e", "all", "_popup", "_to_field", "_changelist_filters"})


class _SelectionField(forms.ModelMultipleChoiceField):
    """A many-to-many selection where an id past the column's range is an unknown choice, as any
    other id no page offered (SQLite cannot even compare it: OverflowError)."""

    def _check_values(self, value):
        try:
            with transaction.atomic():
                return super()._check_values(value)
        except (OverflowError, DataError):
            shown = ", ".join(str(item) for item in value)[:100]
            raise ValidationError(
                self.error_messages["invalid_choice"], code="invalid_choice", params={"value": shown}
            ) from None


class _AutocompleteSelect(AutocompleteSelect):
    """A search box whose page, shown again with a value no page offered (``client=x``), shows
    it unselected next to the field's "select a valid choice", instead of a 500 from asking the
    database for rows of that id."""

    def optgroups(self, name, value, attr=None):
        target = self.field.remote_field.model._meta.get_field(self.field.remote_field.field_name)
        return super().optgroups(name, [item for item in value if _is_value_of(target, item)], attr)


def _is_value_of(field, value: object) -> bool:
    try:
        field.run_validators(field.to_python(value))  # a number, within the column's range
    except ValidationError:
        return False
    return True


class InputGuardAdmin(admin.ModelAdmin):
    """Every portal model admin: hand-made filter values, selections and action selections are refused."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if "widget" not in kwargs and db_field.name in self.get_autocomplete_fields(request):
            kwargs["widget"] = _AutocompleteSelect(db_field, self.admin_site, using=kwargs.get("using"))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        kwargs.setdefault("form_class", _SelectionField)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_changelist_instance(self, request: HttpRequest):
        try:
            with transaction.atomic():  # on PostgreSQL a failed query aborts the transaction
                return super().get_changelist_instance(request)
        except _NOT_A_VALUE as error:
            if not set(request.GET) - _PAGE_PARAMETERS:
                raise  # no filter was given: a bug, not input
            # Logged with its traceback: a filter's own bug would otherwise look like bad input.
            logger.warning("Admin filter refused on %s: %s", request.path, error, exc_info=True)
            raise IncorrectLookupParameters(error) from error  # as Django answers an unknown filter: ?e=1

    def response_action(self, request: HttpRequest, queryset):
        selected = request.POST.getlist(helpers.ACTION_CHECKBOX_NAME)
        try:
            with transaction.atomic():  # the ids alone, before any action runs on them
                list(queryset.model._default_manager.filter(pk__in=selected).values_list("pk")[:1])
        except _NOT_A_VALUE:
            self.message_user(request, "The selection is not one this page offered: nothing was done.",
                              messages.ERROR)  # fmt: skip
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset)


class ServiceRefusalsAdmin(InputGuardAdmin):
    """A model admin whose saves go through services.

    The forms ask the services' checks before saving; what changes between that check and the
    save (another request won a race, a dependency failed) is refused by the service inside the
    page's transaction. The transaction rolls back and the page is shown again with the
    operator's input and the reason, as for any form error.
    """

    # Whether a saving page runs in one transaction, as Django's admin does. Not where the
    # service commits its own and then writes git (clusters): only once its transaction has
    # committed is a conflict in git known, and the service undoes the change and refuses it
    # then, in time for the page to say so instead of "changed successfully".
    page_transaction = True

    def _attempt(self, request: HttpRequest, object_id: str | None, form_url: str, extra_context):
        if self.page_transaction or request.method != "POST":
            return super().changeform_view(request, object_id, form_url, extra_context)
        return self._changeform_view(request, object_id, form_url, extra_context)

    @csrf_protect_m
    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context=None
    ) -> HttpResponse:
        try:
            return self._attempt(request, object_id, form_url, extra_context)
        except (PortalError, ValidationError) as error:
            if request.method != "POST" or hasattr(request, _REFUSAL):
                raise
            setattr(request, _REFUSAL, _reason(error))
        return self._attempt(request, object_id, form_url, extra_context)

    @staticmethod
    def saved_adopt(obj: Model, saved: Model) -> None:
        """Make the admin's unsaved form instance the row a service saved (for redirects, logs, inlines)."""
        for field in obj._meta.concrete_fields:
            setattr(obj, field.attname, getattr(saved, field.attname))
        obj._state.adding, obj._state.db = False, saved._state.db

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        reason = getattr(request, _REFUSAL, None)
        return form_class if reason is None else _refused(form_class, reason)
