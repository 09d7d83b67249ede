import copy
import operator
from contextvars import ContextVar
from functools import reduce

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import (
    AdminPasswordChangeForm,
    AdminUserCreationForm,
    ReadOnlyPasswordHashWidget,
    UserChangeForm,
)
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponseRedirect
from django.utils import timezone

from accounts.access_tokens import access_tokens_revoke
from accounts.admin_site import confirmation_required, recent_sign_in_refusal, recent_sign_in_required
from accounts.audit import account_change_record
from accounts.emails import email_canonical
from accounts.factor_enrolment import second_factors_reset
from accounts.google_sign_in import google_account_unlink
from accounts.models import (
    AuditEvent,
    AuditEventType,
    GoogleAccount,
    PersonalAccessToken,
    Session,
    SessionRevokedReason,
    User,
)
from accounts.passwords import operator_password_set
from accounts.selectors import user_second_factors
from accounts.services import (
    sessions_revoke,
    user_deactivate,
    user_delete,
    users_claims_bump,
)
from config.admin_access import LiveChoicesSearchAdmin
from config.admin_errors import InputGuardAdmin, ServiceRefusalsAdmin
from config.admin_stale_edits import SeenValuesForm, SeenValuesModelForm, row_locked_unchanged
from config.errors import AuthUnavailable

# What makes an account privileged: only superusers change or delete one (UserAdmin).
PRIVILEGE_FLAGS = ("is_superuser", "is_staff", "is_operator")

# The operator on whose behalf the admin's password form saves (Django builds the form without
# the request, so the view that builds it says who is acting).
_acting_operator: ContextVar[User | None] = ContextVar("acting_operator", default=None)


CACHE_BEHIND = (
    "The session store (Redis) could not be reached. The portal's API already refuses these users; "
    "gateways asking /api/auth/validate stop accepting their tokens once the store is back, within "
    "CLAIMS_CACHE_TTL at most."
)


class UserCreationAdminForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")


class ViewOnlyPasswordHashWidget(ReadOnlyPasswordHashWidget):
    template_name = "accounts/widgets/view_only_password_hash.html"


class UserChangeAdminForm(SeenValuesForm, UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"

    def clean_email(self) -> str:
        return email_canonical(self.cleaned_data.get("email"))


class PasswordChangeAdminForm(AdminPasswordChangeForm):
    """An operator sets a password, or turns password sign-in off ("Disabled"): through the
    service, which ends the user's sessions and tokens."""

    def save(self, commit: bool = True) -> User:
        usable = self.cleaned_data.get("set_usable_password", True)
        password = self.cleaned_data["password1"] if usable else None
        if commit:
            operator_password_set(user=self.user, password=password, actor=_acting_operator.get())
        else:
            self.user.set_password(password)  # None makes an unusable one, as in the service
        return self.user


class GoogleAccountInlineFormSet(BaseInlineFormSet):
    """Deleting a row unlinks through the service, which records who did it."""

    actor = None

    def delete_existing(self, obj: GoogleAccount, commit: bool = True) -> None:
        if commit:
            google_account_unlink(account=obj, actor=self.actor)


class GoogleAccountInline(admin.TabularInline):
    """The user's linked Google accounts: shown, and unlinked by deleting the row (never edited)."""

    model = GoogleAccount
    formset = GoogleAccountInlineFormSet
    fields = readonly_fields = ("email", "sub", "linked_at")
    extra = 0
    verbose_name = "linked Google account"

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_formset(self, request: HttpRequest, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        formset.actor = request.user
        return formset


def within_reach(model_admin, request: HttpRequest, queryset: QuerySet, *, owner: str = "") -> QuerySet:
    """The selected rows this operator may act on: for a non-superuser, none of a privileged
    account (``owner``: the lookup to the row's user, e.g. ``"user__"``); those left out are named."""
    if request.user.is_superuser:
        return queryset
    privileged = reduce(operator.or_, (Q(**{f"{owner}{flag}": True}) for flag in PRIVILEGE_FLAGS))
    skipped = sorted(set(queryset.filter(privileged).values_list(f"{owner}email", flat=True)))
    if skipped:
        model_admin.message_user(
            request, f"Only a superuser can change {', '.join(skipped)}: left as they were.", messages.ERROR
        )
    return queryset.exclude(privileged)


@admin.register(User)
class UserAdmin(LiveChoicesSearchAdmin, ServiceRefusalsAdmin, DjangoUserAdmin):
    form = UserChangeAdminForm
    add_form = UserCreationAdminForm
    change_password_form = PasswordChangeAdminForm
    actions = ["deactivate_selected", "reset_second_factors"]
    inlines = [GoogleAccountInline]
    ordering = ("email",)
    list_display = ("email", "name", "is_active", "is_staff", "is_operator", "last_login")
    list_filter = ("is_active", "is_staff", "is_operator", "is_superuser")
    search_fields = ("email", "name")
    readonly_fields = ("last_login", "date_joined", "second_factors")
    # What makes an account powerful: only a superuser grants it (Django's UserAdmin would let
    # anyone with "change user" make themselves a superuser).
    privilege_fields = ("is_staff", "is_operator", "is_superuser", "groups", "user_permissions")
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("name",)}),
        (
            "Access",
            {
                "fields": (
                    "is_active",
                    "is_staff",
                    "is_operator",
                    "is_superuser",
                    "groups",
                    "user_permissions",
                )
            },
        ),
        ("Second factors", {"fields": ("mfa_required", "second_factors")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = ((None, {"classes": ("wide",), "fields": ("email", "name", "password1", "password2")}),)

    def get_form(self, request: HttpRequest, obj=None, change: bool = False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        if obj is not None and obj.pk == request.user.pk:

            class OwnAccountForm(form_class):  # type: ignore[valid-type, misc]
                def clean_is_active(self) -> bool:
                    # As the action says: signed out at once, and with the last operator gone,
                    # nobody could undo it here.
                    if not self.cleaned_data.get("is_active", True):
                        raise ValidationError("You cannot deactivate yourself: ask another operator.")
                    return True

            form_class = OwnAccountForm
        if (
            obj is not None
            and "password" in form_class.base_fields
            and not self.has_change_permission(request, obj)
        ):
            # A page this operator may only view: no "Reset password" button into a 403.
            password = copy.copy(form_class.base_fields["password"])
            password.widget = ViewOnlyPasswordHashWidget()
            form_class.base_fields["password"] = password
        return form_class

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> tuple[str, ...]:
        readonly = tuple(super().get_readonly_fields(request, obj))
        return readonly if request.user.is_superuser else readonly + self.privilege_fields

    @staticmethod
    def _out_of_reach(request: HttpRequest, user: User | None) -> bool:
        """A privileged account (staff, operator, superuser) is changed or deleted by superusers
        only: whoever could set its password or reset its factors could sign in as it."""
        privileged = user is not None and any(getattr(user, flag) for flag in PRIVILEGE_FLAGS)
        return privileged and not request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        return not self._out_of_reach(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: User | None = None) -> bool:
        return not self._out_of_reach(request, obj) and super().has_delete_permission(request, obj)

    # How an account is deleted (the clusters app's admin adds its grants to it).
    account_delete = staticmethod(user_delete)
    account_deactivate = staticmethod(user_deactivate)
    account_reactivated = staticmethod(lambda **_: None)  # the clients' admin records it on their trails
    # No longer staff or an operator: the clients' admin ends the invitations they can no longer give.
    account_privileges_lowered = staticmethod(lambda **_: None)

    def get_deleted_objects(self, objs, request: HttpRequest):
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # The service deletes what is only the account's (sessions and tokens, which are
        # read-only here): whether the user may be deleted decides, not what goes with it.
        perms_needed &= {User._meta.verbose_name}  # a privileged account, for a non-superuser
        if any(user.pk == request.user.pk for user in objs):  # as deactivating yourself
            protected = [*protected, "your own account: another operator can delete it"]
        return deleted, counts, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        if not self.account_delete(user=obj, actor=request.user):
            self.message_user(request, CACHE_BEHIND, messages.WARNING)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        if not all([self.account_delete(user=user, actor=request.user) for user in queryset]):
            self.message_user(request, CACHE_BEHIND, messages.WARNING)

    def _changeable(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        return within_reach(self, request, queryset)

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = ""):
        refusal = recent_sign_in_refusal(request) if request.method == "POST" else None
        if refusal is not None:  # setting someone's password signs them out: as sensitive as a factor
            self.message_user(request, refusal, messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        token = _acting_operator.set(request.user)
        try:
            return super().user_change_password(request, id, form_url)
        finally:
            _acting_operator.reset(token)

    def save_model(self, request: HttpRequest, obj: User, form, change: bool) -> None:
        if change:  # another operator's save since the page was shown: nothing is written over it
            row_locked_unchanged(form=form, row=obj)
        deactivated = change and "is_active" in form.changed_data and not obj.is_active
        reactivated = change and "is_active" in form.changed_data and obj.is_active
        claims_changed = change and bool(
            # mfa_required too: the access token's scope is empty until a required factor exists.
            {"email", "name", "is_staff", "is_operator", "mfa_required"} & set(form.changed_data)
        )
        # Staff or operator no longer: what they could do as one (invite to any role) ends too.
        lowered = change and any(
            flag in form.changed_data and not getattr(obj, flag) for flag in PRIVILEGE_FLAGS
        )
        if deactivated:
            obj.is_active = True  # the service flips it, together with revoking the sessions
        email_before = form.initial.get("email") if change and "email" in form.changed_data else None
        super().save_model(request, obj, form, change)
        if email_before is not None:  # the owner hears of it at both addresses (security notice)
            account_change_record(
                type=AuditEventType.EMAIL_CHANGED,
                user=obj,
                actor=request.user,
                email=email_before,
                detail=f"from {email_before}",
            )
        if deactivated and not self.account_deactivate(user=obj, actor=request.user):
            self.message_user(request, CACHE_BEHIND, messages.WARNING)
        if reactivated:
            account_change_record(type=AuditEventType.ACCOUNT_REACTIVATED, user=obj, actor=request.user)
            self.account_reactivated(user=obj, actor=request.user)
        if claims_changed:
            users_claims_bump(user_ids=[obj.pk])
        if lowered:
            self.account_privileges_lowered(user=obj, actor=request.user)

    @admin.display(description="enrolled")
    def second_factors(self, user: User) -> str:
        methods = user_second_factors(user=user) if user.pk else []
        labels = {"totp": "authenticator app", "webauthn": "passkey(s)", "recovery": "recovery codes"}
        return ", ".join(labels[m] for m in methods) or "none"

    @admin.action(
        description="Reset second factors (for users who lost theirs; audited)", permissions=["change"]
    )
    def reset_second_factors(self, request: HttpRequest, queryset: QuerySet[User]):
        users = self._changeable(request, queryset)  # says whom it leaves out
        if users.exists():  # else nothing to ask about, nor anyone to say "had none" of
            return self._second_factors_reset(request, users)
        return None

    @recent_sign_in_required
    @confirmation_required(
        "Their authenticator apps, passkeys and recovery codes are removed for good: whoever signs in "
        "with their password alone then sets up new ones.",
        "Yes, reset their second factors",
    )
    def _second_factors_reset(self, request: HttpRequest, users: QuerySet[User]) -> None:
        removed = sum(second_factors_reset(user=user, actor=request.user) for user in users)
        if not removed:  # not a success: whoever asked expected a factor to go
            self.message_user(request, "Nothing was removed: the users selected had no second factor.")
            return
        self.message_user(
            request,
            f"Removed {removed} second factor(s). Users who must have one set it up at their next sign-in.",
            messages.SUCCESS,
        )

    @admin.action(description="Deactivate selected users (ends their sessions)", permissions=["change"])
    def deactivate_selected(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        if queryset.filter(pk=request.user.pk).exists():
            # Signed out at once, and with the last operator gone, nobody could undo it here.
            self.message_user(request, "You cannot deactivate yourself: left as you were.", messages.ERROR)
            queryset = queryset.exclude(pk=request.user.pk)
        selected = self._changeable(request, queryset)
        users = list(selected.filter(is_active=True))
        told = [self.account_deactivate(user=user, actor=request.user) for user in users]
        if users:
            emails = ", ".join(user.email for user in users)
            self.message_user(request, f"Deactivated {emails}; their sessions are revoked.", messages.SUCCESS)
        elif selected.exists():
            self.message_user(request, "Nobody was deactivated: the users selected were inactive already.")
        if not all(told):
            self.message_user(request, CACHE_BEHIND, messages.WARNING)


class SessionStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked"), ("expired", "Expired")]

    def queryset(self, request, queryset):
        now = timezone.now()
        if self.value() == "active":
            return queryset.filter(revoked_at=None, expires_at__gt=now)
        if self.value() == "revoked":
            return queryset.exclude(revoked_at=None)
        if self.value() == "expired":
            return queryset.filter(revoked_at=None, expires_at__lte=now)
        return queryset


class PortalSessionStateFilter(SessionStateFilter):
    """A session also ends idle, after ``JWT_TTL`` unused: its timer is in the cache, and
    ``last_seen_at`` (written within a minute of it) tells the same here."""

    def lookups(self, request, model_admin):
        return [
            ("active", "Active"),
            ("idle", "Timed out (idle)"),
            ("revoked", "Revoked"),
            ("expired", "Expired"),
        ]

    def queryset(self, request, queryset):
        idle_since = timezone.now() - settings.JWT_TTL
        if self.value() == "active":
            return super().queryset(request, queryset).filter(last_seen_at__gt=idle_since)
        if self.value() == "idle":
            return queryset.filter(
                revoked_at=None, expires_at__gt=timezone.now(), last_seen_at__lte=idle_since
            )
        return super().queryset(request, queryset)


class ReadOnlyAdmin(InputGuardAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Session)
class SessionAdmin(ReadOnlyAdmin):
    list_display = (
        "user",
        "method",
        "created_at",
        "last_seen_at",
        "expires_at",
        "ip",
        "revoked_at",
        "revoked_reason",
    )
    list_filter = (PortalSessionStateFilter, "method", ("created_at", admin.DateFieldListFilter))
    search_fields = ("user__email", "ip", "id")
    list_select_related = ("user",)
    actions = ["revoke_selected"]
    exclude = ("current_refresh_payload",)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.change_session")

    @admin.action(description="Revoke selected sessions", permissions=["revoke"])
    @confirmation_required("Each session ends now: its device must sign in again.", "Yes, revoke them")
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[Session]) -> None:
        reachable = within_reach(self, request, queryset, owner="user__")
        count = sessions_revoke(
            sessions=list(reachable.filter(revoked_at=None).select_related("user")),
            reason=SessionRevokedReason.OPERATOR,
            actor=request.user,
        )
        self.message_user(request, f"Revoked {count} session(s).", messages.SUCCESS)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "type", "email", "user", "method", "ip", "session_id", "detail")
    list_filter = ("type", "method", ("at", admin.DateFieldListFilter))
    search_fields = ("email", "user__email", "ip", "session_id")
    list_select_related = ("user",)


@admin.register(PersonalAccessToken)
class PersonalAccessTokenAdmin(ReadOnlyAdmin):
    """Users' personal access tokens: seen (never their secrets) and revoked here."""

    list_display = (
        "name",
        "user",
        "prefix",
        "scopes",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked_at",
    )
    list_filter = (SessionStateFilter,)  # active, revoked, expired: the same three states
    list_select_related = ("user",)
    search_fields = ("name", "prefix", "user__email")
    exclude = ("token_hash",)
    actions = ["revoke_selected"]

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.change_personalaccesstoken")

    @admin.action(description="Revoke selected tokens", permissions=["revoke"])
    @confirmation_required(
        "Each of these tokens stops working for good: whatever uses it (a script, a CI job) fails.",
        "Yes, revoke them",
    )
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[PersonalAccessToken]) -> None:
        try:
            reachable = within_reach(self, request, queryset, owner="user__")
            count = access_tokens_revoke(
                tokens=list(reachable.filter(revoked_at=None).select_related("user")), actor=request.user
            )
        except AuthUnavailable:
            self.message_user(
                request, "The session store cannot be reached: nothing was revoked.", messages.ERROR
            )
            return
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


# Django's own Group admin, with the same guard against hand-made filters and selections.
admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(ServiceRefusalsAdmin, DjangoGroupAdmin):
    """Changed by superusers only: whoever may edit a group's permissions could give their own
    group every permission (the user admin keeps groups and permissions to superusers too)."""

    form = SeenValuesModelForm  # a page opened before another operator's save does not undo it

    def save_model(self, request: HttpRequest, obj: Group, form, change: bool) -> None:
        if change:
            row_locked_unchanged(form=form, row=obj)
        super().save_model(request, obj, form, change)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: Group | None = None) -> bool:
        return request.user.is_superuser
