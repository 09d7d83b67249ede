"""Deployment checks (``manage.py check --deploy``): what would quietly weaken the token service."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.http.request import split_domain_port, validate_host

from accounts.tokens import key_ring_load

SHARED_CACHE_BACKEND = "config.cache.RedisCache"


@checks.register(checks.Tags.security, deploy=True)
def session_cache_shared_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Revocation, idle time and throttles live in the cache: one replica must see another's."""
    if settings.CACHES["default"]["BACKEND"] == SHARED_CACHE_BACKEND:
        return []
    return [
        checks.Warning(
            "No REDIS_URL: sessions, revocations and sign-in throttles are kept in this host's own "
            "file cache. A session revoked (or a password throttled) on one replica would not be on "
            "another.",
            hint="Run a single host, or set REDIS_URL so that every replica shares the cache.",
            id="accounts.W001",
        )
    ]


@checks.register(checks.Tags.security, deploy=True)
def signing_key_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Without a usable signing key every request fails, the probes' too: said before a rollout."""
    if settings.DEBUG:
        return []  # development makes a key in var/ on first use; checking must not
    try:
        key_ring_load()
    except ImproperlyConfigured as error:
        return [checks.Error(str(error), hint="See the README's token design.", id="accounts.E001")]
    except (ValueError, TypeError) as error:  # what cryptography raises for a PEM that is no key
        return [checks.Error(f"JWT_PRIVATE_KEYS holds no usable key: {error}", id="accounts.E001")]
    return []


@checks.register(checks.Tags.security, deploy=True)
def public_url_host_check(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Emails link to PUBLIC_URL: a host the portal refuses (one left at an example's) is a dead link."""
    # The host as Django reads a Host header (brackets of an IPv6 address, a final dot).
    host, _ = split_domain_port(urlsplit(settings.PUBLIC_URL).netloc.rpartition("@")[2])
    if not host or validate_host(host, settings.ALLOWED_HOSTS):
        return []
    return [
        checks.Warning(
            f"PUBLIC_URL's host {host} is not in DJANGO_ALLOWED_HOSTS: the links in password reset, "
            "invitation and security emails would lead to a portal that refuses them (400).",
            hint="Set PUBLIC_URL to the address people use, and list its host in DJANGO_ALLOWED_HOSTS.",
            id="accounts.W003",
        )
    ]


@checks.register(checks.Tags.database)
def unplain_emails_check(app_configs, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """Accounts stored before the portal took plain addresses only (``accounts.emails``): run at
    ``migrate`` (and ``check --database default``), so the upgrade tells who must get a new one."""
    from django.db import DatabaseError

    from accounts.emails import email_canonical_or_none
    from accounts.models import User

    if not databases:
        return []
    try:
        emails = list(User.objects.values_list("email", flat=True))
    except DatabaseError:  # not migrated yet
        return []
    unplain = sorted(email for email in emails if email_canonical_or_none(email) != email)
    if not unplain:
        return []
    return [
        checks.Warning(
            f"{len(unplain)} account(s) have an email address the portal no longer accepts (a quoted "
            f"part, an IP literal): {', '.join(unplain[:5])}{' …' if len(unplain) > 5 else ''}. They cannot "
            "sign in with a password or reset it, and the address travels to other services as it is.",
            hint="Give each a plain address on its page in the admin (Users).",
            id="accounts.W002",
        )
    ]
