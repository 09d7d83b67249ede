"""The token service's HTTP API (see the contract's "Auth endpoints")."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.access_tokens import TOKEN_PREFIX
from accounts.admin_site import admin_session_end
from accounts.authentication import (
    TokenAuth,
    access_token_from_request,
    access_token_verify,
    auth_cookies_clear,
    auth_cookies_set,
    browser_origin_check,
    csrf_check,
    guarded_request_csrf_check,
    personal_token_live,
    personal_token_use_record,
    refresh_token_from_request,
    request_origin,
)
from accounts.devices import device_remember
from accounts.google import google_sign_in_enabled
from accounts.google_nonce import google_nonce_clear, google_nonce_from_request, google_nonce_issue
from accounts.google_sign_in import google_sign_in
from accounts.models import AuthMethod
from accounts.second_factors import SignInStep, sign_in_step
from accounts.security_serializers import MfaChallengeSerializer
from accounts.selectors import (
    second_factor_policy_check,
    session_active_list,
    session_live,
    token_session,
    user_profile,
)
from accounts.serializers import (
    DELIVERY_BODY,
    DELIVERY_COOKIE,
    CsrfSerializer,
    GoogleNonceSerializer,
    GoogleSignInInputSerializer,
    JwksSerializer,
    LoginInputSerializer,
    SessionSerializer,
    TokenResponseSerializer,
    UserSerializer,
)
from accounts.services import (
    IssuedTokens,
    refresh_token_rotate,
    session_activity_record,
    session_logout,
    user_password_authenticate,
    user_session_revoke,
)
from accounts.throttles import LoginAccountThrottle, LoginIPThrottle
from accounts.tokens import key_ring
from config import errors, metrics
from config.api import APIView
from config.openapi import AUTHENTICATION_ERRORS, error_responses

JWKS_MAX_AGE = 300
SIGN_IN_ERRORS = (errors.InvalidRequest, errors.ForeignOrigin, errors.Throttled, errors.AuthUnavailable)


def login_response(*, issued: IssuedTokens, token_delivery: str) -> Response:
    """The 200 answer to a sign-in or refresh: cookies, or the tokens in the body for non-browsers."""
    now = timezone.now()
    body = {
        "user": user_profile(user=issued.user, scope=issued.scope),
        "expiresIn": int((issued.access_expires_at - now).total_seconds() * 1000),
        "refreshTokenExpiresIn": int((issued.refresh_expires_at - now).total_seconds() * 1000),
    }
    if token_delivery == DELIVERY_BODY:
        body |= {"accessToken": issued.access_token, "refreshToken": issued.refresh_token}
    response = Response(TokenResponseSerializer(body).data)
    if token_delivery != DELIVERY_BODY:
        auth_cookies_set(response, issued=issued)
    response["Cache-Control"] = "no-store"  # RFC 6749 section 5.1: token responses are never cached
    return response


def sign_in_step_response(*, step: SignInStep, token_delivery: str) -> Response:
    """A session's tokens, or, when a second factor is needed, the ``mfaToken`` for it (no cookies)."""
    if step.issued is not None:
        return login_response(issued=step.issued, token_delivery=token_delivery)
    body = {"mfaRequired": True, "methods": list(step.methods), "mfaToken": step.mfa_token}
    return Response(MfaChallengeSerializer(body).data, headers={"Cache-Control": "no-store"})


SIGN_IN_RESPONSE = PolymorphicProxySerializer(
    component_name="SignInResponse",
    serializers=[TokenResponseSerializer, MfaChallengeSerializer],
    resource_type_field_name=None,
)


class PublicAPIView(APIView):
    """No authentication at all: a stale or garbage access cookie can never break these."""

    authentication_classes: list = []
    permission_classes = [AllowAny]


class SignInAPIView(PublicAPIView):
    """What every sign-in endpoint shares: the login throttles, then no foreign browser Origin.

    Without the Origin check another site could sign a visitor in to an account of its choosing
    (login CSRF): the answer sets this site's cookies.
    """

    throttle_classes = [LoginIPThrottle, LoginAccountThrottle]
    auth_method = "other"  # what a throttled attempt is counted as (portal_logins_total's method)

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        browser_origin_check(request)

    def check_throttles(self, request: Request) -> None:
        # The first refusal ends it (DRF asks every throttle): an address already refused must
        # neither charge the accounts it tries nor fill the cache with a bucket for each.
        for throttle in self.get_throttles():
            if not throttle.allow_request(request, self):
                self.throttled(request, throttle.wait())

    def throttled(self, request: Request, wait: float | None) -> None:
        metrics.login_record(method=self.auth_method, result=errors.Throttled.default_code)
        super().throttled(request, wait)


class LoginView(SignInAPIView):
    auth_method = AuthMethod.PASSWORD

    @extend_schema(
        operation_id="auth_login",
        request=LoginInputSerializer,
        responses={
            200: SIGN_IN_RESPONSE,
            **error_responses(
                *SIGN_IN_ERRORS,
                errors.InvalidCredentials,
                errors.AccountDisabled,
                notes={"invalid_request": "fields.password when it is not base64 of UTF-8."},
            ),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = LoginInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data, origin = serializer.validated_data, request_origin(request)
        user = user_password_authenticate(email=data["email"], password=data["password"], origin=origin)
        step = sign_in_step(user=user, method=AuthMethod.PASSWORD, origin=origin)
        response = sign_in_step_response(step=step, token_delivery=data["tokenDelivery"])
        # The client knows the password: it becomes a known device (accounts.devices).
        device_remember(request, response, user=user, in_body=data["tokenDelivery"] == DELIVERY_BODY)
        return response


class GoogleSignInView(SignInAPIView):
    auth_method = AuthMethod.GOOGLE

    def initial(self, request: Request, *args, **kwargs) -> None:
        if not google_sign_in_enabled():  # switched off: as if the endpoint did not exist
            raise errors.NotFound()
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="auth_google",
        request=GoogleSignInInputSerializer,
        responses={
            200: SIGN_IN_RESPONSE,
            **error_responses(
                *SIGN_IN_ERRORS,
                errors.InvalidGoogleToken,
                errors.EmailNotVerified,
                errors.NoAccount,
                errors.AccountDisabled,
                errors.NotFound,
                errors.GoogleUnavailable,
                notes={
                    "invalid_request": "fields.credential: empty, or not a JWT at all.",
                    "not_found": "Google sign-in is not configured (GOOGLE_CLIENT_IDS is empty).",
                },
            ),
        },
        auth=[],
        description="Sign in with a Google ID token: the user linked to the Google account, else the "
        "user with that verified email (then linked), else a new user when the domain is allowed.",
    )
    def post(self, request: Request) -> Response:
        serializer = GoogleSignInInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        step = google_sign_in(
            credential=data["credential"],
            nonce=google_nonce_from_request(request),
            origin=request_origin(request),
        )
        response = sign_in_step_response(step=step, token_delivery=data["tokenDelivery"])
        google_nonce_clear(request, response)
        return response


class GoogleNonceView(PublicAPIView):
    def initial(self, request: Request, *args, **kwargs) -> None:
        if not google_sign_in_enabled():
            raise errors.NotFound()
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="auth_google_nonce",
        responses={
            200: GoogleNonceSerializer,
            **error_responses(
                errors.NotFound,
                notes={"not_found": "Google sign-in is not configured (GOOGLE_CLIENT_IDS is empty)."},
            ),
        },
        auth=[],
        description="The nonce for Google's sign-in script (`nonce` of `google.accounts.id.initialize`), "
        "also set in an httpOnly cookie: a Google ID token that carries it is accepted only from this "
        "browser. The same nonce while the browser holds it (every tab shares it); a new one after it "
        "served a sign-in.",
    )
    def get(self, request: Request) -> Response:
        response = Response(headers={"Cache-Control": "no-store"})
        response.data = GoogleNonceSerializer({"nonce": google_nonce_issue(request, response)}).data
        return response


# Refresh failures that end the browser's sign-in: its cookies go too.
COOKIE_CLEARING_CODES = frozenset(
    {
        errors.TokenNotValid.default_code,
        errors.RefreshTokenReused.default_code,
        errors.AccountDisabled.default_code,
    }
)


class RefreshView(PublicAPIView):
    @extend_schema(
        operation_id="auth_refresh",
        request=None,
        responses={
            200: TokenResponseSerializer,
            **error_responses(
                errors.TokenNotValid,
                errors.RefreshTokenReused,
                errors.AccountDisabled,
                errors.ForeignOrigin,
                errors.AuthUnavailable,
                notes={
                    "token_not_valid": "Invalid, expired, revoked or idle (the browser's cookies are cleared)."
                },
            ),
        },
        auth=[{"refreshTokenCookie": []}, {"bearerAuth": []}],
        description="Refresh token from the refreshToken cookie (answer in cookies) "
        "or `Authorization: Bearer` (answer in the body).",
    )
    def post(self, request: Request) -> Response:
        raw, from_cookie = refresh_token_from_request(request)
        if from_cookie:
            browser_origin_check(request)
        if raw is None:
            raise errors.RefreshTokenMissing()
        issued = refresh_token_rotate(token=raw, origin=request_origin(request))
        return login_response(issued=issued, token_delivery=DELIVERY_COOKIE if from_cookie else DELIVERY_BODY)

    def handle_exception(self, exc: Exception) -> Response:
        response = super().handle_exception(exc)
        if response.status_code == 403 and response.data.get("code") in COOKIE_CLEARING_CODES:
            auth_cookies_clear(response)
        return response


class LogoutView(PublicAPIView):
    @extend_schema(
        operation_id="auth_logout",
        request=None,
        responses={204: None, **error_responses(errors.CsrfFailed, errors.AuthUnavailable)},
        auth=[{"refreshTokenCookie": []}, {"accessTokenCookie": []}, {"bearerAuth": []}, {}],
    )
    def post(self, request: Request) -> Response:
        browser_origin_check(request)
        session, from_cookie = None, False
        for presented in (refresh_token_from_request, access_token_from_request):
            raw, from_cookie = presented(request)
            session = token_session(token=raw)
            if session is not None:  # a garbage refresh cookie must not hide a live access cookie
                break
        if session is not None:
            if from_cookie:
                csrf_check(request._request)  # a cookie-authenticated write, like every other one
            session_logout(session=session, origin=request_origin(request))
        # No live session (signed out already, a stale or garbage cookie): nothing a forged
        # request could end, so no CSRF token is asked; the cookies are cleared either way.
        admin_session_end(request._request)
        response = Response(status=status.HTTP_204_NO_CONTENT)
        auth_cookies_clear(response)
        return response


class MeView(APIView):
    allowed_before_enrolment = True
    accepts_personal_access_tokens = True

    @extend_schema(
        operation_id="auth_me",
        responses={200: UserSerializer, **error_responses(*AUTHENTICATION_ERRORS)},
        description="`scopes`: the clients this credential reaches now (a session's sign-in may not "
        "satisfy every client's policy; a personal access token has its own scopes).",
    )
    def get(self, request: Request) -> Response:
        auth: TokenAuth = request.auth
        # Already the contract's shape and types (as login returns it): a serializer would only copy it.
        return Response(user_profile(user=request.user, scope=auth.scope.claim))


class SessionListView(APIView):
    allowed_before_enrolment = True

    @extend_schema(
        operation_id="auth_sessions_list",
        responses={200: SessionSerializer(many=True), **error_responses(*AUTHENTICATION_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        auth: TokenAuth = request.auth
        sessions = session_active_list(user=request.user)
        for session in sessions:
            session.current = session.pk == auth.session.session_id
        return Response(SessionSerializer(sessions, many=True).data)


class SessionDetailView(APIView):
    allowed_before_enrolment = True

    @extend_schema(
        operation_id="auth_sessions_revoke",
        responses={204: None, **error_responses(*AUTHENTICATION_ERRORS, errors.NotFound)},
    )
    def delete(self, request: Request, session_id: uuid.UUID) -> Response:
        user_session_revoke(user=request.user, session_id=session_id, origin=request_origin(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


def validate_identity_headers(request: HttpRequest) -> dict[str, str]:
    """The gateway headers for the request's access token: the user's current claims, from the cache."""
    raw, from_cookie = access_token_from_request(request)
    if raw is None:
        raise errors.NotAuthenticated()
    if raw.startswith(TOKEN_PREFIX):
        token = personal_token_live(request, raw)
        personal_token_use_record(request, token)
        user_id, claims, scope = token.user_id, token.claims, token.scope
    else:
        live = session_live(token=access_token_verify(raw))
        second_factor_policy_check(claims=live.claims)
        if from_cookie:
            guarded_request_csrf_check(request)
        session_activity_record(live=live, write_last_seen=False)
        user_id, claims, scope = live.user_id, live.claims, live.credential_scope()
    return {
        "X-Auth-User-Id": str(user_id),
        "X-Auth-Email": claims.email,
        "X-Auth-Scope": scope.claim,
        "X-Auth-Permissions": scope.permissions_claim,
        "Cache-Control": "no-store",
    }


def _gateway_header(name: str, description: str, statuses: list[int]) -> OpenApiParameter:
    return OpenApiParameter(name, str, OpenApiParameter.HEADER, description=description, response=statuses)


VALIDATE_HEADERS = [
    _gateway_header("X-Auth-User-Id", "The user's id.", [200]),
    _gateway_header("X-Auth-Email", "The user's current email.", [200]),
    _gateway_header(
        "X-Auth-Scope",
        "The clients the credential reaches now, their slugs separated by spaces (empty: none); "
        "`*` for an operator.",
        [200],
    ),
    _gateway_header(
        "X-Auth-Permissions",
        "What the credential may do now on each client of X-Auth-Scope: `<client>=<permission>,...` "
        "separated by spaces (permissions: view, configure, credentials, audit, members; a personal "
        "access token's own, within its user's role), `*` for an operator.",
        [200],
    ),
    _gateway_header("X-Auth-Error-Code", "The error body's `code`.", [403, 503]),
]


class ValidateView(PublicAPIView):
    """For gateways: the cache only, no database query."""

    failure: errors.PortalError | None = None
    ignores_accept = True  # see perform_content_negotiation

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # Gateways call this on every proxied request: a valid token is answered without DRF's
        # request wrapping, content negotiation and rendering (a third of the cost). Failures
        # take the regular path, so errors keep the one format.
        if request.method == "GET":
            try:
                allowed = HttpResponse(status=status.HTTP_200_OK, headers=validate_identity_headers(request))
                del allowed["Content-Type"]  # no content, so no type (RFC 9110, 8.3): not an empty HTML page
                return allowed
            except errors.PortalError as error:  # rendered by DRF's handler below
                self.failure = error
        return super().dispatch(request, *args, **kwargs)

    def perform_content_negotiation(self, request: Request, force: bool = False):
        # A gateway passes on its client's Accept (text/csv, text/event-stream...): a refusal is
        # JSON all the same, not 406, which nginx would turn into its "sign-in unavailable" 503.
        return super().perform_content_negotiation(request, force=True)

    def handle_exception(self, exc: Exception) -> Response:
        # nginx's auth_request drops the subrequest's body: the code travels in a header too, so
        # the gateway can answer its client with the same {"code", "detail"} (deploy/gateway/).
        response = super().handle_exception(exc)
        if isinstance(response.data, dict) and "code" in response.data:
            response["X-Auth-Error-Code"] = response.data["code"]
        # The ordinary answer to a caller without a token, or with an expired one: not a warning
        # each (a refused cross-site write, csrf_failed, still is).
        if response.get("X-Auth-Error-Code") in {
            errors.NotAuthenticated.default_code,
            errors.TokenNotValid.default_code,
        }:
            self.request._request.refusal_expected = True
        return response

    @extend_schema(
        operation_id="auth_validate",
        parameters=VALIDATE_HEADERS,
        responses={
            200: OpenApiResponse(
                None,
                description="Valid access token; identity in X-Auth-User-Id, X-Auth-Email, X-Auth-Scope, "
                "X-Auth-Permissions (the user's current email, scope and permissions).",
            ),
            **error_responses(*AUTHENTICATION_ERRORS, errors.MfaEnrolmentRequired, errors.CsrfFailed),
        },
        auth=[{"accessTokenCookie": []}, {"bearerAuth": []}, {"xAuthToken": []}],
        description="For API gateways: an access token (cookie, `Authorization: Bearer`, `X-Auth-Token`) "
        "or a personal access token (`Authorization: Bearer qpt_...` only). X-Auth-Scope: the clients "
        "the credential reaches now. A failure also carries its code in the X-Auth-Error-Code "
        "header, for gateways that cannot read the body (nginx auth_request). A write the gateway guards "
        "(`X-Original-Method` or `X-Forwarded-Method` other than GET, HEAD, OPTIONS, TRACE) with the token "
        "from the cookie needs an allowed `Origin` and the `X-CSRFToken` header (403 `csrf_failed`).",
    )
    def get(self, request: Request) -> Response:
        if self.failure is not None:
            raise self.failure
        return Response(headers=validate_identity_headers(request._request))


class CsrfView(PublicAPIView):
    @extend_schema(
        operation_id="auth_csrf",
        responses={200: CsrfSerializer},
        description="Sets the csrftoken cookie and returns the token, for a browser app served from "
        "another origin (which cannot read this site's cookies).",
    )
    def get(self, request: Request) -> Response:
        return Response(CsrfSerializer({"csrfToken": get_token(request)}).data)


class JwksView(PublicAPIView):
    @extend_schema(operation_id="jwks", responses={200: JwksSerializer}, auth=[])
    def get(self, request: Request) -> Response:
        response = Response(JwksSerializer({"keys": key_ring().public_jwks()}).data)
        response["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
        return response
