"""Operators' admin for members: a client's grants, each a user's role there.

Two ways in, one rule: the **Grants** list (every grant, filtered to a client from its page with
``?client=<slug>``), and the grants inline on a user's page (a user has few clients; a client may
have hundreds of members, more rows than a page can hold or Django accepts in one form). Both save
through ``grant_set``/``grant_remove``, so the user's tokens are re-issued with the new scope, and
both apply the API's rank rule (``grant_edit_check``); operators are not bound by the API's
last-admin rule.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.forms.models import BaseInlineFormSet
from django.http import HttpResponseRedirect

from accounts.models import User
from clusters.admin_filters import client_filter
from clusters.models import Client, Grant
from clusters.services import grant_remove, grant_set
from clusters.services.members import role_grant_check
from config.admin_access import PermittedSearchAdmin
from config.admin_errors import ServiceRefusalsAdmin
from config.admin_stale_edits import SeenValuesForm, row_locked_unchanged
from config.errors import AlreadyMember, PortalError


def grant_edit_check(*, actor: User, stored: Grant | None, wanted: Grant | None) -> None:
    """A grant given (``stored`` None), changed, or taken away (``wanted`` None): staff who are not
    operators give, change or take away no role above their own on the client (the API's rule),
    and a new grant for someone already a member is refused (it would overwrite their role)."""
    if stored is not None:
        role_grant_check(actor=actor, client=stored.client, role=stored.role)
    elif (
        wanted is not None
        and Grant.objects.filter(user_id=wanted.user_id, client_id=wanted.client_id).exists()
    ):
        raise AlreadyMember(
            f"{wanted.user.email} is already a member of {wanted.client}: change their row instead."
        )
    if wanted is not None:
        role_grant_check(actor=actor, client=wanted.client, role=wanted.role)


# --- On a user's page ----------------------------------------------------------------------------


def _grant_gone(user: User, which: str) -> str:
    return f"{user}’s grant {which} was removed by someone else while you edited: reload the page to see their grants."


class GrantInlineForm(SeenValuesForm, forms.ModelForm):
    """A saved grant keeps its client (change its role, or remove it and add another): the row
    names it from the rows already read, where a search box would cost a query each."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            if "client" in self.fields:  # a new row: a deactivated client would gain a dead grant
                self.fields["client"].queryset = Client.objects.filter(active=True)
            return
        # Django checks every saved row on each save (its id, its user, its uniqueness: a query
        # each); a row the operator did not change has nothing to check or save.
        self.empty_permitted = True
        if "client" in self.fields:
            chosen, field = self.instance.client, self.fields["client"]
            field.disabled = True
            fixed = forms.Select(choices=[(chosen.pk, str(chosen))])
            if hasattr(field.widget, "widget"):  # the admin's wrapper: keep its view/change links
                field.widget.widget, field.widget.can_add_related = fixed, False
            else:
                field.widget = fixed


class GrantInlineFormSet(BaseInlineFormSet):
    """Saves through grant_set/grant_remove, so the user's tokens are re-issued with the new scope."""

    actor = None

    def save_new(self, form, commit=True):
        setattr(form.instance, self.fk.name, self.instance)
        grant = form.instance
        return grant_set(user=grant.user, client=grant.client, role=grant.role, actor=self.actor)

    def save_existing(self, form, obj, commit=True):
        # In the page's transaction, until it ends; grant_set would make a removed grant anew.
        row_locked_unchanged(form=form, row=obj, gone=_grant_gone(obj.user, f"on {obj.client}"))
        return grant_set(user=obj.user, client=obj.client, role=obj.role, actor=self.actor)

    def delete_existing(self, obj, commit=True):
        grant_remove(user=obj.user, client=obj.client, actor=self.actor)

    def clean(self) -> None:
        super().clean()
        # A row whose grant was removed since the page was shown: Django's own error sits on its
        # hidden id, where nobody sees it.
        gone = [row for row, form in enumerate(self.initial_forms, start=1) if form.instance.pk is None]
        if gone:
            raise forms.ValidationError(
                [f"Nothing was saved: {_grant_gone(self.instance, f'in row {row}')}" for row in gone]
            )
        refusals = []
        for form in self.forms:
            # A row ticked for deletion is not validated by Django: its errors would be ignored,
            # so the refusals are the formset's own, which do stop the save.
            deleting = form.has_changed() and bool(form.cleaned_data.get("DELETE"))
            if not form.has_changed() or (form.errors and not deleting):
                continue
            stored = None
            if form.instance.pk:
                stored = Grant.objects.select_related("client").get(pk=form.instance.pk)
            try:
                grant_edit_check(actor=self.actor, stored=stored, wanted=None if deleting else form.instance)
            except PortalError as error:
                refusals.append(error.detail)
        if refusals:
            raise forms.ValidationError(refusals)


class GrantInline(PermittedSearchAdmin, admin.TabularInline):
    """A user's grants, one row per client."""

    model = Grant
    form = GrantInlineForm
    formset = GrantInlineFormSet
    extra = 0
    fields = ("client", "role")
    autocomplete_fields = ("client",)

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("user", "client")  # not a query per row

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)  # a new class on every call
        formset.actor = request.user
        return formset


# --- The Grants list -----------------------------------------------------------------------------


class GrantForm(SeenValuesForm, forms.ModelForm):
    actor = None  # set per request (GrantAdmin.get_form)

    class Meta:
        model = Grant
        fields = ("user", "client", "role")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if "user" in self.fields:  # adding: a deactivated account or client would gain a dead grant
            self.fields["user"].queryset = User.objects.filter(is_active=True)
            self.fields["client"].queryset = Client.objects.filter(active=True)

    def clean(self):
        cleaned = super().clean()
        stored = (
            Grant.objects.select_related("user", "client").get(pk=self.instance.pk)
            if self.instance.pk
            else None
        )
        user, client = (
            (stored.user, stored.client) if stored else (cleaned.get("user"), cleaned.get("client"))
        )
        if user is not None and client is not None and cleaned.get("role"):
            wanted = Grant(user=user, client=client, role=cleaned["role"])
            try:
                grant_edit_check(actor=self.actor, stored=stored, wanted=wanted)
            except PortalError as error:
                raise forms.ValidationError(error.detail) from error
        return cleaned

    def validate_unique(self) -> None:
        pass  # grant_edit_check said it: "already a member", not Django's "Grant with this … exists"


@admin.register(Grant)
class GrantAdmin(PermittedSearchAdmin, ServiceRefusalsAdmin):
    """Every client's members: a client's page links to its own (``?client=<slug>``)."""

    form = GrantForm
    list_display = ("user", "client", "role")
    list_filter = ("role", client_filter("client"))
    list_select_related = ("user", "client")
    search_fields = ("user__email", "user__name", "client__slug", "client__name")
    autocomplete_fields = ("user", "client")
    ordering = ("client__slug", "user__email")

    def get_readonly_fields(self, request, obj=None):
        return ("user", "client") if obj is not None else ()  # another person or client: another grant

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        form.actor = request.user
        return form

    def save_model(self, request, obj, form, change) -> None:
        if change:
            row_locked_unchanged(form=form, row=obj)  # in the page's transaction, until it ends
        saved = grant_set(user=obj.user, client=obj.client, role=obj.role, actor=request.user)
        self.saved_adopt(obj, saved)

    def delete_model(self, request, obj) -> None:
        grant_edit_check(actor=request.user, stored=obj, wanted=None)
        grant_remove(user=obj.user, client=obj.client, actor=request.user)

    @transaction.atomic  # "Delete selected": all of them, or none when one is refused
    def delete_queryset(self, request, queryset) -> None:
        for grant in queryset.select_related("user", "client"):
            self.delete_model(request, grant)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            return super().delete_view(request, object_id, extra_context)
        except PortalError as error:  # the rank rule (a superuser who is no operator): nothing removed
            self.message_user(request, error.detail, messages.ERROR)
            return HttpResponseRedirect(request.path)

    def response_action(self, request, queryset):
        try:
            return super().response_action(request, queryset)
        except PortalError as error:  # "Delete selected" refused as a whole (delete_queryset)
            self.message_user(request, error.detail, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
