"""Offline Google: an RSA key made in the test, ID tokens signed with it, and a fake certificate endpoint.

google-auth runs for real against these; only the certificate download is faked.
"""

from __future__ import annotations

import datetime as dt
import json
import time

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt
from google.auth import jwt as google_jwt
from google.auth.transport import Request, Response

CLIENT_ID = "1234-portal.apps.googleusercontent.com"
OTHER_CLIENT_ID = "9999-other.apps.googleusercontent.com"
KID = "test-key-1"
SUB = "110169484474386276334"


def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate_pem(key: rsa.RSAPrivateKey) -> str:
    """A self-signed X.509 certificate for ``key``, in the PEM form Google's v1 endpoint serves."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "accounts.google.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def id_token(key: rsa.RSAPrivateKey, *, kid: str | None = KID, **overrides) -> str:
    """A Google ID token signed with ``key``; a claim overridden with None is left out."""
    now = int(time.time())
    claims = {
        "iss": "https://accounts.google.com",
        "aud": CLIENT_ID,
        "azp": CLIENT_ID,
        "sub": SUB,
        "email": "alice@example.com",
        "email_verified": True,
        "name": "Alice Example",
        "hd": "example.com",
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    claims = {name: value for name, value in claims.items() if value is not None}
    signer = crypt.RSASigner.from_string(_key_pem(key), key_id=kid)
    return google_jwt.encode(signer, claims).decode()


class FakeResponse(Response):
    def __init__(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self._status, self._headers, self._data = status, headers, data

    @property
    def status(self):
        return self._status

    @property
    def headers(self):
        return self._headers

    @property
    def data(self):
        return self._data


class FakeGoogle(Request):
    """Google's certificate endpoint: answers ``{kid: PEM}`` and counts downloads."""

    def __init__(self, certs: dict[str, str], *, cache_control: str = "public, max-age=3600") -> None:
        self.certs = certs
        self.cache_control = cache_control
        self.status = 200
        self.body: bytes | None = None
        self.error: Exception | None = None
        self.calls: list[str] = []
        self.timeouts: list[float | None] = []

    def __call__(self, url, method="GET", body=None, headers=None, timeout=None, **kwargs):
        self.calls.append(url)
        self.timeouts.append(timeout)
        if self.error:
            raise self.error
        data = self.body if self.body is not None else json.dumps(self.certs).encode()
        return FakeResponse(self.status, {"Cache-Control": self.cache_control}, data)
