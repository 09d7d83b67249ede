"""A forgotten password: the link by email, the link's check when the page opens, the new password
(see README "Account security")."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import passwords
from accounts.authentication import request_origin
from accounts.security_serializers import (
    PasswordResetCheckInputSerializer,
    PasswordResetCheckSerializer,
    PasswordResetConfirmInputSerializer,
    PasswordResetInputSerializer,
)
from accounts.throttles import PublicIPThrottle, password_reset_due
from accounts.views import PublicAPIView, SignInAPIView
from config import errors
from config.openapi import error_responses


class PasswordResetView(SignInAPIView):
    throttle_classes = [PublicIPThrottle]

    @extend_schema(
        operation_id="auth_password_reset",
        request=PasswordResetInputSerializer,
        responses={
            202: None,
            **error_responses(
                errors.InvalidRequest, errors.Throttled, errors.ForeignOrigin, errors.AuthUnavailable
            ),
        },
        auth=[],
        description="202 for every valid address, whether or not it has an account; an email follows when it does.",
    )
    def post(self, request: Request) -> Response:
        serializer = PasswordResetInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if password_reset_due(request, self):  # else answered like any other, and nothing is done
            passwords.password_reset_request(
                email=serializer.validated_data["email"], origin=request_origin(request)
            )
        return Response(status=status.HTTP_202_ACCEPTED)


class PasswordResetCheckView(PublicAPIView):
    # Per address, like an invitation's preview: a link's token is hopeless to guess anyway.
    throttle_classes = [PublicIPThrottle]

    @extend_schema(
        operation_id="auth_password_reset_check",
        request=PasswordResetCheckInputSerializer,
        responses={
            200: PasswordResetCheckSerializer,
            **error_responses(
                errors.InvalidRequest, errors.InvalidResetToken, errors.Throttled, errors.AuthUnavailable
            ),
        },
        auth=[],
        description="Whether a reset link (its uid and token) still works, before its user types a new "
        "password; changes nothing. Answers the account's email, which the link's holder was sent.",
    )
    def post(self, request: Request) -> Response:
        serializer = PasswordResetCheckInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email = passwords.password_reset_email(**serializer.validated_data)
        return Response(PasswordResetCheckSerializer({"email": email}).data)


class PasswordResetConfirmView(PublicAPIView):
    # Counted like the check: a weak new password refused (400) after the link was accepted
    # would otherwise answer the check's question without its limit.
    throttle_classes = [PublicIPThrottle]

    @extend_schema(
        operation_id="auth_password_reset_confirm",
        request=PasswordResetConfirmInputSerializer,
        responses={
            204: None,
            **error_responses(
                errors.InvalidRequest, errors.InvalidResetToken, errors.Throttled, errors.AuthUnavailable
            ),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = PasswordResetConfirmInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        passwords.password_reset_confirm(
            uid=data["uid"],
            token=data["token"],
            new_password=data["newPassword"],
            origin=request_origin(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
