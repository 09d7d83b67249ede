"""Typed readers for environment variables, used only by settings.py.

Durations accept a whole number of seconds or a number with a unit
(``900``, ``15m``, ``20m``, ``7d``, ``10s``); lists are comma-separated. An empty or blank
value (``NAME=`` in an env file, an empty ConfigMap key) means the default, for every reader.
A value that would break requests later is refused here with ``ImproperlyConfigured``,
naming the variable.
"""

from __future__ import annotations

import logging
import os
import re
from datetime import timedelta
from urllib.parse import SplitResult, parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhd]?)\s*$", re.ASCII)  # "٣d" is no duration
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}
# The standard level names, as LOG_LEVEL and logging's dictConfig take them (any letter case).
LOG_LEVELS = tuple(name.lower() for name in logging.getLevelNamesMapping())


def env_file_load(path: str) -> None:
    """Read ``NAME=value`` lines from ``path`` into the environment, never over a variable already set."""
    if path:
        load_dotenv(path, override=False)


def env_str(name: str, default: str = "") -> str:
    """The variable's value; an empty one (``NAME=`` in an env file) means the default."""
    return os.environ.get(name, "").strip() or default


def env_bool(name: str, default: bool) -> bool:
    """True or false; an empty value means the default, as for every variable (never a silent
    "off": ``AUTH_COOKIE_SECURE=`` must not drop the Secure flag)."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {os.environ[name]!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    """One of ``choices`` (any letter case), as given; empty means the default."""
    value = os.environ.get(name, "").strip() or default
    if value.lower() not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


# What Django REST framework's throttles read: a count, a slash, a period (s, m, h, d, or a
# word starting with one: min, hour, day).
_RATE = re.compile(r"^[1-9][0-9]*/[smhd][a-z]*$")


def env_rate(name: str, default: str) -> str:
    """A throttle rate such as ``20/min`` (empty: the default): refused at start, not by every
    request it would limit."""
    value = os.environ.get(name, "").strip() or default
    if not _RATE.match(value):
        raise ImproperlyConfigured(f"{name} must be a rate such as 20/min or 50/hour, got {value!r}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_url(name: str, default: str = "") -> str:
    """An http(s) URL with a host, without a trailing slash (empty: the default, which may be empty)."""
    url = env_str(name, default).rstrip("/")
    if url:
        _web_url_check(name, url)
    return url


def env_url_list(name: str) -> list[str]:
    """Comma-separated http(s) URLs (origins such as ``https://portal.example.com``)."""
    urls = env_list(name)
    for url in urls:
        _web_url_check(name, url)
    return urls


def env_url_template(name: str, default: str, *, placeholders: tuple[str, ...]) -> str:
    """An http(s) URL that names some of ``placeholders`` in braces (``https://{cluster}.example.com``):
    checked once here, rather than failing each page that formats it."""
    template = env_str(name, default)
    try:
        sample = template.format(**{placeholder: placeholder for placeholder in placeholders})
    except (KeyError, IndexError, ValueError, AttributeError):
        names = ", ".join(f"{{{placeholder}}}" for placeholder in placeholders)
        raise ImproperlyConfigured(
            f"{name} may use only the placeholders {names}, in balanced braces, got {template!r}"
        ) from None
    _web_url_check(name, sample)
    return template


def _web_url_check(name: str, url: str) -> None:
    parts = urlsplit_checked(name, url)
    if parts.scheme not in {"https", "http"} or not parts.hostname:
        shown = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()  # never a user:password
        raise ImproperlyConfigured(f"{name} must be an https:// (or http://) URL with a host, got {shown!r}")


def urlsplit_checked(name: str, url: str) -> SplitResult:
    """``url`` split, its port read: a malformed one is refused naming the variable, and never
    echoed (a database or mail URL holds a password)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - reading it raises ValueError for no number, or one above 65535
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} has an invalid host or port (a port is a number up to 65535; an IPv6 address goes in [])."
        ) from None
    return parts


def env_sentry_dsn(name: str) -> str:
    """A Sentry DSN (empty: none), refused at start if the SDK could not use it."""
    dsn = env_str(name)
    if dsn:
        from sentry_sdk.utils import Dsn

        try:
            Dsn(dsn)
        except ValueError:  # the SDK's BadDsn, or urllib's for a port that is no number
            raise ImproperlyConfigured(
                f"{name} is not a valid DSN (https://<key>@<host>/<project>, as Sentry shows it)."
            ) from None
    return dsn


def duration_parse(raw: str) -> timedelta:
    """Parse ``900``, ``15m``, ``7d``... into a timedelta (ValueError when malformed)."""
    match = _DURATION.match(raw)
    if not match:
        raise ValueError(f"not a duration: {raw!r}")
    amount, unit = match.groups()
    try:
        return timedelta(seconds=int(amount) * _UNIT_SECONDS[unit])
    except OverflowError:  # beyond timedelta's range (about 2.7 million years)
        raise ValueError(f"duration out of range: {raw!r}") from None


def env_duration(
    name: str, default: str, *, minimum: timedelta | None = None, maximum: timedelta | None = None
) -> timedelta:
    raw = os.environ.get(name, "").strip() or default
    try:
        value = duration_parse(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name} must be seconds or a number with a unit (s, m, h, d), got {raw!r}"
        ) from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum.total_seconds():g} s, got {raw!r}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum.total_seconds():g} s, got {raw!r}")
    return value


def database_from_url(url: str) -> dict:
    """Translate ``sqlite:///path``, ``postgres://user:pass@host:port/name`` or
    ``mysql://user:pass@host:port/name`` (``mariadb://`` alike) to DATABASES['default']."""
    parts = urlsplit_checked("DATABASE_URL", url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        path = unquote(parts.path)
        # sqlite:///relative/file and sqlite:////absolute/file, as dj-database-url reads them.
        name = path[1:] if path.startswith("/") else path
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name or ":memory:"}
    if scheme in {"postgres", "postgresql", "pgsql"}:
        options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        return _server_database(parts, engine="django.db.backends.postgresql", options=options)
    if scheme in {"mysql", "mariadb"}:
        return _mysql_database(parts)
    raise ImproperlyConfigured(
        f"DATABASE_URL scheme {scheme!r} is not supported (use sqlite, postgres or mysql)"
    )


def _mysql_database(parts) -> dict:
    """MySQL/MariaDB, as Django's documentation advises, plus what makes it compare like PostgreSQL.

    utf8mb4 (every Unicode character), READ COMMITTED (Django's recommended isolation: a
    locking read sees the rows other transactions committed), strict mode (a value too long
    or out of range is an error, not truncated) without silently falling back from InnoDB.
    The test database is made with the binary collation ``utf8mb4_bin``, the one production
    must use too (README; ``config.mysql.validation`` says so at migrate).
    Query options go to the driver; numbers and true/false are passed as such
    (``?connect_timeout=10&ssl_ca=/etc/ssl/ca.pem&ssl_verify_identity=true``).
    """
    options: dict = {
        "charset": "utf8mb4",
        "isolation_level": "read committed",
        "init_command": "SET sql_mode = 'STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION'",
    }
    for key, values in parse_qs(parts.query).items():
        options[key] = _driver_value(values[-1])
    # Django's MySQL backend on PyMySQL, plus what config/mysql adds.
    database = _server_database(parts, engine="config.mysql", options=options)
    database["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_bin"}
    return database


def _server_database(parts, *, engine: str, options: dict) -> dict:
    """DATABASES['default'] for a database server at ``scheme://user:pass@host:port/name``."""
    return {
        "ENGINE": engine,
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "OPTIONS": options,
    }


def _driver_value(raw: str) -> str | int | bool:
    """A query option as the MySQL driver wants it: timeouts are numbers, flags are booleans."""
    if raw.isascii() and raw.isdigit():
        return int(raw)
    if raw.lower() in {"true", "false"}:
        return raw.lower() == "true"
    return raw


_EMAIL_BACKENDS = {
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "smtps": "django.core.mail.backends.smtp.EmailBackend",
    "console": "django.core.mail.backends.console.EmailBackend",
    "locmem": "django.core.mail.backends.locmem.EmailBackend",
    "dummy": "django.core.mail.backends.dummy.EmailBackend",
}


def email_from_url(url: str) -> dict:
    """Django's EMAIL_* settings from ``smtp://user:pass@host:587`` (STARTTLS), ``smtps://...:465``
    (TLS from the start), ``console://``, ``locmem://`` or ``dummy://``."""
    parts = urlsplit_checked("EMAIL_URL", url)
    scheme = parts.scheme.lower()
    if scheme not in _EMAIL_BACKENDS:
        raise ImproperlyConfigured(
            f"EMAIL_URL scheme {scheme!r} is not supported (use {', '.join(_EMAIL_BACKENDS)})."
        )
    email = {"EMAIL_BACKEND": _EMAIL_BACKENDS[scheme]}
    if scheme in {"smtp", "smtps"}:
        email.update(
            EMAIL_HOST=parts.hostname or "localhost",
            EMAIL_PORT=parts.port or (465 if scheme == "smtps" else 587),
            EMAIL_HOST_USER=unquote(parts.username or ""),
            EMAIL_HOST_PASSWORD=unquote(parts.password or ""),
            EMAIL_USE_SSL=scheme == "smtps",
            EMAIL_USE_TLS=scheme == "smtp",  # STARTTLS: never plain text to the mail server
            EMAIL_TIMEOUT=10,
        )
    return email
