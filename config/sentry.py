"""Error reporting to Sentry (only when ``SENTRY_DSN`` is set), with secrets scrubbed before sending.

``send_default_pii=False`` already keeps cookies, the user's address and the usual credential
headers out of an event; :func:`event_scrub` is the second net, with the logs' own rules
(``config.logging``): a value under a key that names a password, token, secret, API key,
cookie, credential or authorization is replaced wherever it sits (request headers, cookies,
body, a stack frame's local variables, breadcrumbs, extra), and JWTs, bearer credentials, URL
credentials and ``key=value`` secrets are replaced inside any text (exception messages, query
strings, log messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from config.logging import REDACTED, is_sensitive_key, text_redact


def _scrub(value: Any, key: object = None) -> Any:
    if is_sensitive_key(key):
        return REDACTED
    if isinstance(value, Mapping):
        return {k: _scrub(v, k) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(item) for item in value]
    if isinstance(value, str):
        return text_redact(value)
    return value  # numbers, booleans, None, the SDK's datetimes: kept as they are


def event_scrub(event: dict[str, Any], hint: dict[str, Any] | None = None) -> dict[str, Any]:
    """Sentry's ``before_send`` (and ``before_breadcrumb``): the event with every secret replaced."""
    return _scrub(event)


def sentry_init(*, dsn: str, environment: str) -> None:
    """Report unhandled errors (and error log lines) to Sentry; no performance tracing."""
    import sentry_sdk

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        send_default_pii=False,
        before_send=event_scrub,
        before_breadcrumb=event_scrub,
        # Request bodies are scrubbed too, but need not be sent at all: the error is in the trace.
        max_request_body_size="never",
        # Frames' local variables are not sent: a secret in a variable with a plain name
        # (``plaintext`` while sealing an API key, ``codes`` for recovery codes) has no name
        # the scrubber could know, and the trace's file, line and function are what help.
        include_local_variables=False,
        # No trace headers on requests to Argo CD or Google (the SDK adds them to every
        # outgoing request by default, with the DSN's public key): nothing is traced to join.
        trace_propagation_targets=[],
    )
