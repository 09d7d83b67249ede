"""``manage.py check --deploy`` warns when replicas could not share revocations."""

from __future__ import annotations

from django.conf import settings
from django.core.management import call_command

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
