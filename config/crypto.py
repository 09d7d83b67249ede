"""Encryption at rest for secret columns (clusters' API keys, authenticator secrets).

Keys are derived with HKDF-SHA256 from ``FIELD_ENCRYPTION_KEY``, a comma-separated list: the
first secret encrypts, every one of them decrypts, so the key rotates by prepending a new
secret and re-encrypting (``manage.py field_keys_rotate``) before dropping the old one. Each
purpose derives its own keys (HKDF ``info``), so a value of one kind never decrypts as another.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_HKDF_SALT = b"qdrant-portal/field-encryption"
CLUSTER_API_KEYS = b"clusters api keys v1"
TOTP_SECRETS = b"accounts totp secrets v1"


class FieldDecryptionError(Exception):
    """The value was not encrypted with any of the configured keys (or was tampered with)."""


@lru_cache(maxsize=16)
def _multi_fernet(setting: str, purpose: bytes) -> MultiFernet:
    secrets = [part.strip() for part in setting.split(",") if part.strip()]
    if not secrets:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is empty.")

    def derived(secret: str) -> Fernet:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=purpose)
        return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret.encode())))

    return MultiFernet([derived(secret) for secret in secrets])


def _fernet(purpose: bytes) -> MultiFernet:
    return _multi_fernet(settings.FIELD_ENCRYPTION_KEY, purpose)


def field_encrypt(*, plaintext: str, purpose: bytes) -> str:
    """Encrypt (authenticated, random IV) with the first configured key."""
    return _fernet(purpose).encrypt(plaintext.encode()).decode("ascii")


def field_decrypt(*, ciphertext: str, purpose: bytes) -> str:
    try:
        return _fernet(purpose).decrypt(ciphertext.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise FieldDecryptionError("The value cannot be decrypted with the configured keys.") from exc


def field_reencrypt(*, ciphertext: str, purpose: bytes) -> str:
    """Re-encrypt a value under the first (current) key."""
    try:
        return _fernet(purpose).rotate(ciphertext.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError) as exc:
        raise FieldDecryptionError("The value cannot be decrypted with the configured keys.") from exc
