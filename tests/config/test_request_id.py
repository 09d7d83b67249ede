"""X-Request-ID is honoured or generated, returned, and carried by JSON log lines without secrets."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from gunicorn.glogging import SafeAtoms

from config.logging import REDACTED, JsonFormatter, request_id_var
from config.middleware import RequestIdMiddleware

# A syntactically real JWT (header {"alg":"HS256","typ":"JWT"}); the signature is made up.
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9"
    ".eyJzdWIiOiI0MiIsInRva2VuX3R5cGUiOiJhY2Nlc3MifQ"
    ".c2lnbmF0dXJlLW5vdC1yZWFsLWJ1dC1zaGFwZWQtbGlrZS1vbmU"
)


def _middleware_call(header: str | None = None, seen: dict | None = None) -> tuple[HttpResponse, object]:
    def view(request):
        if seen is not None:
            seen["context"] = request_id_var.get()
        return HttpResponse("ok")

    headers = {} if header is None else {"HTTP_X_REQUEST_ID": header}
    request = RequestFactory().get("/", **headers)
    return RequestIdMiddleware(view)(request), request


@pytest.fixture
def log_lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.request_id")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def _entries(stream: io.StringIO) -> list[dict]:
    lines = stream.getvalue().splitlines()
    assert lines, "nothing was logged"
    return [json.loads(line) for line in lines]


# --- Middleware ---------------------------------------------------------------------------


def test_a_request_without_the_header_gets_a_generated_id_in_request_context_and_response():
    seen: dict = {}
    response, request = _middleware_call(seen=seen)
    request_id = response["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    assert request.request_id == request_id
    assert seen["context"] == request_id
    assert request_id_var.get() is None, "the id must not outlive the request"


def test_each_request_gets_its_own_generated_id():
    first, _ = _middleware_call()
    second, _ = _middleware_call()
    assert first["X-Request-ID"] != second["X-Request-ID"]


@pytest.mark.parametrize(
    "incoming",
    ["abc", "0f8fad5b-d9cb-469f-a165-70867728950e", "edge.req_42-A", "a" * 128],
)
def test_a_sane_incoming_id_is_echoed(incoming):
    seen: dict = {}
    response, request = _middleware_call(incoming, seen)
    assert response["X-Request-ID"] == incoming
    assert request.request_id == incoming
    assert seen["context"] == incoming


@pytest.mark.parametrize(
    "hostile",
    [
        "abc\ndef",
        "abc\r\nSet-Cookie: x=1",
        "a" * 129,
        "a" * 500,
        "",
        "two words",
        '"quoted"',
        "<script>alert(1)</script>",
        "ünïcode",
        "a;b",
        "../../etc/passwd",
    ],
)
def test_a_hostile_incoming_id_is_replaced(hostile):
    response, request = _middleware_call(hostile)
    assert response["X-Request-ID"] != hostile
    assert re.fullmatch(r"[0-9a-f]{32}", response["X-Request-ID"])
    assert request.request_id == response["X-Request-ID"]


def test_the_context_is_reset_when_the_view_raises():
    def view(request):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        RequestIdMiddleware(view)(RequestFactory().get("/"))
    assert request_id_var.get() is None


def test_django_logs_a_failed_request_with_its_id(client, settings):
    """Django logs 4xx/5xx after the middleware chain: the id comes from the request it passes."""
    settings.MIDDLEWARE = ["config.middleware.RequestIdMiddleware", *settings.MIDDLEWARE]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    try:
        response = client.get("/no-such-page-for-request-id-test", HTTP_X_REQUEST_ID="trace-404")
    finally:
        logger.removeHandler(handler)
    assert response.status_code == 404
    assert response["X-Request-ID"] == "trace-404"
    entries = _entries(stream)
    assert entries[-1]["request_id"] == "trace-404"
    assert entries[-1]["level"] == "WARNING"
    assert "request" not in entries[-1]


# --- JSON formatter -----------------------------------------------------------------------


def test_each_record_is_one_json_object_per_line_with_the_request_id(log_lines):
    logger, stream = log_lines
    token = request_id_var.set("req-123")
    try:
        logger.info("scaled %s to %d replicas", "client1/prod", 3)
        logger.warning("multi\nline\nmessage")
    finally:
        request_id_var.reset(token)
    logger.info("outside a request")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 3
    first, second, third = (json.loads(line) for line in lines)
    assert first["message"] == "scaled client1/prod to 3 replicas"
    assert (first["level"], first["logger"], first["request_id"]) == ("INFO", "tests.request_id", "req-123")
    assert second["message"] == "multi\nline\nmessage"
    assert third["request_id"] is None
    logged_at = datetime.fromisoformat(first["time"])
    assert logged_at.utcoffset() == timedelta(0)


def test_a_jwt_in_the_message_is_redacted(log_lines):
    logger, stream = log_lines
    logger.info(f"refresh failed for token {JWT} from 10.0.0.1")
    logger.info("header was %s", f"Bearer {JWT}")
    logger.info("header was %s", "Bearer opaque-0123456789abcdef")
    first, second, third = _entries(stream)
    assert JWT not in stream.getvalue()
    assert "eyJ" not in stream.getvalue()
    assert first["message"].startswith("refresh failed for token [REDACTED")
    assert first["message"].endswith("from 10.0.0.1")
    assert second["message"] == "header was Bearer [REDACTED_JWT]"
    assert third["message"] == f"header was Bearer {REDACTED}"


def test_a_personal_access_token_pasted_anywhere_is_redacted(log_lines):
    from accounts.access_tokens import access_token_secret_new

    logger, stream = log_lines
    pat = access_token_secret_new()
    logger.info("CI used %s from 10.0.0.2", pat)
    (entry,) = _entries(stream)
    assert pat not in stream.getvalue()
    assert entry["message"] == "CI used [REDACTED_PAT] from 10.0.0.2"


def test_words_that_merely_contain_eyj_are_not_taken_for_tokens(log_lines):
    logger, stream = log_lines
    logger.info("read apiKeyJson.field.value from the form")
    (entry,) = _entries(stream)
    assert entry["message"] == "read apiKeyJson.field.value from the form"


def test_a_token_glued_to_other_characters_in_a_path_is_redacted(log_lines):
    from accounts.access_tokens import access_token_secret_new

    logger, stream = log_lines
    pat = access_token_secret_new()
    logger.warning("Not Found: /api/clients/x_%s/clusters/1%s", JWT, pat)
    (entry,) = _entries(stream)
    assert JWT not in stream.getvalue() and pat not in stream.getvalue()
    assert entry["message"] == "Not Found: /api/clients/x_[REDACTED_JWT]/clusters/1[REDACTED_PAT]"


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "token",
        "refreshToken",
        "secret",
        "api_key",
        "apiKey",
        "Authorization",
        "cookie",
        "HTTP_COOKIE",
    ],
)
def test_values_of_sensitive_keys_in_args_and_extra_are_redacted(log_lines, key):
    logger, stream = log_lines
    secret = "hunter2-very-secret-value"
    logger.info("login %(email)s with %(" + key + ")s", {"email": "a@example.com", key: secret})
    logger.info("payload", extra={"payload": {key: secret, "nested": [{key: secret}]}, key: secret})
    output = stream.getvalue()
    assert secret not in output
    first, second = _entries(stream)
    assert first["message"] == f"login a@example.com with {REDACTED}"
    assert second["payload"] == {key: REDACTED, "nested": [{key: REDACTED}]}
    assert second[key] == REDACTED


def test_secret_pairs_in_free_text_are_redacted_and_the_rest_kept(log_lines):
    logger, stream = log_lines
    logger.info('GET /api/x?token=abc123&page=2 body {"password": "pw1", "email": "a@example.com"}')
    (entry,) = _entries(stream)
    assert "abc123" not in entry["message"]
    assert "pw1" not in entry["message"]
    assert "page=2" in entry["message"]
    assert "a@example.com" in entry["message"]


@pytest.mark.parametrize(
    "url",
    [
        "https://bot:hunter2secret@git.example.com/gitops.git",
        "https://hunter2secret@git.example.com/gitops.git",  # a token as the user name
        "rediss://:hunter2secret@cache:6380/0",
    ],
)
def test_a_urls_credentials_are_redacted_and_its_host_kept(log_lines, url):
    logger, stream = log_lines
    logger.warning("gitops remote unreachable: failed to send request to %s", url)
    (entry,) = _entries(stream)
    assert "hunter2secret" not in entry["message"] and "[REDACTED]@" in entry["message"]
    assert url.split("@")[1] in entry["message"]


def test_an_address_in_a_urls_query_is_no_credential(log_lines):
    logger, stream = log_lines
    logger.info("redirect to https://app.example.com?invite=bob@acme.test")
    (entry,) = _entries(stream)
    assert entry["message"] == "redirect to https://app.example.com?invite=bob@acme.test"


def test_the_exception_text_is_included_on_the_same_line_and_redacted(log_lines):
    logger, stream = log_lines
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        logger.exception("refresh failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "ERROR"
    assert "Traceback" in entry["exception"]
    assert "ValueError: bad token [REDACTED" in entry["exception"]
    assert JWT not in lines[0]


def test_gunicorn_access_records_get_the_response_request_id_and_hide_credentials(log_lines):
    logger, stream = log_lines
    atoms = SafeAtoms(
        {
            "r": "GET /api/auth/me HTTP/1.1",
            "s": "200",
            "{authorization}i": f"Bearer {JWT}",
            "{x-request-id}o": "abc123",
        }
    )
    logger.info('"%(r)s" %(s)s auth=%({authorization}i)s missing=%({x-absent}i)s', atoms)
    (entry,) = _entries(stream)
    assert entry["request_id"] == "abc123"
    assert entry["message"] == f'"GET /api/auth/me HTTP/1.1" 200 auth={REDACTED} missing=-'
