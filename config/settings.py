"""Qdrant Portal settings: one file, driven by environment variables.

Every variable is documented in README.md and .env.example. Development defaults are
safe (SQLite and a gitops repository under var/, an in-process cache); with DEBUG off,
missing secrets stop the process at start instead of running with a guessable default.
"""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.env import (
    LOG_LEVELS,
    database_from_url,
    email_from_url,
    env_bool,
    env_choice,
    env_duration,
    env_file_load,
    env_int,
    env_list,
    env_rate,
    env_sentry_dsn,
    env_str,
    env_url,
    env_url_list,
    env_url_template,
)
from config.logging import django_logging

BASE_DIR = Path(__file__).resolve().parent.parent
# Local development: `make run` writes a .env (DJANGO_DEBUG=1), so `python manage.py <command>`
# runs with the same settings as the server. The environment always wins over the file;
# PORTAL_ENV_FILE names another file, or none when empty (the tests, production images).
env_file_load(os.environ.get("PORTAL_ENV_FILE", str(BASE_DIR / ".env")))
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))

# --- Core -------------------------------------------------------------------------------

DEBUG = env_bool("DJANGO_DEBUG", False)

SECRET_KEY = env_str("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is required when DJANGO_DEBUG is off "
            "(set DJANGO_DEBUG=1 for local development)."
        )
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"  # noqa: S105
# Keys it replaced, still accepted for what they signed or keyed (sessions, recovery codes).
SECRET_KEY_FALLBACKS = env_list("DJANGO_SECRET_KEY_FALLBACKS")

ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
# The pod's own address (Kubernetes downward API): Prometheus scrapes /metrics with it as Host.
POD_IP = env_str("POD_IP")
if POD_IP:
    ALLOWED_HOSTS.append(f"[{POD_IP}]" if ":" in POD_IP else POD_IP)

INSTALLED_APPS = [
    # The admin, signed in to through the portal's sign-in (accounts/admin_site.py).
    "accounts.apps.PortalAdminConfig",
    # Before django.contrib.auth: its changepassword command is the one manage.py runs.
    "accounts",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "clusters",
    "operations",
    "frontend",
]

MIDDLEWARE = [
    # First, so that every response (redirects and errors too) carries X-Request-ID.
    "config.middleware.RequestIdMiddleware",
    # Next, so that every answer is counted and timed, whichever middleware gave it.
    "config.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    # After those (none reads the query string), so that its 400 carries their headers too.
    "config.middleware.QueryStringLimitMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A lost database answers 503 database_unavailable (the API's views map it themselves).
    "config.middleware.DatabaseOutageMiddleware",
    # Hands out a fresh access token when the presented one carries outdated claims.
    "accounts.authentication.ExtendedTokenMiddleware",
    "frontend.csp.ContentSecurityPolicyMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database and cache -------------------------------------------------------------------

DATABASES = {
    "default": {
        **database_from_url(env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'portal.sqlite3'}")),
        # 0 under DEBUG: runserver's thread per request would leave each connection open.
        "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 0 if DEBUG else 60, minimum=0),
        "CONN_HEALTH_CHECKS": True,
    }
}
if not env_str("DATABASE_URL", ""):
    # The default file's folder, so that `manage.py migrate` works in a fresh clone before `make run`.
    with contextlib.suppress(OSError):  # then SQLite says what is wrong, when a command opens it
        VAR_DIR.mkdir(parents=True, exist_ok=True)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Several threads (and the gitops lock) share one file: wait for the lock instead of failing.
    # WAL lets pages read while another worker writes, and with synchronous=NORMAL a commit no
    # longer waits for the disk: an application crash loses nothing; a power cut can lose the
    # last commits, never the file (SQLite's documented pairing). Not on a network file system.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    # libpq waits for ever on a server that accepts connections but does not answer (hung, or
    # gone behind a proxy): give up after a few seconds, answered 503 database_unavailable.
    # DATABASE_URL's query may say otherwise (?connect_timeout=10).
    DATABASES["default"]["OPTIONS"].setdefault("connect_timeout", 5)
    if DATABASES["default"]["ENGINE"].endswith("postgresql"):
        # A kept connection (CONN_MAX_AGE) to a host that vanished (network cut, host down)
        # would wait for the kernel's retransmissions, about 15 minutes: give up after 10 s of
        # unacknowledged data, or 20 s of silence on an idle connection. A server that is up
        # but never answers is not bounded by this (the kernel acknowledges): see the README.
        for name, value in {
            "keepalives": 1,
            "keepalives_idle": 10,
            "keepalives_interval": 5,
            "keepalives_count": 2,
            "tcp_user_timeout": 10_000,
        }.items():
            DATABASES["default"]["OPTIONS"].setdefault(name, value)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "config.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env_str("CACHE_KEY_PREFIX", "portal"),
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    # Without Redis: a cache on local disk, which every process of this machine shares (gunicorn's
    # workers, runserver, a management command revoking a session). Not for several replicas.
    CACHES = {"default": {"BACKEND": "config.cache.FileCache", "LOCATION": str(VAR_DIR / "cache")}}

# --- Authentication -----------------------------------------------------------------------

AUTH_USER_MODEL = "accounts.User"
# Django's model permissions (the admin's) are the operators' only: see accounts/backends.py.
AUTHENTICATION_BACKENDS = ["accounts.backends.OperatorPermissionsBackend"]

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Tokens (see README "Token design"). Durations: seconds or a number with a unit.
JWT_ALGORITHM = env_str("JWT_ALGORITHM", "RS256")
JWT_PRIVATE_KEYS = env_str("JWT_PRIVATE_KEYS")  # one or more PEM private keys, concatenated
JWT_KEYS_DIR = Path(env_str("JWT_KEYS_DIR", str(VAR_DIR / "jwt-keys")))
JWT_SECRET = env_str("JWT_SECRET")  # only for JWT_ALGORITHM=HS256
JWT_ISSUER = env_str("JWT_ISSUER", "qdrant-portal")
JWT_AUDIENCE = env_str("JWT_AUDIENCE", "qdrant-portal")  # the `aud` claim, required when decoding
_SECOND = timedelta(seconds=1)
JWT_ACCESS_TTL = env_duration("JWT_ACCESS_TTL", "15m", minimum=_SECOND)
JWT_REFRESH_TTL = env_duration("JWT_REFRESH_TTL", "7d", minimum=_SECOND)
JWT_TTL = env_duration("JWT_TTL", "20m", minimum=_SECOND)  # session idle timeout
JWT_SESSION_MAX = env_duration("JWT_SESSION_MAX", "30d", minimum=_SECOND)
# Two tabs refreshing at once, not a window in which a stolen refresh token goes unnoticed.
JWT_REFRESH_REUSE_GRACE = env_duration("JWT_REFRESH_REUSE_GRACE", "10s", maximum=timedelta(minutes=1))
# How long /validate trusts the cached facts about a user (active, email, scope) that were
# changed without the portal's services (a shell, a data migration); services update it at once.
CLAIMS_CACHE_TTL = env_duration("CLAIMS_CACHE_TTL", "30s")
# The one hook through which the token service learns a user's scope (a client app owns grants,
# their permissions and each client's sign-in policy): it answers an accounts.scopes.UserScope.
SCOPE_CLAIM_FUNCTION = "clusters.selectors.user_scope"
# Personal access tokens (qpt_...) for scripts and CI: the shortest lifetime one may be asked
# for, and the longest it may have.
PAT_MIN_TTL = timedelta(minutes=1)
PAT_MAX_TTL = env_duration("PAT_MAX_TTL", "365d", minimum=PAT_MIN_TTL)

AUTH_COOKIE_SECURE = env_bool("AUTH_COOKIE_SECURE", not DEBUG)
_SAMESITE = ("lax", "strict", "none")
ACCESS_COOKIE_SAMESITE = env_choice("ACCESS_COOKIE_SAMESITE", "Lax", _SAMESITE)
REFRESH_COOKIE_SAMESITE = env_choice("REFRESH_COOKIE_SAMESITE", "Strict", _SAMESITE)

LOGIN_THROTTLE_IP = env_rate("LOGIN_THROTTLE_IP", "20/min")
LOGIN_THROTTLE_ACCOUNT = env_rate("LOGIN_THROTTLE_ACCOUNT", "5/min")
# Invitation emails one user may send (API; the admin is not limited): no mail-bombing an address.
INVITATION_THROTTLE = env_rate("INVITATION_THROTTLE", "50/hour")
# Proxies in front of the app that append to X-Forwarded-For (0: trust only REMOTE_ADDR).
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0, minimum=0)

GOOGLE_CLIENT_IDS = env_list("GOOGLE_CLIENT_IDS")
GOOGLE_ALLOWED_DOMAINS = [d.lower() for d in env_list("GOOGLE_ALLOWED_DOMAINS")]
# The hook through which a Google sign-in provisions people into the clients whose sign-in policy
# takes their Workspace (just-in-time membership; the clusters app owns clients).
GOOGLE_PROVISIONING_FUNCTION = "clusters.services.google_identity_provision"
# The hook through which an account taken back (a password changed, reset or set by an operator;
# a deactivation) ends what another app keeps that the account sent (a client's invitations).
ACCOUNT_TAKEN_BACK_FUNCTION = "clusters.services.inviter_taken_back"

# Second factors, passkeys, passwords (see README "Account security").
MFA_REQUIRED_FOR_STAFF = env_bool("MFA_REQUIRED_FOR_STAFF", not DEBUG)
REAUTHENTICATION_WINDOW = env_duration("REAUTHENTICATION_WINDOW", "5m", minimum=_SECOND)
MFA_TOKEN_TTL = env_duration("MFA_TOKEN_TTL", "5m", minimum=_SECOND)
# Passkeys are bound to a domain: by default the host the request names, and its origin.
WEBAUTHN_RP_ID = env_str("WEBAUTHN_RP_ID")
WEBAUTHN_ORIGINS = env_url_list("WEBAUTHN_ORIGINS")
# The browser app's public address, for links in emails (a password reset).
PUBLIC_URL = env_url("PUBLIC_URL", "http://127.0.0.1:8000" if DEBUG else "")
PASSWORD_RESET_TIMEOUT = int(env_duration("PASSWORD_RESET_TIMEOUT", "1h", minimum=_SECOND).total_seconds())
# At most one reset email per address this often: nobody can flood an inbox, and the owner asking
# meanwhile finds the link already sent still working (so never longer than a link works).
PASSWORD_RESET_EMAIL_INTERVAL = min(
    env_duration("PASSWORD_RESET_EMAIL_INTERVAL", "15m", minimum=_SECOND),
    timedelta(seconds=PASSWORD_RESET_TIMEOUT),
)
# How long an invitation to a client's team can be accepted (its link works once).
INVITATION_TTL = env_duration("INVITATION_TTL", "7d", minimum=_SECOND)
EMAIL_SEND_IN_BACKGROUND = env_bool("EMAIL_SEND_IN_BACKGROUND", True)
# Mail: smtp://user:pass@host:587 (STARTTLS) or smtps://...:465; console:// under `make run`.
# Unset without DEBUG: nothing is sent (a password reset logs that it could not be).
_email = email_from_url(env_str("EMAIL_URL", "console://" if DEBUG else "dummy://"))
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "localhost")
EMAIL_PORT = _email.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = _email.get("EMAIL_TIMEOUT")
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Qdrant Portal <portal@qdrant-portal.local>")

# --- Clusters -----------------------------------------------------------------------------

REPLICAS_MIN = env_int("REPLICAS_MIN", 1)
REPLICAS_MAX = env_int("REPLICAS_MAX", 10)
# Qdrant releases (vMAJOR.MINOR.PATCH) clusters may run: by default the newest patch of each
# minor from v1.16 to the Qdrant Helm chart 1.19.0's appVersion, v1.19.0. Clusters move only
# forwards, one minor at a time (clusters/versions.py); new clusters get the newest.
QDRANT_VERSIONS = env_list("QDRANT_VERSIONS", ["v1.16.3", "v1.17.1", "v1.18.3", "v1.19.0"])


def _qdrant_release(version: str) -> tuple[int, ...] | None:
    parts = version.removeprefix("v").split(".")
    ok = len(parts) == 3 and all(part.isascii() and part.isdigit() and len(part) <= 4 for part in parts)
    return tuple(int(part) for part in parts) if ok else None


if not QDRANT_VERSIONS or not all(_qdrant_release(v) for v in QDRANT_VERSIONS):
    raise ImproperlyConfigured("QDRANT_VERSIONS must list release versions such as v1.19.0, comma-separated.")
QDRANT_DEFAULT_VERSION = env_str("QDRANT_DEFAULT_VERSION", max(QDRANT_VERSIONS, key=_qdrant_release))
# How long both API keys are accepted in a two-phase key rotation before gitops_sync finishes it.
KEY_ROTATION_GRACE = env_duration("KEY_ROTATION_GRACE", "24h")
STORAGE_GI_DEFAULT = env_int("STORAGE_GI_DEFAULT", 10, minimum=1)
STORAGE_GI_MAX = env_int("STORAGE_GI_MAX", 1024, minimum=1)
# The placeholders clusters.selectors.cluster_endpoint fills in.
QDRANT_ENDPOINT_TEMPLATE = env_url_template(
    "QDRANT_ENDPOINT_TEMPLATE", "https://{cluster}.{client}.qdrant.local", placeholders=("client", "cluster")
)

FIELD_ENCRYPTION_KEY = env_str("FIELD_ENCRYPTION_KEY")
if not FIELD_ENCRYPTION_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is required when DJANGO_DEBUG is off.")
    FIELD_ENCRYPTION_KEY = "development-only-field-encryption-key"

if not 1 <= REPLICAS_MIN <= REPLICAS_MAX:
    raise ImproperlyConfigured("REPLICAS_MIN and REPLICAS_MAX must satisfy 1 <= MIN <= MAX.")
if QDRANT_DEFAULT_VERSION not in QDRANT_VERSIONS:
    raise ImproperlyConfigured("QDRANT_DEFAULT_VERSION must be one of QDRANT_VERSIONS.")

# --- GitOps -------------------------------------------------------------------------------

GITOPS_REPO_PATH = Path(env_str("GITOPS_REPO_PATH", str(VAR_DIR / "gitops.git")))
GITOPS_BRANCH = env_str("GITOPS_BRANCH", "main")
GITOPS_REMOTE_URL = env_str("GITOPS_REMOTE_URL")
GITOPS_REMOTE_TOKEN = env_str("GITOPS_REMOTE_TOKEN")
GITOPS_SSH_KEY_PATH = env_str("GITOPS_SSH_KEY_PATH")
GITOPS_COMMITTER = env_str("GITOPS_COMMITTER", "Qdrant Portal <portal@qdrant-portal.local>")
GITOPS_SEALING_CERT = env_str("GITOPS_SEALING_CERT")  # path to the sealed-secrets public certificate
GITOPS_PUSH_RETRIES = env_int("GITOPS_PUSH_RETRIES", 5, minimum=0)
# After a failed push, writes commit locally and answer 202 for this long without trying the
# remote, so that an outage costs one write its timeouts, not every write in turn.
GITOPS_REMOTE_RETRY_AFTER = env_duration("GITOPS_REMOTE_RETRY_AFTER", "30s", minimum=timedelta(0))
QDRANT_CHART_VERSION = env_str("QDRANT_CHART_VERSION", "1.19.0")
ARGOCD_PROJECT = env_str("ARGOCD_PROJECT", "qdrant-clusters")

# --- Argo CD: deployment status read back (README "Deployment status") --------------------

# Argo CD's API server; unset, the portal never asks Argo CD and clusters carry no deployment.
ARGOCD_URL = env_url("ARGOCD_URL")
ARGOCD_TOKEN = env_str("ARGOCD_TOKEN")  # a read-only account's (deploy/argocd/portal-account/)
# The ApplicationSet's namespace, and so its Applications' (empty: argocd).
ARGOCD_APP_NAMESPACE = env_str("ARGOCD_APP_NAMESPACE")
ARGOCD_CA_FILE = env_str("ARGOCD_CA_FILE")  # CA of Argo CD's certificate; TLS is always verified
ARGOCD_TIMEOUT = env_duration("ARGOCD_TIMEOUT", "2s", minimum=_SECOND)
# Argo CD's web UI as people's browsers reach it, for the admin's links (ARGOCD_URL may be an
# in-cluster service address no browser can open).
ARGOCD_UI_URL = env_url("ARGOCD_UI_URL", ARGOCD_URL)
# How long a status read from Argo CD is reused (shared cache): a page costs Argo CD at most
# one request per cache period, and a slow Argo CD at most ARGOCD_TIMEOUT.
ARGOCD_CACHE_TTL = env_duration("ARGOCD_CACHE_TTL", "5s")
# A cluster whose rollout has not become healthy this long after Argo CD applied it reads
# "degraded" (and ``manage.py deployments`` alerts): Argo CD never says so of a StatefulSet.
DEPLOYMENT_PROGRESS_DEADLINE = env_duration("DEPLOYMENT_PROGRESS_DEADLINE", "10m", minimum=_SECOND)
if ARGOCD_URL:
    if not ARGOCD_TOKEN and not DEBUG:
        raise ImproperlyConfigured("ARGOCD_TOKEN is required when ARGOCD_URL is set (see deploy/argocd).")
    if ARGOCD_CA_FILE and not Path(ARGOCD_CA_FILE).is_file():
        raise ImproperlyConfigured(f"ARGOCD_CA_FILE={ARGOCD_CA_FILE} is not a file.")

# --- HTTP, CORS, CSRF and security headers ------------------------------------------------

API_BASE_URL = env_str("API_BASE_URL")  # set when the browser app is served from another origin
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
CORS_ALLOW_CREDENTIALS = True
CORS_URLS_REGEX = r"^/(api/|\.well-known/).*$"
CORS_ALLOW_HEADERS = (
    "accept",
    "authorization",
    "content-type",
    "x-csrftoken",
    "x-auth-token",
    "x-request-id",
)
CORS_EXPOSE_HEADERS = ("x-extended-token", "x-request-id", "retry-after")

# A browser app allowed by CORS sends cookie-authenticated writes too: trust its Origin for CSRF.
CSRF_TRUSTED_ORIGINS = [*env_list("CSRF_TRUSTED_ORIGINS"), *CORS_ALLOWED_ORIGINS]
CSRF_COOKIE_SECURE = AUTH_COOKIE_SECURE
SESSION_COOKIE_SECURE = AUTH_COOKIE_SECURE
# Django's session is only the admin's, bound to a portal session (accounts/admin_site.py) and
# renewed while it is used: it lasts no longer unused than a portal session does (JWT_TTL).
SESSION_COOKIE_AGE = int(JWT_TTL.total_seconds())

SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# Probes and Prometheus reach the pod directly over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if env_bool("DJANGO_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 0 if DEBUG else 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
# Submitting a domain to the HSTS preload list is the domain owner's decision, not the app's.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
if DATABASES["default"]["ENGINE"] == "config.mysql":
    # "MariaDB does not support unique constraints with conditions / on expressions": config.mysql
    # builds them with generated columns (and fails the migration when it cannot).
    SILENCED_SYSTEM_CHECKS += ["models.W036", "models.W044"]
    # "MariaDB may not allow unique CharFields to have a max_length > 255": MariaDB 10.5+ enforces
    # them by hash; MySQL 8, which cannot, is refused by portal.mysql.E003.
    SILENCED_SYSTEM_CHECKS += ["mysql.W003"]
# Google's sign-in popup reports back to its opener, which "same-origin" would cut off.
if GOOGLE_CLIENT_IDS:
    SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin-allow-popups"

# --- Operations: metrics and error reporting ----------------------------------------------

# /metrics answers only with `Authorization: Bearer <METRICS_TOKEN>`; unset, it does not exist (404).
METRICS_TOKEN = env_str("METRICS_TOKEN")
# gunicorn's workers share their metrics through files here (prometheus-client's multiprocess
# mode, which reads the variable itself); unset, each process counts for itself.
PROMETHEUS_MULTIPROC_DIR = env_str("PROMETHEUS_MULTIPROC_DIR")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR} is not a directory.")

# `manage.py records_prune` (a daily CronJob) deletes sign-in and client audit events and ended
# sessions older than this; the floor keeps a typo such as "1" (a second) from wiping the trail.
AUDIT_RETENTION_MINIMUM = timedelta(days=1)
AUDIT_RETENTION = env_duration("AUDIT_RETENTION", "365d", minimum=AUDIT_RETENTION_MINIMUM)

# Errors go to Sentry when SENTRY_DSN is set, scrubbed of tokens, cookies, passwords and keys.
SENTRY_DSN = env_sentry_dsn("SENTRY_DSN")
SENTRY_ENVIRONMENT = env_str("SENTRY_ENVIRONMENT", "production")
if SENTRY_DSN:
    from config.sentry import sentry_init

    sentry_init(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT)

# --- REST framework and OpenAPI -----------------------------------------------------------

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.JWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # JSON only, in development too: one error shape whatever Accept says (docs: /api/docs/).
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["config.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "config.negotiation.FormatNotAcceptableNegotiation",
    # No OPTIONS metadata: it would describe views to callers the views themselves refuse
    # (CORS preflight is answered by corsheaders before any view).
    "DEFAULT_METADATA_CLASS": None,
    "DEFAULT_SCHEMA_CLASS": "config.openapi.PortalAutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Qdrant Portal API",
    "DESCRIPTION": "Sign in, see and scale your Qdrant clusters, read their credentials.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    # Public: a stale or garbled token a browser still holds must not lock anyone out of the docs.
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "COMPONENT_SPLIT_PATCH": False,  # no PATCH here is partial: a required field stays required
    # Two fields are named "state": the cluster's deployment gets an enum of its own, the storage
    # request keeps the name it always had (StateEnum).
    "ENUM_NAME_OVERRIDES": {
        "DeploymentStateEnum": "clusters.deployment_states.DEPLOYMENT_STATES",
        "StateEnum": "clusters.selectors.STORAGE_STATES",
    },
    "PATH_CONVERTER_OVERRIDES": {  # clusters.urls.NameConverter: clusters.models.SLUG_PATTERN
        "name": {"type": "string", "pattern": "^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$", "maxLength": 40}
    },
}

# --- Static files, i18n -------------------------------------------------------------------

STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG and env_bool("STATIC_MANIFEST", True)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = env_bool("WHITENOISE_USE_FINDERS", DEBUG)

TIME_ZONE = "UTC"

# --- Logging ------------------------------------------------------------------------------

LOG_LEVEL = env_choice("LOG_LEVEL", "INFO", LOG_LEVELS).upper()
# One JSON object per line with the request id; tokens, keys and passwords are redacted.
LOGGING = django_logging(level=LOG_LEVEL)

CSRF_FAILURE_VIEW = "config.exceptions.csrf_failure"
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.exceptions.SecretHidingReporterFilter"
