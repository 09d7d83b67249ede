"""Encryption at rest: randomised, authenticated, rotatable, one key per purpose."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet, InvalidToken

from config.crypto import (
    CLUSTER_API_KEYS,
    TOTP_SECRETS,
    FieldDecryptionError,
    field_decrypt,
    field_encrypt,
    field_reencrypt,
)


def test_encryption_is_randomised_and_round_trips():
    first = field_encrypt(plaintext="secret", purpose=CLUSTER_API_KEYS)
    second = field_encrypt(plaintext="secret", purpose=CLUSTER_API_KEYS)
    assert first != second
    assert field_decrypt(ciphertext=first, purpose=CLUSTER_API_KEYS) == "secret"
    assert field_decrypt(ciphertext=second, purpose=CLUSTER_API_KEYS) == "secret"


def test_old_keys_still_decrypt_after_a_new_key_is_prepended(settings):
    settings.FIELD_ENCRYPTION_KEY = "old-key"
    ciphertext = field_encrypt(plaintext="secret", purpose=CLUSTER_API_KEYS)

    settings.FIELD_ENCRYPTION_KEY = "new-key,old-key"
    assert field_decrypt(ciphertext=ciphertext, purpose=CLUSTER_API_KEYS) == "secret"
    reencrypted = field_reencrypt(ciphertext=ciphertext, purpose=CLUSTER_API_KEYS)

    settings.FIELD_ENCRYPTION_KEY = "new-key"
    assert field_decrypt(ciphertext=reencrypted, purpose=CLUSTER_API_KEYS) == "secret"
    with pytest.raises(FieldDecryptionError):
        field_decrypt(ciphertext=ciphertext, purpose=CLUSTER_API_KEYS)


def test_a_value_of_one_purpose_never_decrypts_as_another():
    ciphertext = field_encrypt(plaintext="JBSWY3DPEHPK3PXP", purpose=TOTP_SECRETS)
    with pytest.raises(FieldDecryptionError):
        field_decrypt(ciphertext=ciphertext, purpose=CLUSTER_API_KEYS)


@pytest.mark.parametrize("ciphertext", ["", "not-a-token", "gAAAAA" + "A" * 80, "é"])
def test_garbage_or_tampered_ciphertext_is_a_decryption_error(ciphertext):
    with pytest.raises(FieldDecryptionError):
        field_decrypt(ciphertext=ciphertext, purpose=CLUSTER_API_KEYS)


def test_the_encryption_key_is_not_the_setting_itself(settings):
    settings.FIELD_ENCRYPTION_KEY = base64.urlsafe_b64encode(b"k" * 32).decode()
    ciphertext = field_encrypt(plaintext="secret", purpose=CLUSTER_API_KEYS)
    with pytest.raises(InvalidToken):
        Fernet(settings.FIELD_ENCRYPTION_KEY).decrypt(ciphertext.encode())
