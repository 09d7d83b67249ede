"""Logs as one JSON object per line, carrying the request id, with secrets redacted.

Imported by gunicorn's logging configuration before Django is set up, so this module must
not import Django.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

# Set by config.middleware.RequestIdMiddleware for the duration of a request.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

REDACTED = "[REDACTED]"

# Key names whose values are never logged, wherever they appear (args, extra, nested dicts).
_SENSITIVE_KEY = re.compile(
    r"pass(?:word|wd|phrase)?|token|secret|api[_-]?key|authorization|cookie|credential|private[_-]?key",
    re.IGNORECASE,
)
# Three base64url segments, the first starting with the encoding of '{"': a JWT. Not inside a
# word (apiKeyJson.field.value is no token), but after "_" (a path such as /api/clients/x_eyJ...).
_JWT = re.compile(r"(?<![A-Za-z0-9-])eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# A personal access token (accounts.access_tokens): qpt_ and base62, wherever it is pasted.
_PERSONAL_TOKEN = re.compile(r"qpt_[0-9A-Za-z]{16,}")
# The credentials of a URL (postgres://user:password@host, rediss://:password@host), a token
# alone included (https://ghp_...@github.com: git hosts take it as the user name).
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#,\s@]+@")  # userinfo ends the authority
# `password=...`, `"api_key": "..."`, `?token=...` inside free text such as a request line. A key
# starts a word: tried at every letter, a long request line would cost quadratic time.
_KEY_VALUE = re.compile(
    r"""(?ix)
    (?P<key>["']?(?<![a-z0-9_-])[a-z0-9_-]*?(?:pass(?:word|wd|phrase)?|token|secret|api[_-]?key|authorization|cookie|credential|private[_-]?key)[a-z0-9_-]*["']?)
    (?P<sep>\s*[=:]\s*)
    (?P<value>"[^"]*"|'[^']*'|[^\s&,;"']+)
    """
)

# Attributes every LogRecord has: anything else on a record came from `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}
# Django's request logging passes the HttpRequest in `extra`; its id is taken, not its repr.
_EXTRA_SKIPPED = frozenset({"request"})
_OUTPUT_FIELDS = ("time", "level", "logger", "message", "request_id", "exception", "stack")


def text_redact(text: str) -> str:
    """The text with JWTs, access tokens, bearer credentials, URL credentials and `secret=value` pairs replaced."""
    text = _JWT.sub("[REDACTED_JWT]", text)
    text = _PERSONAL_TOKEN.sub("[REDACTED_PAT]", text)
    text = _URL_CREDENTIALS.sub(lambda match: f"{match.group(1)}{REDACTED}@", text)
    text = _BEARER.sub(lambda match: f"{match.group(1)} {REDACTED}", text)

    def _pair(match: re.Match[str]) -> str:
        value = match.group("value")
        quote = value[0] if value[:1] in {'"', "'"} else ""
        return f"{match.group('key')}{match.group('sep')}{quote}{REDACTED}{quote}"

    return _KEY_VALUE.sub(_pair, text)


def is_sensitive_key(key: object) -> bool:
    return isinstance(key, str) and bool(_SENSITIVE_KEY.search(key))


def value_redact(value: Any, key: object = None) -> Any:
    """A JSON-ready copy of ``value`` with secrets replaced (recursively, by key name and by shape)."""
    if is_sensitive_key(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {str(k): value_redact(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [value_redact(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return text_redact(value if isinstance(value, str) else str(value))


class _RedactedArgs(Mapping):
    """A view of a mapping used for %-formatting, hiding the values of sensitive keys.

    A view rather than a copy keeps the mapping's own lookup rules (gunicorn's access-log
    atoms answer "-" for unknown keys).
    """

    def __init__(self, data: Mapping) -> None:
        self._data = data

    def __getitem__(self, key: object) -> Any:
        value = self._data[key]
        if is_sensitive_key(key):
            return REDACTED
        if isinstance(value, Mapping):
            return value_redact(value)
        return value

    def __iter__(self) -> Iterator:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


def _args_redact(args: Any) -> Any:
    if isinstance(args, Mapping):
        return _RedactedArgs(args)
    if isinstance(args, tuple):
        return tuple(value_redact(arg) if isinstance(arg, Mapping) else arg for arg in args)
    return args


def _request_id(record: logging.LogRecord) -> str | None:
    """The id of the request the record is about, wherever the record carries it."""
    request_id = request_id_var.get() or getattr(record, "request_id", None)
    if request_id:
        return str(request_id)
    # Django logs 4xx/5xx responses after the middleware chain returned, with the request in extra.
    request_id = getattr(getattr(record, "request", None), "request_id", None)
    if request_id:
        return str(request_id)
    # gunicorn's access log passes the response headers as atoms ("-" when absent).
    if isinstance(record.args, Mapping):
        request_id = record.args.get("{x-request-id}o")
        if request_id and request_id != "-":
            return str(request_id)
    return None


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, request_id, exception.

    Values of sensitive keys (password, token, secret, api_key, authorization, cookie...) in
    the arguments and in ``extra`` are replaced, and so are JWTs and bearer credentials in the
    message and the exception text.
    """

    def format(self, record: logging.LogRecord) -> str:
        message = str(record.msg)
        if record.args:
            message = message % _args_redact(record.args)
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": text_redact(message),
            "request_id": _request_id(record),
        }
        if record.exc_info:
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = text_redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = text_redact(self.formatStack(record.stack_info))
        for key, value in vars(record).items():
            if key in _RECORD_ATTRIBUTES or key in _EXTRA_SKIPPED or key in _OUTPUT_FIELDS:
                continue
            entry[key] = value_redact(value, key)
        return json.dumps(entry, ensure_ascii=False, default=str)


class OutageFilter(logging.Filter):
    """Drops Django's per-response line for a request answered 503 because a dependency is down,
    and for a refusal that is the endpoint's ordinary answer (``refusal_expected``).

    The dependency's reporter (``config.outages``) logs the outage once per burst instead, so a
    minute of a lost database is one line, not one traceback per request. A gateway asks
    ``/api/auth/validate`` for every request it proxies: each anonymous or expired caller of any
    service behind it would be a WARNING here (the metrics count them).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "django.request":
            return True
        request = getattr(record, "request", None)
        return not (getattr(request, "dependency_outage", None) or getattr(request, "refusal_expected", None))


def django_logging(*, level: str) -> dict:
    """Django's ``LOGGING``: everything at ``level`` as JSON on stdout, but Django's SQL log.

    With ``DEBUG`` on, ``django.db.backends`` logs every query with its parameters: password
    hashes, admin session keys and whatever else a row holds, which no redaction by key name can
    find. It stays at INFO whatever ``level`` says (``connection.queries`` shows queries in a shell).
    """
    console = {"handlers": ["console"], "level": level, "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
        "filters": {"outages": {"()": "config.logging.OutageFilter"}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "filters": ["outages"],
                "stream": "ext://sys.stdout",
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": {
            "django": {**console},
            "django.server": {**console},
            "django.db.backends": {**console, "level": "INFO"},
        },
    }
