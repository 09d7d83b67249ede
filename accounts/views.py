"""The token service's HTTP API (see the contract's "Auth endpoints")."""

from __future__ import annotations

import uuid

from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import (
    access_token_from_request,
    access_token_verify,
    auth_cookies_clear,
    auth_cookies_set,
    browser_origin_check,
    client_ip,
    refresh_token_from_request,
    session_alive,
    user_agent,
)
from accounts.google import GoogleSignInDisabled, google_sign_in_enabled
from accounts.models import AuthMethod
from accounts.selectors import session_active_list, user_permissions, user_profile
from accounts.serializers import (
    DELIVERY_BODY,
    DELIVERY_COOKIE,
    CsrfSerializer,
    GoogleSignInInputSerializer,
    JwksSerializer,
    LoginInputSerializer,
    PermissionsSerializer,
    SessionSerializer,
    TokenResponseSerializer,
    UserSerializer,
)
from accounts.services import (
    IssuedTokens,
    google_sign_in,
    refresh_token_rotate,
    session_logout,
    session_start,
    token_not_valid,
    user_password_authenticate,
    user_session_revoke,
)
from accounts.throttles import LoginAccountThrottle, LoginIPThrottle
from accounts.tokens import key_ring
from clusters.serializers import ErrorSerializer  # the one error shape, one OpenAPI component

JWKS_MAX_AGE = 300


def errors(*entries: tuple[int, str]) -> dict[int, OpenApiResponse]:
    """OpenAPI error responses: ``(status, "code_a / code_b")`` pairs, all in the one error shape."""
    return {code: OpenApiResponse(ErrorSerializer, description=description) for code, description in entries}


AUTHENTICATED_ERRORS = (
    (403, "not_authenticated / token_not_valid / account_disabled / csrf_failed"),
    (503, "auth_unavailable: the session store is unreachable"),
)


def login_response(*, issued: IssuedTokens, token_delivery: str) -> Response:
    """The 200 answer to a sign-in or refresh: cookies, or the tokens in the body for non-browsers."""
    now = timezone.now()
    body = {
        "user": user_profile(user=issued.user),
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

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        browser_origin_check(request)


class LoginView(SignInAPIView):
    @extend_schema(
        operation_id="auth_login",
        request=LoginInputSerializer,
        responses={
            200: TokenResponseSerializer,
            **errors(
                (400, "invalid_request (fields.password when it is not base64 of UTF-8)"),
                (401, "invalid_credentials"),
                (403, "account_disabled / csrf_failed (browser Origin not allowed)"),
                (429, "throttled (Retry-After)"),
                (503, "auth_unavailable"),
            ),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = LoginInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        ip, agent = client_ip(request), user_agent(request)
        user = user_password_authenticate(
            email=data["email"], password=data["password"], ip=ip, user_agent=agent
        )
        issued = session_start(user=user, method=AuthMethod.PASSWORD, user_agent=agent, ip=ip)
        return login_response(issued=issued, token_delivery=data["tokenDelivery"])


class GoogleSignInView(SignInAPIView):
    def initial(self, request: Request, *args, **kwargs) -> None:
        if not google_sign_in_enabled():  # switched off: as if the endpoint did not exist
            raise GoogleSignInDisabled()
        super().initial(request, *args, **kwargs)

    @extend_schema(
        operation_id="auth_google",
        request=GoogleSignInInputSerializer,
        responses={
            200: TokenResponseSerializer,
            **errors(
                (400, "invalid_request (fields.credential: empty, or not a JWT at all)"),
                (401, "invalid_google_token: signature, audience, issuer, expiry or key id"),
                (
                    403,
                    "email_not_verified / no_account (no linked user and the domain is not allowed) "
                    "/ account_disabled / csrf_failed (browser Origin not allowed)",
                ),
                (404, "not_found: Google sign-in is not configured (GOOGLE_CLIENT_IDS is empty)"),
                (429, "throttled (Retry-After)"),
                (503, "google_unavailable (Google's certificates could not be fetched) / auth_unavailable"),
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
        issued = google_sign_in(
            credential=data["credential"], ip=client_ip(request), user_agent=user_agent(request)
        )
        return login_response(issued=issued, token_delivery=data["tokenDelivery"])


# Refresh failures that end the browser's sign-in: its cookies go too.
COOKIE_CLEARING_CODES = frozenset({"token_not_valid", "refresh_token_reused", "account_disabled"})


class RefreshView(PublicAPIView):
    @extend_schema(
        operation_id="auth_refresh",
        request=None,
        responses={
            200: TokenResponseSerializer,
            **errors(
                (
                    403,
                    "token_not_valid / refresh_token_reused / account_disabled (cookies cleared) / csrf_failed",
                ),
                (503, "auth_unavailable"),
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
            raise token_not_valid("No refresh token was sent.")
        issued = refresh_token_rotate(token=raw, ip=client_ip(request), user_agent=user_agent(request))
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
        responses={
            204: None,
            **errors((403, "csrf_failed (browser Origin not allowed)"), (503, "auth_unavailable")),
        },
        auth=[{"refreshTokenCookie": []}, {"accessTokenCookie": []}, {"bearerAuth": []}, {}],
    )
    def post(self, request: Request) -> Response:
        browser_origin_check(request)
        raw = refresh_token_from_request(request)[0] or access_token_from_request(request)[0]
        session_logout(token=raw, ip=client_ip(request), user_agent=user_agent(request))
        response = Response(status=status.HTTP_204_NO_CONTENT)
        auth_cookies_clear(response)
        return response


class MeView(APIView):
    @extend_schema(operation_id="auth_me", responses={200: UserSerializer, **errors(*AUTHENTICATED_ERRORS)})
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(user_profile(user=request.user)).data)


class PermissionsView(APIView):
    @extend_schema(
        operation_id="auth_permissions",
        responses={200: PermissionsSerializer, **errors(*AUTHENTICATED_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        return Response(PermissionsSerializer(user_permissions(user=request.user)).data)


class SessionListView(APIView):
    @extend_schema(
        operation_id="auth_sessions_list",
        responses={200: SessionSerializer(many=True), **errors(*AUTHENTICATED_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        sessions = session_active_list(user=request.user)
        for session in sessions:
            session.current = session.pk == request.auth.session_id
        return Response(SessionSerializer(sessions, many=True).data)


class SessionDetailView(APIView):
    @extend_schema(
        operation_id="auth_sessions_revoke",
        responses={204: None, **errors(*AUTHENTICATED_ERRORS, (404, "not_found"))},
    )
    def delete(self, request: Request, session_id: uuid.UUID) -> Response:
        user_session_revoke(
            user=request.user, session_id=session_id, ip=client_ip(request), user_agent=user_agent(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


def validate_identity_headers(request: HttpRequest) -> dict[str, str]:
    """The gateway headers for the request's access token: claims plus one cache round trip."""
    raw = access_token_from_request(request)[0]
    if raw is None:
        raise exceptions.NotAuthenticated("No access token was sent.")
    token = access_token_verify(raw)
    session_alive(token)
    return {
        "X-Auth-User-Id": token["sub"],
        "X-Auth-Email": token.get("email", ""),
        "X-Auth-Scope": token.get("scope", ""),
        "Cache-Control": "no-store",
    }


class ValidateView(PublicAPIView):
    """For gateways: claims and one cache lookup, no database query."""

    failure: Exception | None = None

    def dispatch(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        # Gateways call this on every proxied request: a valid token is answered without DRF's
        # request wrapping, content negotiation and rendering (a third of the cost). Failures
        # take the regular path, so errors keep the one format.
        if request.method == "GET":
            try:
                return HttpResponse(status=status.HTTP_200_OK, headers=validate_identity_headers(request))
            except Exception as error:  # rendered by DRF's handler below
                self.failure = error
        return super().dispatch(request, *args, **kwargs)

    @extend_schema(
        operation_id="auth_validate",
        responses={
            200: OpenApiResponse(
                None,
                description="Valid access token; identity in X-Auth-User-Id, X-Auth-Email, X-Auth-Scope.",
            ),
            **errors(*AUTHENTICATED_ERRORS),
        },
        auth=[{"accessTokenCookie": []}, {"bearerAuth": []}, {"xAuthToken": []}],
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
