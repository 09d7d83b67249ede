"""Errors reach Sentry only with SENTRY_DSN, and never carry a token, cookie, password or key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from config.sentry import event_scrub

PROJECT_ROOT = Path(__file__).resolve().parents[2]
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImFiYyJ9.eyJzdWIiOiIxIiwic2lkIjoieCJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ"
SECRETS = (
    JWT,
    "correct horse battery",
    "qdrant-api-key-0123456789",
    "ro-key-9876543210",
    "csrf-token-value",
    "s3cr3t-db-password",
    "metrics-token-abc",
    "session-id-value",
)


def _django_event() -> dict:
    """An event as sentry-sdk's Django integration builds it for a failing API request."""
    return {
        "event_id": "0f8c2e0a5b0c4f7b9d1e2a3b4c5d6e7f",
        "timestamp": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        "level": "error",
        "platform": "python",
        "request": {
            "url": "https://portal.example.com/api/clients/client1/clusters/main/credentials",
            "method": "POST",
            "query_string": "token=metrics-token-abc&page=2",
            "headers": {
                "Authorization": f"Bearer {JWT}",
                "Cookie": f"__Host-accessToken={JWT}; csrftoken=csrf-token-value",
                "X-Auth-Token": JWT,
                "X-Csrftoken": "csrf-token-value",
                "User-Agent": "curl/8.5.0",
            },
            "cookies": {"__Host-accessToken": JWT, "sessionid": "session-id-value"},
            "data": {"email": "alice@example.com", "password": "correct horse battery"},
            "env": {"REMOTE_ADDR": "10.0.0.7"},
        },
        "exception": {
            "values": [
                {
                    "type": "OperationalError",
                    "value": "could not connect to postgres://portal:s3cr3t-db-password@db:5432/portal",
                    "stacktrace": {
                        "frames": [
                            {
                                "filename": "clusters/views.py",
                                "function": "get",
                                "lineno": 42,
                                "vars": {
                                    "apiKey": "qdrant-api-key-0123456789",
                                    "read_only_api_key": "ro-key-9876543210",
                                    "raw": JWT,
                                    "replicas": 3,
                                    "self": "<ClusterCredentialsView object>",
                                },
                            }
                        ]
                    },
                }
            ]
        },
        "breadcrumbs": {
            "values": [
                {"category": "query", "message": "UPDATE accounts_user SET password = 'argon2$...'"},
                {
                    "category": "http",
                    "data": {"url": "https://git.example.com", "headers": {"Authorization": "Basic eDp5"}},
                },
            ]
        },
        "extra": {"refresh_token": JWT, "cluster": "client1/main"},
        "user": {"id": "7"},
    }


def test_the_scrubber_removes_every_secret_and_keeps_what_helps():
    scrubbed = event_scrub(_django_event(), {})

    text = json.dumps(scrubbed, default=str)
    for secret in SECRETS:
        assert secret not in text, secret
    request = scrubbed["request"]
    assert request["headers"]["Authorization"] == "[REDACTED]"
    assert request["headers"]["Cookie"] == "[REDACTED]" and request["cookies"] == "[REDACTED]"
    assert request["data"]["password"] == "[REDACTED]"
    assert request["headers"]["User-Agent"] == "curl/8.5.0"
    assert request["url"].endswith("/clusters/main/credentials")
    assert "page=2" in request["query_string"]
    assert scrubbed["exception"]["values"][0]["value"].startswith(
        "could not connect to postgres://[REDACTED]@db"
    )
    frame = scrubbed["exception"]["values"][0]["stacktrace"]["frames"][0]
    assert frame["vars"]["replicas"] == 3 and frame["lineno"] == 42
    assert scrubbed["extra"]["cluster"] == "client1/main"
    assert scrubbed["timestamp"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)  # the SDK's types are kept


def _settings_in_a_process(code: str, **env: str) -> str:
    environment = {
        key: value for key, value in os.environ.items() if not key.startswith(("SENTRY_", "POD_IP"))
    }
    environment.update(DJANGO_SETTINGS_MODULE="config.settings", PORTAL_ENV_FILE="", **env)
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code],
        cwd=PROJECT_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_sentry_starts_only_with_a_dsn_and_then_scrubs_without_pii():
    code = (
        "import sentry_sdk\n"
        "client = sentry_sdk.get_client()\n"
        "options = client.options if client.is_active() else {}\n"
        "print(client.is_active(), options.get('send_default_pii'), "
        "getattr(options.get('before_send'), '__qualname__', None), options.get('environment'))"
    )
    assert _settings_in_a_process(code) == "False None None None"
    configured = _settings_in_a_process(
        code, SENTRY_DSN="https://public@sentry.example.com/1", SENTRY_ENVIRONMENT="staging"
    )
    assert configured == "True False event_scrub staging"


def test_an_error_reaches_sentry_without_the_secrets_its_frames_held():
    code = (
        "import json, sentry_sdk\n"
        "sent = []\n"
        "class Transport(sentry_sdk.transport.Transport):\n"
        "    def capture_envelope(self, envelope):\n"
        "        sent.append(envelope.serialize().decode())\n"
        "sentry_sdk.get_client().transport = Transport()\n"
        "def seal(plaintext):\n"
        "    codes = ['recovery-code-1']\n"
        "    raise ValueError('sealing failed')\n"
        "try:\n"
        "    seal('qdrant-api-key-in-plain')\n"
        "except ValueError as error:\n"
        "    sentry_sdk.capture_exception(error)\n"
        "sentry_sdk.flush()\n"
        "text = ''.join(sent)\n"
        "print(len(sent), 'sealing failed' in text, 'in seal' in text or '\"seal\"' in text, "
        "'qdrant-api-key-in-plain' in text, 'recovery-code-1' in text)"
    )
    configured = _settings_in_a_process(code, SENTRY_DSN="https://public@sentry.example.com/1")
    assert configured == "1 True True False False"  # the error and where, not the secrets


def test_the_pods_own_address_is_an_allowed_host_for_the_scraper():
    code = "from django.conf import settings; print(settings.ALLOWED_HOSTS[-2:])"
    assert _settings_in_a_process(code, POD_IP="10.42.0.17") == "['127.0.0.1', '10.42.0.17']"
    assert _settings_in_a_process(code, POD_IP="fd00::17").endswith("'[fd00::17]']")


def test_requests_to_other_services_carry_no_sentry_headers():
    """Argo CD and Google are told nothing of the portal's Sentry (its trace ids, its DSN's
    public key in ``baggage``): it traces nothing, so there is nothing to join up."""
    code = (
        "import http.server, threading, requests\n"
        "seen = []\n"
        "class Handler(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        seen.append({name.lower() for name in self.headers.keys()})\n"
        "        self.send_response(204); self.end_headers()\n"
        "    def log_message(self, *args): pass\n"
        "server = http.server.HTTPServer(('127.0.0.1', 0), Handler)\n"
        "threading.Thread(target=server.serve_forever, daemon=True).start()\n"
        "requests.get(f'http://127.0.0.1:{server.server_port}/api/v1/applications', timeout=5)\n"
        "server.shutdown()\n"
        "print(sorted(seen[0] & {'sentry-trace', 'baggage', 'traceparent'}))"
    )
    assert _settings_in_a_process(code, SENTRY_DSN="https://public@sentry.example.com/1") == "[]"
