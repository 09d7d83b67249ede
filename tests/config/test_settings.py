"""Settings start safely: secrets required without DEBUG, `check --deploy` clean in production."""

import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from config.env import database_from_url, duration_parse
from tests.support.portal_process import signing_key_pem

PROJECT_ROOT = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "a-production-like-secret-key-with-enough-entropy-0123456789abcdef",
    "FIELD_ENCRYPTION_KEY": "a-production-like-field-key",
    "DJANGO_ALLOWED_HOSTS": "portal.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://portal.example.com",
    "DJANGO_SECURE_SSL_REDIRECT": "1",
    "REDIS_URL": "redis://127.0.0.1:6379/0",  # several replicas share revocations (not contacted here)
}


def _run_django(code: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    clean_env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "FIELD_", "JWT_", "GITOPS_", "DATABASE_", "REDIS_"))
    }
    clean_env.update(DJANGO_SETTINGS_MODULE="config.settings", PORTAL_VAR_DIR=str(tmp_path))
    clean_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_settings_refuse_to_start_without_a_secret_key_when_debug_is_off(tmp_path):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SECRET_KEY"}
    result = _run_django("import django; django.setup()", env, tmp_path)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is required" in result.stderr


def test_a_management_command_works_in_a_fresh_clone_before_make_run(tmp_path):
    """The README's `.venv/bin/python manage.py migrate` with no var/ yet: its folder is made (the
    plan only: it opens the database as migrating does, in a fraction of the time)."""
    fresh = tmp_path / "fresh-clone" / "var"
    code = "import django; django.setup(); from django.core.management import call_command; call_command('migrate', plan=True, verbosity=0)"
    result = _run_django(code, {"DJANGO_DEBUG": "1", "PORTAL_VAR_DIR": str(fresh)}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (fresh / "portal.sqlite3").is_file()


def test_without_redis_every_local_process_shares_one_cache(tmp_path):
    """A revocation by a management command or another worker is seen: they share the cache."""
    write = _run_django(
        "import django; django.setup(); from django.core.cache import cache; cache.set('shared', 42, 60)",
        {"DJANGO_DEBUG": "1"},
        tmp_path,
    )
    assert write.returncode == 0, write.stderr
    read = _run_django(
        "import django; django.setup(); from django.core.cache import cache; print(cache.get('shared'))",
        {"DJANGO_DEBUG": "1"},
        tmp_path,
    )
    assert read.stdout.strip() == "42", read.stderr


def test_settings_start_with_development_defaults_in_debug(tmp_path):
    result = _run_django(
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['ENGINE'], settings.CACHES['default']['BACKEND'])",
        {"DJANGO_DEBUG": "1"},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.db.backends.sqlite3",
        "config.cache.FileCache",
    ]


SQLITE_WRITE_DURING_READ = """
import sqlite3, time
import django
django.setup()
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
call_command("migrate", verbosity=0)
reader = sqlite3.connect(settings.DATABASES["default"]["NAME"], isolation_level=None)
reader.execute("BEGIN")
reader.execute("SELECT count(*) FROM accounts_user").fetchone()  # a long read holds its snapshot
started = time.monotonic()
get_user_model().objects.create_user(email="during@example.com", password=None)  # no hashing to time
print(time.monotonic() - started)
reader.execute("COMMIT")
"""


def test_sqlite_writes_do_not_wait_for_a_long_read(tmp_path):
    """A sign-in's commit does not wait behind another worker's long read (a status page, a
    gitops render): with WAL it commits at once; SQLite's default journal would make it wait
    for the reader and fail with "database is locked" after the 20 s timeout."""
    result = _run_django(
        SQLITE_WRITE_DURING_READ,
        {"DJANGO_DEBUG": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'portal.sqlite3'}"},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout) < 5  # not the 20 s timeout, even on a loaded machine


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("ACCESS_COOKIE_SAMESITE", "Laxx", "must be one of lax, strict, none"),
        ("LOGIN_THROTTLE_IP", "20 per minute", "must be a rate such as 20/min"),
        ("INVITATION_THROTTLE", "0/hour", "must be a rate such as 20/min"),
        ("TRUSTED_PROXY_HOPS", "-1", "must be at least 0"),
        ("JWT_ACCESS_TTL", "0", "must be at least 1 s"),
        ("JWT_TTL", "0s", "must be at least 1 s"),
        ("JWT_REFRESH_REUSE_GRACE", "30d", "must be at most 60 s"),
        ("PAT_MAX_TTL", "30s", "must be at least 60 s"),  # no token is shorter than a minute
        ("DJANGO_HSTS_SECONDS", "-5", "must be at least 0"),  # max-age=-5 is no header a browser takes
        ("DATABASE_CONN_MAX_AGE", "-1", "must be at least 0"),
    ],
)
def test_a_setting_out_of_its_range_stops_the_start(tmp_path, name, value, said):
    """Refused when the process starts, naming the variable, rather than by each request later
    (a 500 on every login, or reuse detection silently switched off)."""
    result = _run_django("import django; django.setup()", {"DJANGO_DEBUG": "1", name: value}, tmp_path)
    assert result.returncode != 0
    assert f"{name} {said}" in result.stderr


def test_an_empty_choice_or_rate_means_the_default(tmp_path):
    """As for every other variable: `NAME=` in an env file or an empty ConfigMap key."""
    result = _run_django(
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.ACCESS_COOKIE_SAMESITE, settings.LOGIN_THROTTLE_IP)",
        {"DJANGO_DEBUG": "1", "ACCESS_COOKIE_SAMESITE": "", "LOGIN_THROTTLE_IP": " "},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["Lax", "20/min"]


def test_an_empty_true_or_false_means_the_default_not_off(tmp_path):
    """`AUTH_COOKIE_SECURE=` (a blank line in an env file or ConfigMap) must not silently drop the
    Secure flag, staff's second factor or the HTTPS redirect: it means the default, as documented."""
    names = ("AUTH_COOKIE_SECURE", "MFA_REQUIRED_FOR_STAFF", "SECURE_SSL_REDIRECT")
    result = _run_django(
        "import django; django.setup(); from django.conf import settings; "
        f"print(*(getattr(settings, name) for name in {names!r}))",
        {
            **PRODUCTION_ENV,
            "AUTH_COOKIE_SECURE": "",
            "MFA_REQUIRED_FOR_STAFF": " ",
            "DJANGO_SECURE_SSL_REDIRECT": "",
        },
        tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["True", "True", "True"]


def test_check_deploy_passes_with_production_variables(tmp_path):
    result = _run_django(
        "import sys; from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check', '--deploy', '--fail-level', 'WARNING'])",
        {**PRODUCTION_ENV, "JWT_PRIVATE_KEYS": signing_key_pem()},  # accounts.E001 without one
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("900", timedelta(seconds=900)),
        ("15m", timedelta(minutes=15)),
        ("7d", timedelta(days=7)),
        ("10s", timedelta(seconds=10)),
        (" 2h ", timedelta(hours=2)),
    ],
)
def test_durations_accept_seconds_or_a_unit(raw, expected):
    assert duration_parse(raw) == expected


@pytest.mark.parametrize("raw", ["", "15 minutes", "-5", "1.5m", "m", "\u0663d", "\uff19\uff10d"])
def test_malformed_durations_are_refused(raw):
    with pytest.raises(ValueError, match="not a duration"):
        duration_parse(raw)


def test_database_url_is_translated_for_postgres_and_sqlite():
    postgres = database_from_url("postgres://app:s%40cret@db.internal:5433/portal?sslmode=require")
    assert postgres["ENGINE"] == "django.db.backends.postgresql"
    assert (postgres["USER"], postgres["PASSWORD"], postgres["HOST"], postgres["PORT"]) == (
        "app",
        "s@cret",
        "db.internal",
        "5433",
    )
    assert postgres["NAME"] == "portal"
    assert postgres["OPTIONS"] == {"sslmode": "require"}
    assert database_from_url("sqlite:////tmp/x.sqlite3")["NAME"] == "/tmp/x.sqlite3"


@pytest.mark.parametrize(
    ("query", "expected"),
    [("", "5"), ("?connect_timeout=2&sslmode=require", "2")],
)
def test_postgres_connections_give_up_connecting_unless_told_otherwise(tmp_path, query, expected):
    """A server that accepts but never answers (hung) must not hold requests forever (tests/faults)."""
    result = _run_django(
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['OPTIONS']['connect_timeout'])",
        {"DJANGO_DEBUG": "1", "DATABASE_URL": f"postgres://portal@db.internal:5432/portal{query}"},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == expected


def test_an_env_file_loaded_as_is_keeps_the_default_paths(tmp_path):
    """`.env.example` lists `DJANGO_STATIC_ROOT=` and `PORTAL_VAR_DIR=`: empty means the default."""
    result = _run_django(
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.STATIC_ROOT, settings.GITOPS_REPO_PATH, settings.JWT_ISSUER)",
        {"DJANGO_DEBUG": "1", "DJANGO_STATIC_ROOT": "", "PORTAL_VAR_DIR": "", "JWT_ISSUER": " "},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        str(PROJECT_ROOT / "staticfiles"),
        str(PROJECT_ROOT / "var" / "gitops.git"),
        "qdrant-portal",
    ]


def test_a_dotenv_file_configures_management_commands_and_the_environment_wins(tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("DJANGO_DEBUG=1\nJWT_ISSUER=from-the-file\nLOG_LEVEL=DEBUG\n")
    result = _run_django(
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DEBUG, settings.JWT_ISSUER, settings.LOG_LEVEL)",
        {"PORTAL_ENV_FILE": str(env_file), "LOG_LEVEL": "WARNING"},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "from-the-file", "WARNING"]


def test_debug_logging_never_writes_query_parameters(tmp_path):
    """`LOG_LEVEL=DEBUG make run` logs at DEBUG, but not Django's SQL log: its parameters hold
    password hashes and admin session keys, which no redaction of key names can find."""
    result = _run_django(
        "import django; django.setup(); from django.core.management import call_command; "
        "call_command('migrate', verbosity=0); from accounts.models import User; "
        "User.objects.create_user(email='a@example.com', password='correct horse battery'); "
        "import logging; logging.getLogger('clusters').debug('debug lines still go out')",
        {"DJANGO_DEBUG": "1", "LOG_LEVEL": "DEBUG", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"},
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "debug lines still go out" in result.stdout
    assert "argon2" not in result.stdout + result.stderr
    assert "django.db.backends" not in result.stdout + result.stderr


@pytest.mark.django_db
def test_a_postgresql_connection_gives_up_on_a_vanished_host_within_seconds():
    """The kept connection's socket carries the timeouts (a host that vanished is noticed in
    10 s, not after the kernel's 15 minutes of retransmissions)."""
    import os
    import socket

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only (DATABASE_URL=postgres://...): libpq's TCP settings")
    connection.ensure_connection()
    with socket.socket(fileno=os.dup(connection.connection.pgconn.socket)) as kept:
        assert kept.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 10_000
        assert kept.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert kept.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 10


def test_every_variable_the_portal_reads_is_in_the_readme_table_and_env_example():
    """An operator configures from the README's table and `.env.example`: a setting missing from
    either is one they cannot find (GITOPS_REMOTE_RETRY_AFTER was missing from the example)."""
    read = set(
        re.findall(r'env_[a-z_]+\(\s*"([A-Z][A-Z0-9_]+)"', (PROJECT_ROOT / "config/settings.py").read_text())
    )
    read |= set(
        re.findall(
            r'_env_[a-z_]+\(\s*"([A-Z][A-Z0-9_]+)"', (PROJECT_ROOT / "deploy/gunicorn.conf.py").read_text()
        )
    )
    assert len(read) > 80  # the patterns still find what settings.py reads
    table_cells = re.findall(r"^\|([^|]+)\|", (PROJECT_ROOT / "README.md").read_text(), re.MULTILINE)
    in_table = {name for cell in table_cells for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", cell)}
    example = set(
        re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (PROJECT_ROOT / ".env.example").read_text(), re.MULTILINE)
    )
    assert sorted(read - in_table) == []
    assert sorted(read - example) == []


def test_a_management_command_with_a_wrong_setting_says_which_in_one_line(tmp_path):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "DJANGO_SECRET_KEY"}
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_ROOT,
        env={**clean_env, **env, "PORTAL_VAR_DIR": str(tmp_path), "PORTAL_ENV_FILE": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()  # no traceback
    assert line.startswith("Configuration error: DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off")


def test_in_development_the_api_answers_json_however_it_is_asked_and_keeps_no_connections(tmp_path):
    """`make run` (DEBUG, runserver's thread per request): a request asking for HTML gets the
    contract's JSON error (not DRF's HTML page), and no request leaves a database connection open."""
    code = (
        "import django; django.setup(); from django.conf import settings; from django.test import Client; "
        "response = Client().get('/api/auth/me', headers={'Accept': 'text/html'}); "
        "print('answer:', response.status_code, response['Content-Type'], response.json()['code']); "
        "print('kept:', settings.DATABASES['default']['CONN_MAX_AGE'])"
    )
    result = _run_django(code, {"DJANGO_DEBUG": "1", "DJANGO_ALLOWED_HOSTS": "testserver"}, tmp_path)
    assert result.returncode == 0, result.stderr
    printed = [line for line in result.stdout.splitlines() if line.startswith(("answer:", "kept:"))]
    assert printed == ["answer: 406 application/json not_acceptable", "kept: 0"]
