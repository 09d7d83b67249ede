"""A wrong value is refused at start in one line naming the variable (README "Configuration"),
never with a traceback, and never accepted only to break requests later; an empty value means
the default."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GUNICORN_CONF = PROJECT_ROOT / "deploy" / "gunicorn.conf.py"


def _environment(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    inherited = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "FIELD_", "JWT_", "GITOPS_", "DATABASE_", "REDIS_", "GUNICORN_"))
    }
    return {**inherited, "DJANGO_DEBUG": "1", "PORTAL_VAR_DIR": str(tmp_path), "PORTAL_ENV_FILE": "", **env}


def _manage(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=PROJECT_ROOT,
        env=_environment(env, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _setting(name: str, env: dict[str, str], tmp_path: Path) -> str:
    code = f"from django.conf import settings; print(repr(settings.{name}))"
    result = _manage(["shell", "--no-imports", "-c", code], env, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("DATABASE_URL", "postgres://u:secret@db.internal:notaport/portal", "has an invalid host or port"),
        ("DATABASE_URL", "postgres://u:secret@db.internal:99999/portal", "has an invalid host or port"),
        ("DATABASE_URL", "postgres://u:secret@[::1/portal", "has an invalid host or port"),
        ("EMAIL_URL", "smtp://u:secret@mail.internal:bad", "has an invalid host or port"),
        ("LOG_LEVEL", "verbose", "must be one of critical"),
        ("SENTRY_DSN", "notadsn", "is not a valid DSN"),
        ("SENTRY_DSN", "https://key@o1.ingest.sentry.io:port/1", "is not a valid DSN"),
        ("QDRANT_ENDPOINT_TEMPLATE", "https://{foo}.example.com", "may use only the placeholders"),
        ("QDRANT_ENDPOINT_TEMPLATE", "https://{cluster", "may use only the placeholders"),
        ("QDRANT_ENDPOINT_TEMPLATE", "https://{0}.example.com", "may use only the placeholders"),
        (
            "QDRANT_ENDPOINT_TEMPLATE",
            "{cluster}.{client}.example.com",
            "must be an https:// (or http://) URL",
        ),
        ("QDRANT_ENDPOINT_TEMPLATE", "https://", "must be an https:// (or http://) URL with a host"),
        ("PUBLIC_URL", "portal.example.com", "must be an https:// (or http://) URL"),
        ("PUBLIC_URL", "ftp://portal.example.com", "must be an https:// (or http://) URL"),
        ("WEBAUTHN_ORIGINS", "https://portal.example.com,portal.example.com", "must be an https://"),
        ("ARGOCD_URL", "argocd.example.com", "must be an https:// (or http://) URL"),
    ],
)
def test_a_wrong_value_stops_a_command_with_one_line_naming_the_variable(tmp_path, name, value, said):
    result = _manage(["check"], {name: value}, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()  # no traceback
    assert line.startswith(f"Configuration error: {name} {said}"), line
    assert "secret" not in line  # a database or mail URL's password is not repeated


@pytest.mark.parametrize(
    ("env", "name", "expected"),
    [
        ({"LOG_LEVEL": "warning"}, "LOG_LEVEL", "'WARNING'"),
        ({"PUBLIC_URL": "https://portal.example.com/"}, "PUBLIC_URL", "'https://portal.example.com'"),
        ({"PUBLIC_URL": "http://[::1]:9000"}, "PUBLIC_URL", "'http://[::1]:9000'"),
        (
            {"WEBAUTHN_ORIGINS": "https://a.example.com, http://localhost:8000"},
            "WEBAUTHN_ORIGINS",
            "['https://a.example.com', 'http://localhost:8000']",
        ),
        (
            {"QDRANT_ENDPOINT_TEMPLATE": "https://{client}-{cluster}.vectors.example.com"},
            "QDRANT_ENDPOINT_TEMPLATE",
            "'https://{client}-{cluster}.vectors.example.com'",
        ),
        (
            {"QDRANT_ENDPOINT_TEMPLATE": "http://qdrant.example.com:8080"},
            "QDRANT_ENDPOINT_TEMPLATE",
            "'http://qdrant.example.com:8080'",
        ),
        (
            {"DATABASE_URL": "postgres://u:p@db.internal:5433/portal"},
            "DATABASES['default']['PORT']",
            "'5433'",
        ),
        ({"EMAIL_URL": "smtps://u:p@mail.internal"}, "EMAIL_PORT", "465"),
    ],
)
def test_a_good_value_is_taken(tmp_path, env, name, expected):
    assert _setting(name, env, tmp_path) == expected


@pytest.mark.parametrize(
    ("name", "setting", "expected"),
    [
        ("JWT_ACCESS_TTL", "JWT_ACCESS_TTL", "datetime.timedelta(seconds=900)"),
        ("PAT_MAX_TTL", "PAT_MAX_TTL", "datetime.timedelta(days=365)"),
        ("QDRANT_VERSIONS", "QDRANT_VERSIONS", "['v1.16.3', 'v1.17.1', 'v1.18.3', 'v1.19.0']"),
        ("DJANGO_ALLOWED_HOSTS", "ALLOWED_HOSTS", "['localhost', '127.0.0.1', '[::1]']"),
        ("LOG_LEVEL", "LOG_LEVEL", "'INFO'"),
        ("PUBLIC_URL", "PUBLIC_URL", "'http://127.0.0.1:8000'"),
        ("QDRANT_ENDPOINT_TEMPLATE", "QDRANT_ENDPOINT_TEMPLATE", "'https://{cluster}.{client}.qdrant.local'"),
        ("SENTRY_DSN", "SENTRY_DSN", "''"),
    ],
)
@pytest.mark.parametrize("empty", ["", "  "])
def test_an_empty_value_means_the_default(tmp_path, name, setting, expected, empty):
    """`.env.example`: "An empty value (NAME=) means the default"; a ConfigMap's `JWT_TTL: ""` too."""
    assert _setting(setting, {name: empty}, tmp_path) == expected


def _gunicorn_config(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    """Load deploy/gunicorn.conf.py as gunicorn does, and print the sizing it read."""
    code = (
        "import sys; from gunicorn.app.wsgiapp import WSGIApplication; "
        f"sys.argv = ['gunicorn', '--config', {str(GUNICORN_CONF)!r}]; app = WSGIApplication(); "
        "print(app.cfg.workers, app.cfg.threads, app.cfg.loglevel, app.cfg.forwarded_allow_ips)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=_environment(env, tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("GUNICORN_WORKERS", "abc", "must be a whole number"),
        ("GUNICORN_THREADS", "0", "must be at least 1"),
        ("GUNICORN_MAX_REQUESTS", "-1", "must be at least 0"),
        ("LOG_LEVEL", "verbose", "must be one of critical"),
    ],
)
def test_gunicorn_refuses_a_wrong_value_in_one_line_naming_the_variable(tmp_path, name, value, said):
    result = _gunicorn_config({name: value}, tmp_path)
    assert result.returncode != 0
    [line] = result.stderr.strip().splitlines()  # no traceback
    assert line.startswith(f"Configuration error: {name} {said}"), line


def test_gunicorn_takes_an_empty_value_as_the_default(tmp_path):
    empty = {"GUNICORN_WORKERS": "", "GUNICORN_THREADS": " ", "LOG_LEVEL": "", "FORWARDED_ALLOW_IPS": ""}
    result = _gunicorn_config(empty, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["2", "4", "info", "['127.0.0.1',", "'::1']"]
