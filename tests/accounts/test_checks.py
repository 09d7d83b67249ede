"""``manage.py check --deploy`` warns when replicas could not share revocations."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from accounts import checks


def _deploy_check(capsys) -> str:
    call_command("check", "--deploy", "--tag", "security")
    out = capsys.readouterr()
    return out.err + out.out


def test_without_redis_the_deploy_check_warns_that_replicas_share_no_revocations(monkeypatch, capsys):
    # The test run's own cache stands for a host's file cache (Redis or not, it is not "that one").
    monkeypatch.setattr(checks, "SHARED_CACHE_BACKEND", "some.other.Backend")
    output = _deploy_check(capsys)
    assert "accounts.W001" in output
    assert "Run a single host, or set REDIS_URL" in output


def test_with_the_shared_cache_the_deploy_check_is_quiet_about_it(monkeypatch, capsys):
    monkeypatch.setattr(checks, "SHARED_CACHE_BACKEND", settings.CACHES["default"]["BACKEND"])
    assert "accounts.W001" not in _deploy_check(capsys)


def test_a_deployment_without_a_signing_key_fails_the_deploy_check(settings, tmp_path):
    """Every request, the probes' too, would refuse to run: the check says so before a rollout."""
    settings.DEBUG = False
    settings.JWT_ALGORITHM, settings.JWT_PRIVATE_KEYS = "RS256", ""
    settings.JWT_KEYS_DIR = str(tmp_path / "no-keys-here")
    with pytest.raises(SystemCheckError) as failed:
        call_command("check", "--deploy", "--tag", "security")
    assert "accounts.E001" in str(failed.value) and "No JWT signing key" in str(failed.value)
    assert not (tmp_path / "no-keys-here").exists()  # checking makes no key


def test_a_configured_signing_key_passes_the_deploy_check(settings, capsys):
    settings.DEBUG = False
    call_command("check", "--deploy", "--tag", "security")
    assert "accounts.E001" not in capsys.readouterr().err


def test_a_signing_key_that_is_no_key_fails_the_deploy_check_with_the_reason(settings):
    """A mangled PEM in the Secret: an error that names it, not a traceback hiding the others."""
    settings.DEBUG = False
    settings.JWT_ALGORITHM = "RS256"
    settings.JWT_PRIVATE_KEYS = "-----BEGIN PRIVATE KEY-----\nnotbase64!!\n-----END PRIVATE KEY-----\n"
    with pytest.raises(SystemCheckError) as failed:
        call_command("check", "--deploy", "--tag", "security")
    assert "accounts.E001" in str(failed.value) and "JWT_PRIVATE_KEYS" in str(failed.value)


@pytest.mark.django_db
def test_migrate_names_the_accounts_whose_stored_email_is_no_longer_accepted(user_factory, capsys):
    """Stored by an older release, which took a quoted address: the operator is told at upgrade."""
    user = user_factory(email="plain@example.com")
    type(user).objects.filter(pk=user.pk).update(email='"admin@example.com"@attacker.test')

    call_command("check", "--database", "default")

    output = capsys.readouterr()
    assert "accounts.W002" in output.err + output.out
    assert '"admin@example.com"@attacker.test' in output.err + output.out


@pytest.mark.django_db
def test_the_email_check_is_quiet_when_every_address_is_plain(user_factory, capsys):
    user_factory(email="plain@example.com")
    call_command("check", "--database", "default")
    assert "accounts.W002" not in "".join(capsys.readouterr())


def test_a_public_url_the_portal_would_refuse_fails_the_deploy_check(settings, capsys):
    """An overlay that set the host names but left PUBLIC_URL at the example's: every emailed link dead."""
    settings.ALLOWED_HOSTS = ["portal.acme.io", "localhost"]
    settings.PUBLIC_URL = "https://portal.example.com"
    assert "accounts.W003" in _deploy_check(capsys)

    settings.PUBLIC_URL = "https://portal.acme.io"
    assert "accounts.W003" not in _deploy_check(capsys)


@pytest.mark.parametrize(
    ("public_url", "allowed"),
    [("http://[::1]:8000", ["[::1]"]), ("https://portal.acme.io.", ["portal.acme.io"])],
)
def test_a_public_url_django_would_serve_passes_the_deploy_check(settings, capsys, public_url, allowed):
    settings.ALLOWED_HOSTS, settings.PUBLIC_URL = allowed, public_url
    assert "accounts.W003" not in _deploy_check(capsys)
