"""The one error format: ``{"code", "detail"}`` plus ``"fields"`` for validation errors.

Services raise :class:`ServiceError` (or Django's ``ValidationError``); DRF's own
exceptions are translated here, so views never build error bodies.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ServiceError(Exception):
    """A typed failure a service reports to its caller, with a stable code and HTTP status."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code: str = "invalid_request"
    detail: str = "The request is not valid."

    def __init__(
        self,
        detail: str | None = None,
        *,
        code: str | None = None,
        status_code: int | None = None,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.detail = detail or self.detail
        self.code = code or self.code
        self.status_code = status_code or self.status_code
        self.fields = fields
        self.headers = headers or {}
        super().__init__(self.detail)


_CODE_BY_EXCEPTION: list[tuple[type[exceptions.APIException], int, str, str | None]] = [
    (exceptions.NotAuthenticated, 403, "not_authenticated", None),
    (exceptions.AuthenticationFailed, 403, "token_not_valid", None),
    (exceptions.PermissionDenied, 403, "permission_denied", "Insufficient permissions"),
    (exceptions.NotFound, 404, "not_found", "Not found."),
    (exceptions.MethodNotAllowed, 405, "method_not_allowed", None),
    (exceptions.NotAcceptable, 406, "not_acceptable", None),
    (exceptions.UnsupportedMediaType, 415, "unsupported_media_type", None),
    (exceptions.Throttled, 429, "throttled", None),
    (exceptions.ParseError, 400, "invalid_request", None),
]


def error_body(code: str, detail: str, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "detail": detail}
    if fields:
        body["fields"] = fields
    return body


def _validation_fields(data: Any, prefix: str = "") -> dict[str, list[str]]:
    """Flatten DRF's nested error structure into ``{"field": ["message", ...]}``."""
    if isinstance(data, dict):
        fields: dict[str, list[str]] = {}
        for key, value in data.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and not prefix:
                name = "nonFieldErrors"
            fields.update(_validation_fields(value, name))
        return fields
    if isinstance(data, list) and data and all(isinstance(item, str) for item in data):
        return {prefix or "nonFieldErrors": [str(item) for item in data]}
    if isinstance(data, list):
        fields = {}
        for index, item in enumerate(data):
            fields.update(_validation_fields(item, f"{prefix}.{index}" if prefix else str(index)))
        return fields
    return {prefix or "nonFieldErrors": [str(data)]}


def _first_code(exc: exceptions.APIException) -> str | None:
    codes = exc.get_codes()
    while isinstance(codes, list | dict):
        if not codes:
            return None
        codes = next(iter(codes.values())) if isinstance(codes, dict) else codes[0]
    return codes if isinstance(codes, str) else None


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ServiceError):
        response = Response(error_body(exc.code, exc.detail, exc.fields), status=exc.status_code)
        for header, value in exc.headers.items():
            response[header] = value
        return response

    if isinstance(exc, DjangoValidationError):
        fields = (
            {
                ("nonFieldErrors" if k == NON_FIELD_ERRORS else k): [str(m) for m in v]
                for k, v in exc.message_dict.items()
            }
            if hasattr(exc, "error_dict")
            else {"nonFieldErrors": [str(m) for m in exc.messages]}
        )
        return Response(error_body("invalid_request", "The request is not valid.", fields), status=400)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response  # a bug: Django's handler500 answers with the JSON 500 body

    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body(
            "invalid_request", "The request is not valid.", _validation_fields(exc.detail)
        )
        return response

    code, detail = "error", str(exc.detail) if isinstance(exc.detail, str) else "Request failed."
    for exception_class, status_code, mapped_code, fixed_detail in _CODE_BY_EXCEPTION:
        if isinstance(exc, exception_class):
            response.status_code = status_code
            code = mapped_code
            detail = fixed_detail or detail
            break
    # An exception raised with an explicit, contract-level code keeps it (token_not_valid, ...).
    explicit = _first_code(exc)
    if explicit and explicit not in {
        exceptions.APIException.default_code,
        getattr(type(exc), "default_code", None),
    }:
        code = explicit
        detail = str(exc.detail) if isinstance(exc.detail, str) else detail
    if isinstance(exc, exceptions.ParseError):
        detail = "The request body is not valid JSON."
    response.data = error_body(code, detail)
    return response


def _is_api_path(path: str) -> bool:
    return path.startswith(("/api/", "/.well-known/"))


def json_not_found(request, exception=None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def handler404(request, exception=None):
    if _is_api_path(request.path):
        return json_not_found(request, exception)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def handler500(request):
    if _is_api_path(request.path):
        return JsonResponse(
            error_body("server_error", "An unexpected error occurred; it has been logged."),
            status=500,
        )
    from django.views.defaults import server_error

    return server_error(request)


def handler403(request, exception=None):
    if _is_api_path(request.path):
        return JsonResponse(error_body("permission_denied", "Insufficient permissions"), status=403)
    from django.views.defaults import permission_denied

    return permission_denied(request, exception)


def handler400(request, exception=None):
    if _is_api_path(request.path):
        return JsonResponse(error_body("invalid_request", "The request is not valid."), status=400)
    from django.views.defaults import bad_request

    return bad_request(request, exception)


def csrf_failure(request, reason: str = "") -> JsonResponse:
    """Django-level CSRF failures (the admin, forms) in the contract's shape under /api/."""
    if _is_api_path(request.path):
        return JsonResponse(
            error_body("csrf_failed", "CSRF verification failed; reload the page and try again."),
            status=403,
        )
    from django.views.csrf import csrf_failure as django_csrf_failure

    return django_csrf_failure(request, reason)
