"""The sealed secret decrypts with the controller's algorithm (pkg/crypto/crypto.go HybridDecrypt)."""

from __future__ import annotations

import base64
import struct
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509.oid import NameOID

from gitops.errors import ContentError
from gitops.sealing import SealingError, sealed_secret_render


def _certificate(private_key) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sealed-secret")])
    now = datetime.now(tz=UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(private_key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def controller_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _controller_decrypt(private_key: rsa.RSAPrivateKey, value: str, label: bytes) -> bytes:
    ciphertext = base64.b64decode(value, validate=True)
    (rsa_length,) = struct.unpack(">H", ciphertext[:2])
    rsa_ciphertext = ciphertext[2 : 2 + rsa_length]
    session_key = private_key.decrypt(
        rsa_ciphertext,
        padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=label),
    )
    return AESGCM(session_key).decrypt(bytes(12), ciphertext[2 + rsa_length :], None)


def _seal(controller_key, data=None) -> dict:
    return yaml.safe_load(
        sealed_secret_render(
            certificate_pem=_certificate(controller_key),
            namespace="qdrant-acme",
            name="qdrant-acme-prod-apikey",
            data=data or {"api-key": "k-123", "read-only-api-key": "ro-456"},
        )
    )


def test_sealed_secret_decrypts_with_the_controller_key_to_the_right_values(controller_key):
    manifest = _seal(controller_key)
    label = b"qdrant-acme/qdrant-acme-prod-apikey"

    decrypted = {
        key: _controller_decrypt(controller_key, value, label)
        for key, value in manifest["spec"]["encryptedData"].items()
    }

    assert decrypted == {"api-key": b"k-123", "read-only-api-key": b"ro-456"}


def test_sealed_secret_is_a_strict_scope_manifest_naming_the_secret(controller_key):
    manifest = _seal(controller_key)

    assert manifest["apiVersion"] == "bitnami.com/v1alpha1"
    assert manifest["kind"] == "SealedSecret"
    assert manifest["metadata"] == {"name": "qdrant-acme-prod-apikey", "namespace": "qdrant-acme"}
    assert manifest["spec"]["template"]["metadata"] == manifest["metadata"]
    assert "annotations" not in manifest["metadata"]
    assert "annotations" not in manifest["spec"]["template"]["metadata"]
    assert b"k-123" not in yaml.safe_dump(manifest).encode()


@pytest.mark.parametrize(
    "label",
    [
        b"qdrant-other/qdrant-acme-prod-apikey",  # another namespace
        b"qdrant-acme/qdrant-acme-dev-apikey",  # another name
        b"qdrant-acme",  # namespace-wide scope
        b"",  # cluster-wide scope
    ],
)
def test_sealed_secret_cannot_be_opened_under_another_scope(controller_key, label):
    value = _seal(controller_key)["spec"]["encryptedData"]["api-key"]

    with pytest.raises(ValueError):
        _controller_decrypt(controller_key, value, label)


def test_a_tampered_value_fails_authentication(controller_key):
    value = bytearray(base64.b64decode(_seal(controller_key)["spec"]["encryptedData"]["api-key"]))
    value[-1] ^= 1

    with pytest.raises(InvalidTag):
        _controller_decrypt(
            controller_key, base64.b64encode(value).decode(), b"qdrant-acme/qdrant-acme-prod-apikey"
        )


def test_each_sealing_uses_a_fresh_session_key(controller_key):
    first = _seal(controller_key)["spec"]["encryptedData"]["api-key"]
    second = _seal(controller_key)["spec"]["encryptedData"]["api-key"]

    assert first != second


@pytest.mark.parametrize("certificate", [b"not a certificate", None])
def test_a_certificate_that_is_not_rsa_pem_is_refused(certificate):
    if certificate is None:
        certificate = _certificate(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(SealingError):
        sealed_secret_render(certificate_pem=certificate, namespace="ns", name="n", data={"a": "b"})


def test_sealing_errors_are_content_errors_without_http_details():
    assert issubclass(SealingError, ContentError)
    assert issubclass(SealingError, ValueError)
    assert not hasattr(SealingError("x"), "code")
    assert not hasattr(SealingError("x"), "status_code")
