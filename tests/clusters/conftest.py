"""Fixtures the clusters tests share."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import accounts.google
from accounts.google import CachingRequest
from clusters.models import Grant
from clusters.services import grant_set
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
def admin1(user_factory, client1):
    """client1's admin: runs its team and its sign-in policy."""
    user = user_factory(email="admin1@example.com", name="Admin One")
    grant_set(user=user, client=client1, role=Grant.Role.ADMIN)
    return user


@pytest.fixture
def as_admin1(auth_client, admin1):
    return auth_client(admin1)


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
