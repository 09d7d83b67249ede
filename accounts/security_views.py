"""The account-security API: the second step of a sign-in, passkeys, factors, re-authentication
and password change (see README "Account security"); a forgotten password is reset in
``accounts.password_reset_views``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import factor_enrolment, passwords, second_factors
from accounts.admin_site import admin_session_bind
from accounts.authentication import relying_party, request_origin
from accounts.devices import device_cookie_renewed, device_presented, device_remember
from accounts.security_serializers import (
    CodeInputSerializer,
    MfaTokenInputSerializer,
    MfaVerifyInputSerializer,
    PasskeyCeremonySerializer,
    PasskeyRegisterInputSerializer,
    PasskeyRenameInputSerializer,
    PasskeySerializer,
    PasskeySignInInputSerializer,
    PasswordChangeInputSerializer,
    ReauthenticateInputSerializer,
    RecoveryCodesSerializer,
    SecurityOverviewSerializer,
    TotpEnrolmentSerializer,
    WebAuthnOptionsSerializer,
)
from accounts.selectors import security_overview
from accounts.serializers import DELIVERY_BODY, TokenResponseSerializer
from accounts.throttles import LoginIPThrottle, PasswordChangeThrottle
from accounts.views import SignInAPIView, login_response
from config import errors
from config.api import APIView
from config.openapi import AUTHENTICATION_ERRORS, PortalAutoSchema, error_responses

SIGN_IN_STEP_ERRORS = (
    errors.InvalidRequest,
    errors.InvalidSecondFactor,
    errors.MfaTokenInvalid,
    errors.AccountDisabled,
    errors.ForeignOrigin,
    errors.Throttled,
    errors.AuthUnavailable,
    errors.SecretsUnavailable,
)
FACTOR_ERRORS = (*AUTHENTICATION_ERRORS, errors.ReauthenticationRequired)


class _DeleteWithBodySchema(PortalAutoSchema):
    """drf-spectacular documents a request body for POST, PUT and PATCH only; a DELETE that takes
    one (the code that removes the authenticator app) declares it like a POST would."""

    def _get_request_body(self, direction: str = "request"):
        if self.method != "DELETE":
            return super()._get_request_body(direction)
        self.method = "POST"
        try:
            return super()._get_request_body(direction)
        finally:
            self.method = "DELETE"


def _body_documented(method):
    """Mark a DELETE handler whose body the OpenAPI document shows (read by ``extend_schema``)."""
    method.schema = _DeleteWithBodySchema
    return method


class SensitiveAPIView(APIView):
    """Needs a recent proof of identity (REAUTHENTICATION_WINDOW): else 403 reauthentication_required."""

    allowed_before_enrolment = True

    def initial(self, request: Request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        if request.method not in ("GET", "HEAD"):
            second_factors.recent_authentication_require(session_id=request.auth.session.session_id)


# --- The second step of a sign-in, and passkey sign-in -------------------------------------


class MfaVerifyView(SignInAPIView):
    throttle_classes: list = []  # counted per challenge and per account instead

    @extend_schema(
        operation_id="auth_mfa_verify",
        request=MfaVerifyInputSerializer,
        responses={200: TokenResponseSerializer, **error_responses(*SIGN_IN_STEP_ERRORS)},
        auth=[],
    )
    def post(self, request: Request) -> Response:
        serializer = MfaVerifyInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        issued = second_factors.second_factor_verify(
            mfa_token=data["mfaToken"],
            code=data.get("code"),
            assertion=data.get("webauthn"),
            rp=relying_party(request),
            origin=request_origin(request),
            device=device_presented(request),
        )
        response = login_response(issued=issued, token_delivery=data["tokenDelivery"])
        in_body = data["tokenDelivery"] == DELIVERY_BODY
        device_remember(request, response, user=issued.user, in_body=in_body, second_factor=True)
        return response


class MfaOptionsView(SignInAPIView):
    # Per address only: there is no account in the request to count against.
    throttle_classes = [LoginIPThrottle]

    @extend_schema(
        operation_id="auth_mfa_options",
        request=MfaTokenInputSerializer,
        responses={200: WebAuthnOptionsSerializer, **error_responses(*SIGN_IN_STEP_ERRORS)},
        auth=[],
        description="Passkey options for the second step of a sign-in.",
    )
    def post(self, request: Request) -> Response:
        serializer = MfaTokenInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        options = second_factors.second_factor_options(
            mfa_token=serializer.validated_data["mfaToken"], rp=relying_party(request)
        )
        return Response({"publicKey": options})


class PasskeyOptionsView(SignInAPIView):
    # Anyone may ask, and each answer is a row: per address, like a login.
    throttle_classes = [LoginIPThrottle]

    @extend_schema(
        operation_id="auth_passkey_options",
        request=None,
        responses={
            200: PasskeyCeremonySerializer,
            **error_responses(errors.ForeignOrigin, errors.Throttled, errors.AuthUnavailable),
        },
        auth=[],
    )
    def post(self, request: Request) -> Response:
        token, options = second_factors.passkey_sign_in_options(rp=relying_party(request))
        return Response({"token": token, "publicKey": options})


class PasskeySignInView(SignInAPIView):
    throttle_classes: list = []

    @extend_schema(
        operation_id="auth_passkey",
        request=PasskeySignInInputSerializer,
        responses={200: TokenResponseSerializer, **error_responses(*SIGN_IN_STEP_ERRORS)},
        auth=[],
        description="Sign in with a passkey alone (a discoverable credential, with user verification).",
    )
    def post(self, request: Request) -> Response:
        serializer = PasskeySignInInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        issued = second_factors.passkey_sign_in(
            token=data["token"],
            assertion=data["webauthn"],
            rp=relying_party(request),
            origin=request_origin(request),
        )
        return login_response(issued=issued, token_delivery=data["tokenDelivery"])


# --- Factors --------------------------------------------------------------------------------


class SecurityOverviewView(APIView):
    allowed_before_enrolment = True

    @extend_schema(
        operation_id="auth_mfa",
        responses={200: SecurityOverviewSerializer, **error_responses(*AUTHENTICATION_ERRORS)},
    )
    def get(self, request: Request) -> Response:
        overview = security_overview(user_id=request.user.pk, session_id=request.auth.session.session_id)
        return Response(
            SecurityOverviewSerializer(
                {
                    "totp": overview.totp,
                    "passkeys": overview.passkeys,
                    "recoveryCodesLeft": overview.recovery_codes_left,
                    "mfaRequired": overview.mfa_required,
                    "hasPassword": overview.has_password,
                    "reauthenticatedUntil": overview.reauthenticated_until,
                }
            ).data
        )


class TotpView(SensitiveAPIView):
    @extend_schema(
        operation_id="auth_mfa_totp_start",
        request=None,
        responses={200: TotpEnrolmentSerializer, **error_responses(*FACTOR_ERRORS, errors.AlreadyEnrolled)},
        description="Start setting up an authenticator app: it counts once confirmed with a code.",
    )
    def post(self, request: Request) -> Response:
        enrolment = factor_enrolment.totp_enrol_start(user_id=request.user.pk)
        body = {"secret": enrolment.secret, "otpauthUri": enrolment.uri, "qrCode": enrolment.qr_svg}
        return Response(TotpEnrolmentSerializer(body).data, headers={"Cache-Control": "no-store"})

    @extend_schema(
        operation_id="auth_mfa_totp_remove",
        request=CodeInputSerializer,
        responses={
            204: None,
            **error_responses(
                errors.InvalidRequest,
                errors.InvalidSecondFactor,
                errors.Throttled,
                *FACTOR_ERRORS,
                errors.NotFound,
                errors.SecretsUnavailable,
                notes={"invalid_second_factor": "The code is wrong or was used (counted like at sign-in)."},
            ),
        },
        description="Turn the authenticator app off: takes a current code from it, or a recovery code.",
    )
    @_body_documented
    def delete(self, request: Request) -> Response:
        serializer = CodeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        factor_enrolment.totp_remove(
            user_id=request.user.pk,
            code=serializer.validated_data["code"],
            origin=request_origin(request),
            session_id=request.auth.session.session_id,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TotpConfirmView(APIView):
    allowed_before_enrolment = True

    @extend_schema(
        operation_id="auth_mfa_totp_confirm",
        request=CodeInputSerializer,
        responses={
            200: RecoveryCodesSerializer,
            **error_responses(
                errors.InvalidRequest,
                errors.Throttled,
                *AUTHENTICATION_ERRORS,
                errors.SecretsUnavailable,
                notes={
                    "invalid_request": "No set-up is waiting, or the code is wrong or was used "
                    "(a wrong code is counted like at sign-in)."
                },
            ),
        },
        description="The first code turns the app on; the answer holds 10 recovery codes, shown once.",
    )
    def post(self, request: Request) -> Response:
        serializer = CodeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        codes = factor_enrolment.totp_enrol_confirm(
            user_id=request.user.pk,
            session_id=request.auth.session.session_id,
            code=serializer.validated_data["code"],
            origin=request_origin(request),
        )
        return Response({"recoveryCodes": codes}, headers={"Cache-Control": "no-store"})


class RecoveryCodesView(SensitiveAPIView):
    @extend_schema(
        operation_id="auth_mfa_recovery_codes",
        request=None,
        responses={200: RecoveryCodesSerializer, **error_responses(errors.InvalidRequest, *FACTOR_ERRORS)},
        description="Ten new recovery codes; the old ones stop working.",
    )
    def post(self, request: Request) -> Response:
        codes = factor_enrolment.recovery_codes_regenerate(
            user_id=request.user.pk, origin=request_origin(request)
        )
        return Response({"recoveryCodes": codes}, headers={"Cache-Control": "no-store"})


class PasskeyListView(SensitiveAPIView):
    @extend_schema(
        operation_id="auth_mfa_passkeys_add",
        request=PasskeyRegisterInputSerializer,
        responses={
            201: PasskeySerializer,
            **error_responses(errors.InvalidRequest, errors.MfaTokenInvalid, *FACTOR_ERRORS),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = PasskeyRegisterInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        passkey = factor_enrolment.passkey_register(
            user_id=request.user.pk,
            session_id=request.auth.session.session_id,
            token=data["token"],
            credential=data["credential"],
            name=data["name"],
            rp=relying_party(request),
            origin=request_origin(request),
        )
        return Response(PasskeySerializer(passkey).data, status=status.HTTP_201_CREATED)


class PasskeyRegistrationOptionsView(SensitiveAPIView):
    @extend_schema(
        operation_id="auth_mfa_passkeys_options",
        request=None,
        responses={200: PasskeyCeremonySerializer, **error_responses(*FACTOR_ERRORS)},
    )
    def post(self, request: Request) -> Response:
        token, options = factor_enrolment.passkey_registration_options(
            user_id=request.user.pk, session_id=request.auth.session.session_id, rp=relying_party(request)
        )
        return Response({"token": token, "publicKey": options})


class PasskeyDetailView(SensitiveAPIView):
    @extend_schema(
        operation_id="auth_mfa_passkeys_rename",
        request=PasskeyRenameInputSerializer,
        responses={
            200: PasskeySerializer,
            **error_responses(errors.InvalidRequest, *FACTOR_ERRORS, errors.NotFound),
        },
    )
    def patch(self, request: Request, passkey_id: int) -> Response:
        serializer = PasskeyRenameInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        passkey = factor_enrolment.passkey_rename(
            user_id=request.user.pk, passkey_id=passkey_id, name=serializer.validated_data["name"]
        )
        return Response(PasskeySerializer(passkey).data)

    @extend_schema(
        operation_id="auth_mfa_passkeys_remove",
        responses={204: None, **error_responses(*FACTOR_ERRORS, errors.NotFound)},
    )
    def delete(self, request: Request, passkey_id: int) -> Response:
        factor_enrolment.passkey_remove(
            user_id=request.user.pk, passkey_id=passkey_id, origin=request_origin(request)
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReauthenticateView(APIView):
    allowed_before_enrolment = True

    @extend_schema(
        operation_id="auth_reauthenticate",
        request=ReauthenticateInputSerializer,
        responses={
            204: None,
            **error_responses(
                errors.InvalidRequest,
                errors.InvalidSecondFactor,
                errors.MfaTokenInvalid,
                errors.Throttled,
                *AUTHENTICATION_ERRORS,
                errors.SecretsUnavailable,
                notes={
                    "mfa_token_invalid": "The passkey options (token) expired, were used, or are another session's.",
                    "invalid_request": "fields.password: the account has a second factor, which it must use.",
                },
            ),
        },
        description="Prove it is still you before a sensitive action: a TOTP or recovery code, a passkey (`token` "
        "from /api/auth/reauthenticate/options, `webauthn`), or the password of an account without a factor.",
    )
    def post(self, request: Request) -> Response:
        serializer = ReauthenticateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        passkey = None
        if "webauthn" in data:
            passkey = second_factors.PasskeyProof(
                token=data["token"], assertion=data["webauthn"], rp=relying_party(request)
            )
        second_factors.reauthenticate(
            user_id=request.user.pk,
            session_id=request.auth.session.session_id,
            password=data.get("password"),
            code=data.get("code"),
            passkey=passkey,
            origin=request_origin(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReauthenticationOptionsView(APIView):
    allowed_before_enrolment = True

    @extend_schema(
        operation_id="auth_reauthenticate_options",
        request=None,
        responses={
            200: PasskeyCeremonySerializer,
            **error_responses(errors.InvalidRequest, *AUTHENTICATION_ERRORS),
        },
        description="Passkey options to re-authenticate with one of your passkeys (bound to this session).",
    )
    def post(self, request: Request) -> Response:
        token, options = second_factors.reauthentication_options(
            user_id=request.user.pk, session_id=request.auth.session.session_id, rp=relying_party(request)
        )
        return Response({"token": token, "publicKey": options})


# --- Passwords -------------------------------------------------------------------------------


class PasswordChangeView(APIView):
    allowed_before_enrolment = True
    throttle_classes = [PasswordChangeThrottle]

    @extend_schema(
        operation_id="auth_password_change",
        request=PasswordChangeInputSerializer,
        responses={
            204: None,
            **error_responses(errors.InvalidRequest, errors.Throttled, *AUTHENTICATION_ERRORS),
        },
        description="Both passwords as base64 of UTF-8, like login. Every other session ends; this one stays.",
    )
    def post(self, request: Request) -> Response:
        serializer = PasswordChangeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = passwords.password_change(
            user_id=request.user.pk,
            session_id=request.auth.session.session_id,
            current_password=serializer.validated_data["currentPassword"],
            new_password=serializer.validated_data["newPassword"],
            origin=request_origin(request),
        )
        return device_cookie_renewed(request, Response(status=status.HTTP_204_NO_CONTENT), user=user)


class AdminSessionView(APIView):
    """The bridge to the Django admin: a staff user signed in here (second factor included) gets an
    admin session, bound to this portal session (it ends with it). The admin's own password form is
    switched off, so this is the only way in."""

    @extend_schema(
        operation_id="auth_admin_session",
        request=None,
        responses={204: None, **error_responses(*AUTHENTICATION_ERRORS, errors.PermissionDenied)},
    )
    def post(self, request: Request) -> Response:
        if not request.user.is_staff:
            raise errors.PermissionDenied()
        admin_session_bind(
            request._request, user_id=request.user.pk, session_id=request.auth.session.session_id
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
