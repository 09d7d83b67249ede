"""Secrets for git, sealed for the Bitnami sealed-secrets controller (strict scope).

Each value is encrypted as the controller's ``HybridEncrypt`` does (pkg/crypto/crypto.go):
a random 32-byte session key is encrypted with RSA-OAEP (SHA-256) labelled
``<namespace>/<name>``, the value with AES-256-GCM under that key and a zero nonce (the key
is used once), and the output is ``uint16 big-endian len(rsa) || rsa || aes-gcm``.
The label pins the Secret to one namespace and name: the controller refuses it elsewhere.
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Mapping

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gitops.errors import ContentError

SESSION_KEY_BYTES = 32
_ZERO_NONCE = bytes(12)


class SealingError(ContentError, ValueError):
    """The sealing certificate or the secret to seal is not usable."""


def sealing_public_key_load(*, certificate_pem: bytes) -> rsa.RSAPublicKey:
    """The RSA public key of the controller's certificate (``kubeseal --fetch-cert``)."""
    try:
        certificate = x509.load_pem_x509_certificate(certificate_pem)
    except ValueError as error:
        raise SealingError(f"The sealing certificate is not a PEM certificate: {error}") from error
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SealingError("The sealing certificate must hold an RSA public key.")
    return public_key


def strict_scope_label(*, namespace: str, name: str) -> bytes:
    return f"{namespace}/{name}".encode()


def value_seal(*, public_key: rsa.RSAPublicKey, plaintext: bytes, label: bytes) -> bytes:
    """The controller's hybrid encryption of one value (raw bytes, not base64)."""
    session_key = os.urandom(SESSION_KEY_BYTES)
    rsa_ciphertext = public_key.encrypt(
        session_key,
        padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=label),
    )
    aes_ciphertext = AESGCM(session_key).encrypt(_ZERO_NONCE, plaintext, None)
    return struct.pack(">H", len(rsa_ciphertext)) + rsa_ciphertext + aes_ciphertext


def sealed_secret_render(
    *,
    certificate_pem: bytes,
    namespace: str,
    name: str,
    data: Mapping[str, str],
) -> bytes:
    """A ``SealedSecret`` manifest (strict scope) whose controller creates Secret ``name``."""
    if not namespace or not name:
        raise SealingError("A strict-scope sealed secret needs a namespace and a name.")
    public_key = sealing_public_key_load(certificate_pem=certificate_pem)
    label = strict_scope_label(namespace=namespace, name=name)
    encrypted = {
        key: base64.b64encode(
            value_seal(public_key=public_key, plaintext=value.encode(), label=label)
        ).decode("ascii")
        for key, value in sorted(data.items())
    }
    manifest = {
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "encryptedData": encrypted,
            "template": {"metadata": {"name": name, "namespace": namespace}, "type": "Opaque"},
        },
    }
    return yaml.safe_dump(manifest, sort_keys=True, default_flow_style=False, width=120).encode("utf-8")
