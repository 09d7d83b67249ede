"""The admin site: signed in to through the portal, never with a password form of its own.

Django's admin login form takes a password and nothing else, which would let a stolen staff
password skip the second factor. So its login page sends the browser to the portal's sign-in
(password or Google, then the second factor), whose ``POST /api/auth/admin-session`` opens the
admin session for staff. A staff user whom the policy requires a second factor, and who has
none yet, is not let in until they set one up.

The admin session is bound to the portal session that opened it: every admin request asks the
same rule as the API (``session_id_live``), so signing out, a revocation, the idle timeout, a
deactivation or a password change ends the admin session too, and admin use counts as activity.
The admin's own Log out ends that portal session in turn.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.admin import AdminSite, helpers
from django.contrib.auth import login as django_login
from django.contrib.auth import logout as django_logout
from django.core import signing
from django.db.models import Model
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from accounts.authentication import auth_cookies_clear, request_origin
from accounts.models import User
from accounts.second_factors import recent_authentication_require
from accounts.selectors import (
    session_id_live,
    session_open,
    session_row_live,
    user_mfa_required,
    user_second_factors,
    uuid_or_none,
)
from accounts.services import session_activity_record, session_logout
from config.errors import AccountDisabled, AuthUnavailable, ReauthenticationRequired, TokenNotValid

# The portal session (accounts.Session id) an admin session belongs to, in the Django session.
PORTAL_SESSION_KEY = "portal_session_id"


def admin_session_bind(request: HttpRequest, *, user_id: int, session_id: uuid.UUID) -> None:
    """Open a Django admin session for the user, bound to their portal session ``session_id``."""
    user = User.objects.get(pk=user_id)
    django_login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
    request.session[PORTAL_SESSION_KEY] = str(session_id)


def admin_session_end(request: HttpRequest) -> None:
    """The browser signed out of the portal: the admin session it opened goes too."""
    if PORTAL_SESSION_KEY in request.session:
        django_logout(request)


def admin_portal_session_id(request: HttpRequest) -> uuid.UUID | None:
    """The portal session this admin session belongs to: the session an operator's change is made by."""
    return uuid_or_none(request.session.get(PORTAL_SESSION_KEY))


def _portal_session_live(request: HttpRequest) -> bool:
    """Whether the portal session behind this admin session is still alive (asked once a request)."""
    if hasattr(request, "_portal_session_live"):
        return request._portal_session_live
    session_id = admin_portal_session_id(request)
    live, allowed = None, False
    if session_id is not None:
        try:
            live = session_id_live(session_id=session_id, user_id=request.user.pk)
            allowed = True
        except (TokenNotValid, AccountDisabled):  # revoked, ended, idle, or the user disabled
            django_logout(request)
        except AuthUnavailable:
            # The session store is down: operators may still act (deactivate someone, say) as
            # long as the database says the session was neither revoked nor ended.
            allowed = session_row_live(session_id=session_id, user_id=request.user.pk)
    if live is not None and live.timer_due:
        try:
            session_activity_record(live=live, write_last_seen=True)
        except AuthUnavailable:
            pass  # this request was let in; the next one asks the store again
        request.session.modified = True  # the admin cookie (SESSION_COOKIE_AGE) slides with it
    request._portal_session_live = allowed
    request._portal_claims = live.claims if live is not None else None
    return allowed


def recent_sign_in_refusal(request: HttpRequest) -> str | None:
    """What the API asks of a sensitive action (a key rotation, second factors): a proof of
    identity within REAUTHENTICATION_WINDOW, on the portal session behind this admin session.
    None when there was one; else what to tell the operator, with the way to confirm it is them."""
    try:
        session_id = uuid_or_none(request.session.get(PORTAL_SESSION_KEY))
        if session_id is None:
            raise ReauthenticationRequired()
        recent_authentication_require(session_id=session_id)
    except ReauthenticationRequired:
        minutes = int(settings.REAUTHENTICATION_WINDOW.total_seconds() // 60)
        return format_html(
            'Nothing was done: this needs a sign-in within the last {} minutes. <a href="{}">Confirm it '
            "is you</a>, then repeat it.",
            minutes,
            f"/#/confirm?next={quote(request.get_full_path())}",
        )
    return None


def recent_sign_in_required(action: Callable) -> Callable:
    """An admin action that does nothing, and says why, without a recent sign-in."""

    @functools.wraps(action)
    def guarded(model_admin, request: HttpRequest, queryset):  # noqa: ANN001, ANN202 - Django's action
        refusal = recent_sign_in_refusal(request)
        if refusal is not None:
            model_admin.message_user(request, refusal, messages.ERROR)
            return None
        return action(model_admin, request, queryset)

    return guarded


CONFIRMATION_SHOWN_MAX = 100
# The question page's record of what each object was when it asked (signed: the page's own).
_CONFIRMED_STATE, _CONFIRMED_STATE_SALT = "confirmed_state", "accounts.admin_site.confirmation"


def confirmation_required(
    question: str, confirm_label: str, *, state: Callable[[Model], str] | None = None
) -> Callable:
    """An admin action that asks first, on a page naming what it acts on (as Django's delete
    does): for what cannot be taken back with another click.

    ``state``: what the answer confirms of each object (a version of it). The page carries it,
    an answer without it is asked again, and the action reads it (``confirmed_states``) to act
    on each object only as it was shown: the same answer sent twice (a reload, Back, a second
    operator answering the same question) finds the objects changed by the first."""

    def decorate(action: Callable) -> Callable:
        @functools.wraps(action)
        def confirmed(model_admin, request: HttpRequest, queryset):  # noqa: ANN001, ANN202 - Django's action
            if request.POST.get("post") == "yes" and (state is None or _CONFIRMED_STATE in request.POST):
                return action(model_admin, request, queryset)
            count = queryset.count()
            shown = list(queryset[:CONFIRMATION_SHOWN_MAX])
            context = {
                **model_admin.admin_site.each_context(request),
                "opts": model_admin.model._meta,
                "title": "Are you sure?",
                "question": question,
                "confirm_label": confirm_label,
                "count": count,
                "shown": shown,
                "more": count - len(shown),
                "action": request.POST.get("action", ""),
                "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
                "select_across": request.POST.get("select_across") == "1",
            }
            if state is not None:
                states = {str(obj.pk): state(obj) for obj in queryset}
                context["confirmed_state"] = signing.dumps(states, salt=_CONFIRMED_STATE_SALT, compress=True)
            return TemplateResponse(request, "admin/action_confirmation.html", context)

        return confirmed

    return decorate


def confirmed_states(request: HttpRequest) -> dict[str, str]:
    """What the answered question page showed of each object (``confirmation_required``'s
    ``state``), by primary key as text; empty when the answer's record was altered."""
    try:
        return signing.loads(request.POST.get(_CONFIRMED_STATE, ""), salt=_CONFIRMED_STATE_SALT)
    except signing.BadSignature:
        return {}


class PortalAdminSite(AdminSite):
    site_header = "Qdrant Portal operations"
    site_title = "Qdrant Portal admin"

    def has_permission(self, request: HttpRequest) -> bool:
        if not (super().has_permission(request) and _portal_session_live(request)):
            return False
        claims = request._portal_claims  # the session store's copy; None when it is down
        if claims is not None:
            return not (claims.mfa_required and not claims.mfa_enrolled)
        user = request.user
        return not (user_mfa_required(user=user) and not user_second_factors(user=user))

    def password_change(self, request: HttpRequest, extra_context=None) -> HttpResponseRedirect:
        """The portal's Security page changes one's own password: it asks for the current one,
        is throttled, ends the other sessions and access tokens and is audited. Django's admin
        form would do none of that."""
        return HttpResponseRedirect("/#/security")

    def password_change_done(self, request: HttpRequest, extra_context=None) -> HttpResponseRedirect:
        return HttpResponseRedirect("/#/security")

    def logout(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        """Log out signs out of the portal session the admin session was opened from, and clears
        the app's cookies: else the next visit to /admin/ would open a new admin session from
        them, and an operator leaving a shared computer would have left a live session behind."""
        session_id = uuid_or_none(request.session.get(PORTAL_SESSION_KEY))
        if request.method == "POST" and session_id is not None and request.user.is_authenticated:
            session = session_open(session_id=session_id, user_id=request.user.pk)
            if session is not None:
                session_logout(session=session, origin=request_origin(request))
        response = super().logout(request, extra_context)
        if request.method == "POST":
            auth_cookies_clear(response)
        return response

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponseRedirect:
        if self.has_permission(request):
            return HttpResponseRedirect(reverse("admin:index", current_app=self.name))
        target = request.GET.get("next")
        next_path = target if target and target.startswith("/admin/") else reverse("admin:index")
        return HttpResponseRedirect(f"/#/login?next={quote(next_path)}")
