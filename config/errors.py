"""The API's error vocabulary: one typed exception per contract code.

Every error a client can see is one of these classes (or a subclass that only changes the
sentence). Each carries its HTTP status, its stable ``code`` and a default ``detail``;
``config.exceptions.api_exception_handler`` turns any of them into the one error body
``{"code", "detail"}`` (plus ``"fields"``), and ``config.openapi.error_responses`` documents
them from the same classes, so no code or sentence is typed twice.

They subclass DRF's ``APIException`` so they can be raised anywhere, including inside an
authentication class (DRF re-raises only ``APIException`` from there). This module imports
nothing but DRF's exceptions: the authentication class is loaded while ``rest_framework.views``
is being imported, and must be able to import this.
"""

from __future__ import annotations

import math
from typing import Any

from rest_framework import status
from rest_framework.exceptions import APIException

ECHO_MAX_CHARS = 200  # what an error repeats of a request: field names, values, keys


def echo_bounded(text: str) -> str:
    """``text`` as an error may repeat it: cut in the middle past ECHO_MAX_CHARS, so both ends show
    (a field path and its last part, a refused value and "is not a valid choice")."""
    if len(text) <= ECHO_MAX_CHARS:
        return text
    head = ECHO_MAX_CHARS // 2
    return f"{text[:head]}…{text[-(ECHO_MAX_CHARS - head - 1) :]}"


class PortalError(APIException):
    """Base of every error the API answers with. Subclasses set the three class attributes."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    default_code: str = "invalid_request"
    default_detail: str = "The request is not valid."
    retry_after: int | None = None  # seconds, sent as Retry-After (outages, throttling)

    def __init__(
        self,
        detail: str | None = None,
        *,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail if detail is not None else self.default_detail, self.default_code)
        self.fields = fields or None
        self.headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
        self.headers.update(headers or {})

    @property
    def code(self) -> str:
        return self.default_code

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "detail": str(self.detail)}
        if self.fields:
            body["fields"] = self.fields
        return body


# --- 400 ------------------------------------------------------------------------------------


class InvalidRequest(PortalError):
    """Malformed JSON, missing or invalid fields (with ``fields``)."""


class MalformedJson(InvalidRequest):
    default_detail = "The request body is not valid JSON."


class NestedTooDeep(InvalidRequest):
    default_detail = "The request body is nested too deeply."


class NotUnicodeText(InvalidRequest):
    default_detail = (
        "The request body holds a lone surrogate escape (such as \\ud800), which is not Unicode text."
    )


class NulCharacter(InvalidRequest):
    default_detail = "The request body holds a NUL character (\\u0000), which no field takes."


class RepeatedKey(InvalidRequest):
    """An object in the body names a key twice: readers disagree on which value counts (RFC 8259 §4)."""

    default_detail = "The request body repeats a key: send each key once."

    def __init__(self, *, key: str) -> None:
        super().__init__(f'The request body repeats the key "{echo_bounded(key)}": send each key once.')


# --- 401 ------------------------------------------------------------------------------------


class InvalidCredentials(PortalError):
    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_credentials"
    default_detail = "The email or password is not correct."


class InvalidSecondFactor(PortalError):
    """A wrong, reused or expired second-factor code or passkey assertion."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_second_factor"
    default_detail = "The code is not valid, or was already used. Enter the current code."


class InvalidGoogleToken(PortalError):
    """Signature, audience, issuer, expiry, key id or authorized party do not check out."""

    status_code = status.HTTP_401_UNAUTHORIZED
    default_code = "invalid_google_token"
    default_detail = "The Google sign-in could not be verified; please sign in with Google again."


# --- 403 ------------------------------------------------------------------------------------


class NotAuthenticated(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "not_authenticated"
    default_detail = "Authentication credentials were not provided."


class TokenNotValid(PortalError):
    """Invalid, expired or wrong-type token; the browser app refreshes once on this code."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "token_not_valid"
    default_detail = "Token is invalid or expired."


class SessionEnded(TokenNotValid):
    default_detail = "The session has ended; sign in again."


class SessionIdle(TokenNotValid):
    default_detail = "The session expired after inactivity; sign in again."


class RefreshTokenMissing(TokenNotValid):
    default_detail = "No refresh token was sent: the refresh cookie, or Authorization: Bearer <refreshToken>."


class RefreshTokenReused(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "refresh_token_reused"
    default_detail = "This refresh token was already used; the session has been revoked for safety."


class AccountDisabled(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "account_disabled"
    default_detail = "This account is disabled."


class PermissionDenied(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "permission_denied"
    default_detail = "Insufficient permissions"


class CsrfFailed(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "csrf_failed"
    default_detail = "CSRF verification failed; reload the page and try again."


class ForeignOrigin(CsrfFailed):
    default_detail = "This origin may not use the API with the browser's cookies."


class MfaTokenInvalid(PortalError):
    """The ``mfaToken`` of a sign-in step is unknown, used, expired, or worn out by wrong codes."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "mfa_token_invalid"
    default_detail = "This sign-in step has expired or was already used; please sign in again."


class MfaEnrolmentRequired(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "mfa_enrolment_required"
    default_detail = "Set up a second factor (an authenticator app or a passkey) before using the portal."


class ReauthenticationRequired(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "reauthentication_required"
    default_detail = "Confirm it is you: enter your password or a second factor again, then retry."


class EmailNotVerified(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "email_not_verified"
    default_detail = "Google has not verified the email address of this account."


class NoAccount(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "no_account"
    default_detail = "No account here belongs to this Google account; ask an operator for access."


class StepUpRequired(PortalError):
    """A client the user belongs to, whose sign-in policy this session does not satisfy."""

    status_code = status.HTTP_403_FORBIDDEN
    default_code = "step_up_required"
    default_detail = "This client asks for another way of signing in; see GET /api/auth/permissions."


class RoleEscalation(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "role_escalation"
    default_detail = "Nobody can grant a role above their own."


class InvitationEmailMismatch(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "invitation_email_mismatch"
    default_detail = "This invitation is for another email address: sign in as its addressee to accept it."


class SignUpMethodNotAllowed(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "sign_up_method_not_allowed"
    default_detail = (
        "An account made this way could not meet the client's sign-in policy: join in one of the "
        "ways the invitation's preview offers (signUpMethods)."
    )


class TokenScopeExceeded(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "token_scope_exceeded"
    default_detail = "A personal access token can do at most what you can do now, from this session."


class PatNotAllowed(PortalError):
    status_code = status.HTTP_403_FORBIDDEN
    default_code = "pat_not_allowed"
    default_detail = (
        "Personal access tokens cannot be used here (tokens, members, second factors and other "
        "account settings need a signed-in session)."
    )


# --- 404, 405, 406, 409, 415, 429 -----------------------------------------------------------


class NotFound(PortalError):
    status_code = status.HTTP_404_NOT_FOUND
    default_code = "not_found"
    default_detail = "Not found."


class ClusterDecommissioned(NotFound):
    default_detail = "This cluster was decommissioned: it is stopped for good, and nothing about it can be read or changed."


class StorageExpansionNotFound(NotFound):
    default_detail = "No storage expansion is waiting for an operator on this cluster."


class MethodNotAllowed(PortalError):
    status_code = status.HTTP_405_METHOD_NOT_ALLOWED
    default_code = "method_not_allowed"
    default_detail = "This method is not allowed here."


class NotAcceptable(PortalError):
    status_code = status.HTTP_406_NOT_ACCEPTABLE
    default_code = "not_acceptable"
    default_detail = "The API answers only with JSON."


class GitopsValuesConflict(PortalError):
    """A values file in git was edited by hand so that the portal's keys cannot be set in it."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "gitops_values_conflict"
    default_detail = (
        "The GitOps repository was edited by hand in a way the change cannot be applied to; "
        "nothing was changed. Fix the file in git, then try again."
    )

    def __init__(self, *, problem: str | None = None) -> None:
        super().__init__(
            f"The GitOps repository was edited by hand in a way the change cannot be applied to: "
            f"{problem.rstrip('.')}. Nothing was changed; fix the file in git, then try again."
            if problem
            else None
        )


class ConfirmationRequired(PortalError):
    """A change that can lose data (scaling a cluster down) was sent without ``"confirm": true``."""

    status_code = status.HTTP_409_CONFLICT
    default_code = "confirmation_required"
    default_detail = (
        'This change can lose data: nothing was changed. Send it again with "confirm": true to go ahead.'
    )


class StorageExpansionPending(PortalError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "storage_expansion_pending"
    default_detail = (
        "A storage expansion of this cluster is already waiting for an operator: nothing was changed. "
        "Cancel it before asking for another size."
    )


class RotationInProgress(PortalError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "rotation_in_progress"
    default_detail = "A key rotation of this cluster is in progress: nothing was changed. Finish it before starting another."


class NoRotationInProgress(PortalError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "no_rotation_in_progress"
    default_detail = "No key rotation of this cluster is in progress."


class LastAdmin(PortalError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "last_admin"
    default_detail = "A client keeps at least one admin: make someone else an admin first."


class AlreadyMember(PortalError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "already_member"
    default_detail = "This person is already a member of the client."


class InvitationNotPending(PortalError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "invitation_not_pending"
    default_detail = "Only a pending or expired invitation can be revoked."


class AccountExists(PortalError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "account_exists"
    default_detail = "An account with this email address exists: sign in, then accept the invitation."


class AlreadyEnrolled(PortalError):
    status_code = status.HTTP_409_CONFLICT
    default_code = "already_enrolled"
    default_detail = "An authenticator app is already set up; remove it before setting up another."


class InvitationInvalid(PortalError):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invitation_invalid"
    default_detail = (
        "This invitation is not valid: it was used, revoked or has expired, or the link was altered. "
        "Ask an admin of the client for a new one."
    )


class InvalidResetToken(PortalError):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_reset_token"
    default_detail = "This password reset link is not valid: it was used, it expired, or it was altered. Ask for a new one."


class RequestTooLarge(PortalError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"
    default_detail = "The request body is too large."


class UnsupportedMediaType(PortalError):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE
    default_code = "unsupported_media_type"
    default_detail = "Send the request body as application/json."


class Throttled(PortalError):
    """Too many attempts; ``Retry-After`` says when to try again."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "throttled"
    default_detail = "Too many attempts; try again later."

    def __init__(self, *, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        detail = (
            f"Too many attempts; try again in {_wait_text(retry_after)}." if retry_after is not None else None
        )
        super().__init__(detail, headers=headers)


def _wait_text(seconds: int) -> str:
    return f"{math.ceil(seconds / 60)} minutes" if seconds > 90 else f"{seconds} second{'s' * (seconds != 1)}"


# --- 500, 503 -------------------------------------------------------------------------------


class ServerError(PortalError):
    """Never raised on purpose: the body of Django's 500 handler under /api/."""

    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    default_code = "server_error"
    default_detail = "An unexpected error occurred; it has been logged."


class AuthUnavailable(PortalError):
    """The session store (cache) cannot be reached: authentication fails closed."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "auth_unavailable"
    default_detail = "Sign-in is temporarily unavailable; try again shortly."
    retry_after = 5


class DatabaseUnavailable(PortalError):
    """The database cannot be reached (connection refused or lost): nothing was read or changed."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "database_unavailable"
    default_detail = "The service is temporarily unavailable; try again shortly."
    retry_after = 5


class DatabaseBusy(DatabaseUnavailable):
    """The database gave the request's transaction up for another's (a deadlock, a lock wait that
    timed out): not an outage; nothing was changed, and sending it again will do."""

    default_code = "database_busy"
    default_detail = (
        "Another change was being made to the same data at that moment; nothing was changed. Try again."
    )
    retry_after = 1


class AuditUnavailable(PortalError):
    """What must be recorded to happen at all (a reveal of secrets) could not be: it did not happen."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "audit_unavailable"
    default_detail = (
        "The access could not be recorded in the audit trail, so nothing was revealed; try again shortly."
    )
    retry_after = 5


class GoogleUnavailable(PortalError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "google_unavailable"
    default_detail = "Google sign-in is unavailable right now; please try again in a minute."


class EmailUnavailable(PortalError):
    """An email the request exists to send cannot be sent: nothing was changed."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "email_unavailable"
    default_detail = (
        "The invitation cannot be emailed: the portal's public address (PUBLIC_URL) is not "
        "configured; nothing was changed. Ask an operator."
    )


class SecretsUnavailable(PortalError):
    """A secret stored encrypted cannot be decrypted with FIELD_ENCRYPTION_KEY: fails closed."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "secrets_unavailable"
    default_detail = (
        "A stored secret cannot be decrypted with the portal's configured encryption keys; "
        "nothing was changed. Ask an operator."
    )


class GitopsUnavailable(PortalError):
    """Not even a local commit could be made: nothing was changed."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "gitops_unavailable"
    default_detail = (
        "The change could not be committed to the GitOps repository; nothing was changed. "
        "Try again in a moment."
    )
