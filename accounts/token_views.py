"""Personal access tokens: ``/api/auth/tokens`` (see README "Access tokens").

Only a signed-in session manages tokens: a token cannot make, list or revoke tokens
(``pat_not_allowed``), and making one needs a recent proof of identity, like other sensitive
actions (``reauthentication_required``).
"""

from __future__ import annotations

from django.conf import settings
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import access_tokens
from accounts.authentication import TokenAuth, request_origin
from accounts.second_factors import recent_authentication_require
from accounts.serializers import (
    TOKEN_TTL_DEFAULT,
    AccessTokenCreatedSerializer,
    AccessTokenCreateInputSerializer,
    AccessTokenSerializer,
)
from config import errors
from config.api import APIView
from config.openapi import AUTHENTICATION_ERRORS, error_responses

TOKEN_ERRORS = (*AUTHENTICATION_ERRORS, errors.PatNotAllowed)


@method_decorator(never_cache, name="dispatch")
class AccessTokenListView(APIView):
    @extend_schema(
        operation_id="auth_tokens_list",
        responses={200: AccessTokenSerializer(many=True), **error_responses(*TOKEN_ERRORS)},
        description="Your personal access tokens that are not revoked (expired ones too: see expiresAt).",
    )
    def get(self, request: Request) -> Response:
        return Response(
            AccessTokenSerializer(access_tokens.access_token_list(user=request.user), many=True).data
        )

    @extend_schema(
        operation_id="auth_tokens_create",
        request=AccessTokenCreateInputSerializer,
        responses={
            201: AccessTokenCreatedSerializer,
            **error_responses(
                errors.InvalidRequest,
                *TOKEN_ERRORS,
                errors.TokenScopeExceeded,
                errors.ReauthenticationRequired,
                notes={"invalid_request": "With `fields`: a name, expiresIn (at most PAT_MAX_TTL), clients."},
            ),
        },
        description="A new token for scripts and CI: `token` (qpt_…) is shown this once, only its hash is "
        "kept. It can do at most what you can do now from this session, narrowed to `clients`, on every "
        "API endpoint but tokens, members and account security, sent as `Authorization: Bearer`.",
    )
    def post(self, request: Request) -> Response:
        auth: TokenAuth = request.auth
        serializer = AccessTokenCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        recent_authentication_require(session_id=auth.session.session_id)
        token, secret = access_tokens.access_token_create(
            user=request.user,
            session_id=auth.session.session_id,
            facts=auth.session.facts,
            name=data["name"],
            expires_in=data.get("expiresIn", min(TOKEN_TTL_DEFAULT, settings.PAT_MAX_TTL)),
            clients=data["clients"],
            origin=request_origin(request),
        )
        token.token = secret
        return Response(AccessTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)


class AccessTokenDetailView(APIView):
    @extend_schema(
        operation_id="auth_tokens_revoke",
        responses={204: None, **error_responses(*TOKEN_ERRORS, errors.NotFound)},
        description="Revoke one of your tokens: refused from the next request on, here and at /validate.",
    )
    def delete(self, request: Request, token_id: int) -> Response:
        access_tokens.user_access_token_revoke(
            user=request.user, token_id=token_id, origin=request_origin(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
