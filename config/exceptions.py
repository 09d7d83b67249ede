"""The one error handler: every failure under /api/ answers ``{"code", "detail"}`` (+ ``"fields"``).

Services and the authentication class raise the typed errors of :mod:`config.errors`; DRF's
own exceptions (parse errors, throttling, wrong method...) and Django's ``ValidationError``,
``Http404`` and ``PermissionDenied`` are translated into them here, so views never build an
error body. Anything else is a bug: Django's 500 handler answers the JSON 500 body.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from django.urls import reverse
from django.views import defaults
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.debug import SafeExceptionReporterFilter
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from config import errors
from config.admin_access import admin_permission_denied
from config.crypto import FieldDecryptionError
from config.outages import DATABASE_ERRORS, database_failure_report

logger = logging.getLogger(__name__)

NON_FIELD_KEY = "nonFieldErrors"


ERROR_FIELDS_MAX = 50  # entries of "fields": more is never for a person to read


def validation_fields(data: Any) -> dict[str, list[str]]:
    """DRF's (or Django's) nested error structure as ``{"field": ["message", ...]}``, bounded.

    Names and messages can repeat the request (an unknown key, a refused choice): each is cut to
    ``echo_bounded`` and at most ERROR_FIELDS_MAX fields are listed, so that no answer, even to
    an anonymous caller, grows with what was sent.
    """
    flat = list(_fields_flattened(data).items())
    fields = {
        errors.echo_bounded(name): [errors.echo_bounded(message) for message in messages]
        for name, messages in flat[:ERROR_FIELDS_MAX]
    }
    if len(flat) > ERROR_FIELDS_MAX:
        left_out = f"Errors in {len(flat) - ERROR_FIELDS_MAX:,} more fields are not listed."
        fields[NON_FIELD_KEY] = [*fields.get(NON_FIELD_KEY, []), left_out]
    return fields


def _fields_flattened(data: Any, prefix: str = "") -> dict[str, list[str]]:
    if isinstance(data, dict):
        fields: dict[str, list[str]] = {}
        for key, value in data.items():
            top_level_non_field = not prefix and key in {"non_field_errors", NON_FIELD_ERRORS}
            name = NON_FIELD_KEY if top_level_non_field else (f"{prefix}.{key}" if prefix else str(key))
            fields.update(_fields_flattened(value, name))
        return fields
    if isinstance(data, list) and all(isinstance(item, str) for item in data):
        return {prefix or NON_FIELD_KEY: [str(item) for item in data]}
    if isinstance(data, list):
        fields = {}
        for index, item in enumerate(data):
            fields.update(_fields_flattened(item, f"{prefix}.{index}" if prefix else str(index)))
        return fields
    return {prefix or NON_FIELD_KEY: [str(data)]}


def _django_validation_fields(exc: DjangoValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return validation_fields(exc.message_dict)
    return {NON_FIELD_KEY: [str(message) for message in exc.messages]}


def _as_portal_error(exc: Exception, request: HttpRequest | None) -> errors.PortalError | None:
    """The typed error this exception means, or None for a bug."""
    if isinstance(exc, errors.PortalError):
        return exc
    if isinstance(exc, DATABASE_ERRORS):
        return (
            errors.DatabaseBusy() if database_failure_report(exc, request) else errors.DatabaseUnavailable()
        )
    if isinstance(exc, FieldDecryptionError):
        return errors.SecretsUnavailable()
    if isinstance(exc, DjangoValidationError):
        return errors.InvalidRequest(fields=_django_validation_fields(exc))
    if isinstance(exc, exceptions.ValidationError):
        return errors.InvalidRequest(fields=validation_fields(exc.detail))
    if isinstance(exc, exceptions.Throttled):
        return errors.Throttled(retry_after=math.ceil(exc.wait) if exc.wait is not None else None)
    if isinstance(exc, exceptions.MethodNotAllowed):
        return errors.MethodNotAllowed(str(exc.detail))
    translations: tuple[tuple[type[Exception], type[errors.PortalError]], ...] = (
        (RequestDataTooBig, errors.RequestTooLarge),
        (exceptions.ParseError, errors.MalformedJson),
        (exceptions.NotAuthenticated, errors.NotAuthenticated),
        (exceptions.AuthenticationFailed, errors.TokenNotValid),
        (exceptions.PermissionDenied, errors.PermissionDenied),
        (DjangoPermissionDenied, errors.PermissionDenied),
        (exceptions.NotFound, errors.NotFound),
        (Http404, errors.NotFound),
        (exceptions.NotAcceptable, errors.NotAcceptable),
        (exceptions.UnsupportedMediaType, errors.UnsupportedMediaType),
    )
    for source, target in translations:
        if isinstance(exc, source):
            return target()
    return None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    request = getattr(context.get("request"), "_request", None)
    error = _as_portal_error(exc, request)
    if error is None:
        return None  # a bug: Django's handler500 answers with the JSON 500 body
    if isinstance(error, errors.SecretsUnavailable):
        # Raised here or by a service that undid a change: FIELD_ENCRYPTION_KEY lost the secret a
        # value was encrypted with, and only an operator can restore it.
        logger.error(
            "A stored secret cannot be decrypted with FIELD_ENCRYPTION_KEY (%s): restore the secret "
            "it was encrypted with.",
            request.path if request is not None else "?",
        )
    if error.status_code == 503 and request is not None:
        # A dependency outage: its reporter logs it once per burst, not once per response.
        request.dependency_outage = error.code
    set_rollback()
    return Response(error.body(), status=error.status_code, headers=error.headers)


# --- Django-level handlers (outside DRF views) ----------------------------------------------


def is_api_path(path: str) -> bool:
    return path.startswith(("/api/", "/.well-known/")) or path in ("/api", "/.well-known")


def error_json(error: errors.PortalError) -> JsonResponse:
    return JsonResponse(error.body(), status=error.status_code, headers=error.headers)


@csrf_exempt  # nothing here changes state: an unknown route is a 404 to every method, cookies or not
def json_not_found(request, exception=None) -> JsonResponse:
    return error_json(errors.NotFound())


def handler404(request, exception=None):
    if is_api_path(request.path):
        return json_not_found(request, exception)
    return defaults.page_not_found(request, exception)


def handler500(request):
    if is_api_path(request.path):
        return error_json(errors.ServerError())
    return defaults.server_error(request)


def handler403(request, exception=None):
    if is_api_path(request.path):
        return error_json(errors.PermissionDenied())
    if (
        request.path.startswith(reverse("admin:index"))
        and getattr(request, "user", None)
        and request.user.is_staff
    ):
        return admin_permission_denied(request)
    return defaults.permission_denied(request, exception)


def handler400(request, exception=None):
    if is_api_path(request.path):
        too_large = isinstance(exception, RequestDataTooBig)
        return error_json(errors.RequestTooLarge() if too_large else errors.InvalidRequest())
    return defaults.bad_request(request, exception)


def csrf_failure(request, reason: str = "") -> JsonResponse:
    """Django-level CSRF failures (the admin, forms) in the contract's shape under /api/."""
    if is_api_path(request.path):
        return error_json(errors.CsrfFailed())
    return django_csrf_failure(request, reason)


class SecretHidingReporterFilter(SafeExceptionReporterFilter):
    """Django's debug pages and error reports, hiding connection URLs too (they carry passwords).

    Django's own filter hides names with KEY, SECRET, PASS, TOKEN...; ``DATABASE_URL``,
    ``REDIS_URL`` and ``GITOPS_REMOTE_URL`` (in ``request.META`` under runserver) name none.
    """

    hidden_settings = re.compile(
        "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|DSN|URL", flags=re.IGNORECASE
    )
