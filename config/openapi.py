"""How the OpenAPI document describes errors: one component, documented from the typed errors.

``error_responses(errors.TokenNotValid, errors.AccountDisabled, ...)`` groups the given error
classes by status and lists each code with its default sentence, so an endpoint declares its
errors once, by class, and the description can never disagree with what is raised.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

from config import errors


class ErrorSerializer(serializers.Serializer):
    """The one error body (config/exceptions.py)."""

    code = serializers.CharField(help_text="Stable snake_case code, e.g. permission_denied.")
    detail = serializers.CharField(help_text="A sentence for people.")
    fields = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="Validation errors by field (400 invalid_request only).",
    )


RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before trying again.",
    "required": True,
    "schema": {"type": "integer", "minimum": 0},
}

# accounts.authentication.ExtendedTokenMiddleware: a Bearer access token whose claims are out of
# date (a grant, an email changed since it was signed) is answered with a fresh one.
EXTENDED_TOKEN_HEADER = {
    "description": "A fresh access token, when the Bearer access token presented carries out-of-date "
    "claims (a grant or the email changed since it was signed): use it from now on. Cookie clients get "
    "a new access cookie instead; personal access tokens never get one.",
    "schema": {"type": "string"},
}

# What every endpoint behind JWTAuthentication can answer besides its own errors.
AUTHENTICATION_ERRORS: tuple[type[errors.PortalError], ...] = (
    errors.NotAuthenticated,
    errors.TokenNotValid,
    errors.AccountDisabled,
    errors.CsrfFailed,
    errors.AuthUnavailable,
)


def error_responses(
    *error_classes: type[errors.PortalError], notes: Mapping[str, str] | None = None
) -> dict[int, OpenApiResponse]:
    """OpenAPI responses for these errors; ``notes`` replaces a code's sentence (``{"not_found": "..."}``)."""
    notes = notes or {}
    by_status: dict[int, list[str]] = defaultdict(list)
    for error_class in error_classes:
        code = error_class.default_code
        line = f"`{code}`: {notes.get(code) or error_class.default_detail}"
        if line not in by_status[error_class.status_code]:
            by_status[error_class.status_code].append(line)
    return {
        status_code: OpenApiResponse(ErrorSerializer, description="\n\n".join(lines))
        for status_code, lines in sorted(by_status.items())
    }


class PortalAutoSchema(AutoSchema):
    """Adds the errors every operation of a kind can answer, so views do not list them each:

    - ``not_acceptable`` (406) everywhere: a request whose ``Accept`` excludes JSON (but views
      that set ``ignores_accept``: a gateway's check answers JSON whatever its client accepts);
    - ``mfa_enrolment_required`` to the 403 of every authenticated endpoint that refuses an account
      the policy requires a second factor of until it has one: views that do not set
      ``allowed_before_enrolment`` (the authentication enforces it);
    - ``pat_not_allowed`` to the 403 of every authenticated endpoint that does not set
      ``accepts_personal_access_tokens`` (most of /api/auth/*, teams);
    - the ``Retry-After`` header to every 429, and ``additionalProperties: false`` to the request
      bodies of serializers that set ``refuses_unknown_fields``; a serializer's
      ``field_alternatives`` (``config.field_alternatives``) as ``oneOf`` or ``anyOf``.
    """

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return operation
        if not getattr(self.view, "ignores_accept", False):
            self._error_add(operation, errors.NotAcceptable)
        if self._refused_before_enrolment():
            self._error_add(operation, errors.MfaEnrolmentRequired)
        if self.view.get_authenticators() and not getattr(self.view, "accepts_personal_access_tokens", False):
            self._error_add(operation, errors.PatNotAllowed)
        if self.view.get_authenticators():
            for status_code, response in operation.get("responses", {}).items():
                if str(status_code).startswith("2"):
                    response.setdefault("headers", {})["X-Extended-Token"] = EXTENDED_TOKEN_HEADER
        throttled = operation.get("responses", {}).get(str(errors.Throttled.status_code))
        if throttled is not None:  # the contract: every 429 says when to try again
            throttled.setdefault("headers", {})["Retry-After"] = RETRY_AFTER_HEADER
        return operation

    def _map_basic_serializer(self, serializer, direction):  # noqa: ANN001, ANN202 - drf-spectacular's hook
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "request" and getattr(serializer, "refuses_unknown_fields", False):
            schema["additionalProperties"] = False
        alternatives = getattr(serializer, "field_alternatives", None)
        if direction == "request" and alternatives is not None:
            schema.update(alternatives.schema())
        return schema

    def _error_add(self, operation: dict, error: type[errors.PortalError]) -> None:
        line = f"`{error.default_code}`: {error.default_detail}"
        responses = operation.setdefault("responses", {})
        documented = responses.get(str(error.status_code))
        if documented is None:
            content = {
                "application/json": {"schema": self.resolve_serializer(ErrorSerializer, "response").ref}
            }
            responses[str(error.status_code)] = {"content": content, "description": line}
        elif line not in documented.get("description", ""):
            documented["description"] = f"{documented.get('description', '')}\n\n{line}".strip()

    def _refused_before_enrolment(self) -> bool:
        view = self.view
        return not getattr(view, "allowed_before_enrolment", False) and bool(view.get_authenticators())
