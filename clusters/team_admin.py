"""Operators' admin for teams: invitations, each client's sign-in policy (on the client's page),
audit trail and removed members. Members are the client's grants (``clusters.grant_admin``, with
the ``admin`` role). Every write goes through the services, so emails, audit and token re-issue
apply as for the API; operators are not bound by the API's last-admin rule."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.forms.models import BaseInlineFormSet

from accounts.admin import ReadOnlyAdmin, UserAdmin
from accounts.admin_site import admin_portal_session_id
from accounts.models import User
from clusters.admin_filters import client_filter
from clusters.grant_admin import GrantInline
from clusters.models import Client, ClientAuditEvent, Grant, Invitation, RemovedMember, SignInPolicy
from clusters.services import (
    PolicyInput,
    account_deactivate,
    account_delete,
    account_reactivated_record,
    invitation_check,
    invitation_create,
    invitation_revoke,
    inviter_privileges_lowered,
    sign_in_policy_set,
)
from clusters.services.policy import JIT_ROLES, policy_problems
from config.admin_access import PermittedSearchAdmin
from config.admin_errors import ServiceRefusalsAdmin
from config.admin_stale_edits import SeenValuesForm, row_locked_unchanged
from config.errors import AlreadyMember, PortalError

# The API's field names, as the service reports problems, and the admin form's.
_POLICY_FIELDS = {
    "allowedMethods": "allowed_methods",
    "googleDomain": "google_domain",
    "jitProvisioning": "jit_provisioning",
    "jitRole": "jit_role",
    "maxSessionLength": "max_session_length",
}


def _policy_input(data: dict) -> PolicyInput:
    return PolicyInput(
        allowed_methods=tuple(data.get("allowed_methods") or ()),
        google_domain=(data.get("google_domain") or "").strip().lower(),
        mfa_required=bool(data.get("mfa_required")),
        max_session_length=data.get("max_session_length"),
        jit_provisioning=bool(data.get("jit_provisioning")),
        jit_role=data.get("jit_role") or "viewer",
    )


class SignInPolicyForm(SeenValuesForm, forms.ModelForm):
    allowed_methods = forms.MultipleChoiceField(
        choices=SignInPolicy.Method.choices,
        widget=forms.CheckboxSelectMultiple,
        initial=SignInPolicy.Method.values,
    )
    # Only the roles the service provisions (an admin is always chosen by a person).
    jit_role = forms.ChoiceField(
        label="Role of provisioned members",
        choices=[choice for choice in Grant.Role.choices if choice[0] in JIT_ROLES],
        initial=Grant.Role.VIEWER,
    )

    class Meta:
        model = SignInPolicy
        fields = SignInPolicy.SETTINGS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A stored policy the operator left as shown is neither judged (it is judged when it
        # changes, not on every save of its client) nor saved (Django saves an inline row only
        # when it changed): another operator's change to it since stays.
        self.empty_permitted = self.empty_permitted or self.instance.pk is not None

    def clean(self):
        cleaned = super().clean()
        for name, problems in policy_problems(_policy_input(cleaned)).items():
            self.add_error(_POLICY_FIELDS[name], problems)
        return cleaned


class SignInPolicyFormSet(BaseInlineFormSet):
    """Saves through sign_in_policy_set: audited, every member's scope follows at once, and a stricter
    policy takes the client out of personal access tokens."""

    actor = None

    def save_new(self, form, commit=True):
        return self._save(form)

    def save_existing(self, form, obj, commit=True):
        row_locked_unchanged(form=form, row=obj)  # in the page's transaction, until it ends
        return self._save(form)

    def _save(self, form) -> SignInPolicy:
        wanted = _policy_input(form.cleaned_data)
        return sign_in_policy_set(client=self.instance, wanted=wanted, actor=self.actor, facts=None)


class SignInPolicyInline(admin.StackedInline):
    model = SignInPolicy
    form = SignInPolicyForm
    formset = SignInPolicyFormSet
    max_num = 1
    can_delete = False
    verbose_name_plural = "sign-in policy (none: any way of signing in)"

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.actor = request.user
        return formset


class InvitationAddForm(forms.ModelForm):
    actor = None  # set per request (InvitationAdmin.get_form)

    class Meta:
        model = Invitation
        fields = ("client", "email", "role")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # A deactivated client's invitation links never open (invitation_open): none is sent.
        self.fields["client"].queryset = Client.objects.filter(active=True)

    def clean(self):
        cleaned = super().clean()
        client, email, role = cleaned.get("client"), cleaned.get("email"), cleaned.get("role")
        if client and email and role:
            try:
                cleaned["email"] = invitation_check(client=client, email=email, role=role, actor=self.actor)
            except AlreadyMember as error:
                self.add_error("email", error.detail)
            except (ValidationError, PortalError) as error:
                raise forms.ValidationError(getattr(error, "detail", None) or error.messages) from error
        return cleaned


@admin.register(Invitation)
class InvitationAdmin(PermittedSearchAdmin, ServiceRefusalsAdmin):
    """Invitations: an operator invites (the email goes out as from the API) or revokes."""

    list_display = ("email", "client", "role", "state", "invited_by_email", "created_at", "expires_at")
    list_filter = ("role", client_filter("client"))
    list_select_related = ("client",)
    search_fields = ("email", "client__slug", "invited_by_email")
    autocomplete_fields = ("client",)  # a search, not a list of every client
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        if obj is None:
            return ("client", "email", "role")
        return ("client", "email", "role", "state", "invited_by_email", "created_at", "expires_at", "accepted_at",
                "revoked_at")  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj is not None else ()

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:
            return super().get_form(request, obj, change=change, **kwargs)
        form = super().get_form(request, obj, change=change, form=InvitationAddForm, **kwargs)
        form.actor = request.user
        return form

    def has_change_permission(self, request, obj=None) -> bool:
        # The list's revoke action needs the change permission; an invitation itself is never
        # edited (saving its page would send a new one).
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # revoke instead: the trail stays

    def save_model(self, request, obj, form, change) -> None:
        saved = invitation_create(
            client=obj.client,
            email=obj.email,
            role=obj.role,
            actor=request.user,
            session_id=admin_portal_session_id(request),
        )
        obj.pk, obj._state.adding = saved.pk, False

    @admin.action(description="Revoke selected invitations", permissions=["change"])
    def revoke(self, request, queryset) -> None:
        revoked = 0
        for invitation in queryset.select_related("client"):
            try:
                invitation_revoke(client=invitation.client, invitation_id=invitation.pk, actor=request.user)
                revoked += 1
            except PortalError as error:
                self.message_user(request, f"Invitation {invitation}: {error.detail}", messages.WARNING)
        if revoked:
            self.message_user(
                request, f"Revoked {revoked} invitation(s): their links no longer work.", messages.SUCCESS
            )


@admin.register(ClientAuditEvent)
class ClientAuditEventAdmin(ReadOnlyAdmin):
    """What happened to each client's team and sign-in policy, and who read its clusters' keys: read-only."""

    list_display = ("at", "client", "type", "actor_email", "target_email", "cluster", "ip", "detail")
    list_filter = ("type", client_filter("client"), ("at", admin.DateFieldListFilter))
    list_select_related = ("client",)
    search_fields = ("actor_email", "target_email", "client__slug", "cluster", "ip", "detail")


@admin.register(RemovedMember)
class RemovedMemberAdmin(ReadOnlyAdmin):
    """Who was taken off each client's team: a Google sign-in does not provision them again, however
    old the removal (an accepted invitation, or a grant added here, ends it). Read-only."""

    list_display = ("email", "client", "removed_at", "removed_by_email")
    list_filter = (client_filter("client"), ("removed_at", admin.DateFieldListFilter))
    list_select_related = ("client",)
    search_fields = ("email", "client__slug", "removed_by_email")


class UserWithGrantsAdmin(UserAdmin):
    """The accounts app's user admin, plus the user's grants: accounts knows nothing of clients."""

    inlines = [*UserAdmin.inlines, GrantInline]
    account_delete = staticmethod(account_delete)  # its grants go as removals, on the trails
    account_deactivate = staticmethod(account_deactivate)  # and these on the trails too
    account_reactivated = staticmethod(account_reactivated_record)
    # Their invitations to a role they can no longer give end.
    account_privileges_lowered = staticmethod(inviter_privileges_lowered)


admin.site.unregister(User)
admin.site.register(User, UserWithGrantsAdmin)
