"""Fixtures the clusters tests share."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import Client as BrowserClient

import accounts.google
from accounts.audit import RequestCredential, RequestOrigin
from accounts.google import CachingRequest
from accounts.models import User
from clusters.services import KeysShownTo
from tests.accounts.google_tokens import CLIENT_ID, KID, FakeGoogle, certificate_pem, private_key


@pytest.fixture
def sealing_certificate(tmp_path, settings):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "sealed-secret")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    path = tmp_path / "sealing.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    settings.GITOPS_SEALING_CERT = str(path)
    return key


@pytest.fixture
def operator(user_factory) -> User:
    """The operator who works in the Django admin (a superuser)."""
    return user_factory(email="root@example.com", is_staff=True, is_superuser=True, is_operator=True)


@pytest.fixture
def admin_browser(operator) -> BrowserClient:
    """The operator's browser, signed in to the Django admin."""
    browser = BrowserClient()
    browser.force_login(operator)
    return browser


@pytest.fixture(scope="module")
def google_key():
    return private_key()


@pytest.fixture
def google(settings, google_key, monkeypatch):
    """Google sign-in on, verifying with the certificate of ``google_key`` (served in process)."""
    settings.GOOGLE_CLIENT_IDS = [CLIENT_ID]
    settings.GOOGLE_ALLOWED_DOMAINS = []
    monkeypatch.setattr(
        accounts.google, "_google_request", CachingRequest(FakeGoogle({KID: certificate_pem(google_key)}))
    )
    return google_key


def shown_to(user) -> KeysShownTo:
    """A key change's reader, as a service call outside a request names them."""
    return KeysShownTo(
        actor=user, credential=RequestCredential(), origin=RequestOrigin(ip=None, user_agent="")
    )
