"""Encryption at rest for secret columns (the clusters' API keys).

Keys are derived with HKDF-SHA256 from ``FIELD_ENCRYPTION_KEY``, a comma-separated list:
the first secret encrypts, every one of them decrypts, so the key rotates by prepending a
new secret and re-encrypting (``manage.py field_keys_rotate``) before dropping the old one.
"""

from __future__ import annotations

import base64
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

# Domain separation: the same setting must never yield the same key for another purpose.
_HKDF_SALT = b"qdrant-portal/field-encryption"
_HKDF_INFO = b"clusters api keys v1"


class FieldDecryptionError(Exception):
    """The value was not encrypted with any of the configured keys (or was tampered with)."""


def _fernet_key_derive(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO)
    return base64.urlsafe_b64encode(hkdf.derive(secret.encode()))


@lru_cache(maxsize=8)
def _multi_fernet(setting: str) -> MultiFernet:
    secrets = [part.strip() for part in setting.split(",") if part.strip()]
    if not secrets:
        raise ImproperlyConfigured("FIELD_ENCRYPTION_KEY is empty.")
    return MultiFernet([Fernet(_fernet_key_derive(secret)) for secret in secrets])


def _fernet() -> MultiFernet:
    return _multi_fernet(settings.FIELD_ENCRYPTION_KEY)


def field_encrypt(*, plaintext: str) -> str:
    """Encrypt (authenticated, random IV) with the first configured key."""
    return _fernet().encrypt(plaintext.encode()).decode("ascii")


def field_decrypt(*, ciphertext: str) -> str:
    try:
        return _fernet().decrypt(ciphertext.encode("ascii")).decode()
    except (InvalidToken, UnicodeError) as exc:
        raise FieldDecryptionError("The value cannot be decrypted with the configured keys.") from exc


def field_reencrypt(*, ciphertext: str) -> str:
    """Re-encrypt a value under the first (current) key."""
    try:
        return _fernet().rotate(ciphertext.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError) as exc:
        raise FieldDecryptionError("The value cannot be decrypted with the configured keys.") from exc
