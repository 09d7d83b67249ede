"""Request ids: honour a sane incoming X-Request-ID or make one, expose it to logs and the client."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse

from config.errors import DatabaseBusy, DatabaseUnavailable
from config.exceptions import error_json, handler400, is_api_path
from config.logging import request_id_var
from config.outages import DATABASE_ERRORS, database_failure_report

REQUEST_ID_HEADER = "X-Request-ID"
# Whatever a client or proxy sends ends up in log lines: accept only a plain token.
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def request_id_from_header(value: str | None) -> str:
    """The incoming id when it is a plain token of at most 128 characters, else a new one."""
    if value and _SANE_REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Sets ``request.request_id`` and the logging context, and returns the id as X-Request-ID.

    First in MIDDLEWARE, so that redirects and short-circuited responses carry it too.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from_header(request.headers.get(REQUEST_ID_HEADER))
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            # Worker threads are reused: never let one request's id leak into the next one's logs.
            request_id_var.reset(token)
        response[REQUEST_ID_HEADER] = request_id
        return response


class QueryStringLimitMiddleware:
    """More query-string fields than DATA_UPLOAD_MAX_NUMBER_FIELDS: a 400, before anything reads them.

    Django raises TooManyFieldsSent wherever ``request.GET`` is first read. With DEBUG on (``make
    run``) its debug page reads it again while reporting that, and the answer became a bare
    text 500; without DEBUG it was the same 400 as here.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.META.get("QUERY_STRING"):
            try:
                request.GET  # noqa: B018 - parsed (and kept) now, to catch its refusal here
            except TooManyFieldsSent as refusal:
                return handler400(request, refusal)
        return self.get_response(request)


class DatabaseOutageMiddleware:
    """Outside the API's views (the admin, the app shell), a lost database is a 503 too, not a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, DATABASE_ERRORS):
            return None
        busy = database_failure_report(exception, request)
        error = DatabaseBusy() if busy else DatabaseUnavailable()
        if is_api_path(request.path):
            return error_json(error)
        response = HttpResponse(
            str(error.detail),
            status=503,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = str(error.retry_after)
        return response
