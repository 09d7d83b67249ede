"""JWT signing keys as files and JWKs: generate, identify (RFC 7638 thumbprint), read
``JWT_KEYS_DIR`` (``<kid>.pem`` files and a ``current`` file naming the signing key).

Two empty marker files record what ``jwt_keys`` needs to know when a key signed:
``<kid>.pending`` (added by ``jwt_keys add``: published, has never signed) and
``<kid>.promoted`` (its time is when ``jwt_keys promote`` made the key sign). Processes that
sign and verify read only the ``.pem`` files and ``current``.

The key ring that signs and verifies with them is ``accounts.tokens``'s.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.exceptions import ImproperlyConfigured
from jwt.algorithms import OKPAlgorithm, RSAAlgorithm

CURRENT_KEY_FILE = "current"
PENDING_SUFFIX = ".pending"
PROMOTED_SUFFIX = ".promoted"


def public_jwk(public_key: Any, *, kid: str, algorithm: str) -> dict[str, Any]:
    if isinstance(public_key, rsa.RSAPublicKey):
        jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        jwk = OKPAlgorithm.to_jwk(public_key, as_dict=True)
    else:
        raise ImproperlyConfigured(f"Unsupported key type {type(public_key).__name__}")
    return {**jwk, "kid": kid, "use": "sig", "alg": algorithm}


def key_thumbprint(public_key: Any) -> str:
    """A stable ``kid`` derived from the key: its RFC 7638 SHA-256 thumbprint, in hex, 32 digits.

    Hex rather than base64url so a kid never starts with "-" (``jwt_keys retire <kid>``).
    """
    jwk = public_jwk(public_key, kid="", algorithm="")
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x")
    canonical = json.dumps({name: jwk[name] for name in members}, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:32]


def private_key_generate(*, algorithm: str) -> Any:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ImproperlyConfigured(f"Cannot generate keys for {algorithm}: use JWT_SECRET for HS256.")


def private_key_pem(private_key: Any) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class KeysDirContents:
    """What JWT_KEYS_DIR holds: the kid ``current`` names, the keys that load, and what did not."""

    current: str | None
    keys: dict[str, Any]
    problems: tuple[str, ...] = ()  # one sentence per file that is not a usable key


def _current_read(keys_dir: Path) -> str | None:
    path = keys_dir / CURRENT_KEY_FILE
    try:
        return path.read_text().strip() if path.is_file() else None
    except (OSError, UnicodeDecodeError) as error:
        raise ImproperlyConfigured(f"{path} cannot be read ({error}); it names the signing key.") from error


def keys_dir_scan(keys_dir: Path) -> KeysDirContents:
    """Every ``<kid>.pem`` private key that loads; the files that do not, in words."""
    keys: dict[str, Any] = {}
    problems = []
    if not keys_dir.is_dir():
        return KeysDirContents(None, keys)
    # ``current`` first: a rotation writes the key file, then ``current``, so read in this
    # order ``current`` never names a key written after the listing below.
    current = _current_read(keys_dir)
    for path in sorted(keys_dir.glob("*.pem")):
        try:
            private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as error:  # retired meanwhile by another host, a directory, a dangling link
            problems.append(f"{path} cannot be read ({error.strerror or error}).")
        except (ValueError, TypeError, UnsupportedAlgorithm):  # not a key, or one with a password
            problems.append(
                # No "password:" in it: the log's redaction would take the next word for one.
                f"{path} is not a PEM private key without a password. Every *.pem file in "
                "JWT_KEYS_DIR must be one (move anything else out of it)."
            )
        else:
            if isinstance(private_key, (rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
                keys[key_thumbprint(private_key.public_key())] = private_key
            else:  # a TLS or ES256 key dropped here: no JWT of this portal is signed with one
                problems.append(f"{path} is a {type(private_key).__name__}: JWT keys are RSA or Ed25519.")
    return KeysDirContents(current, keys, tuple(problems))


def keys_dir_read(keys_dir: Path) -> tuple[str | None, dict[str, Any]]:
    """``current``'s kid and every key; strict, for ``jwt_keys``: a file that is not a usable key
    is an error, so nothing is added to or removed from a folder the portal cannot fully read."""
    contents = keys_dir_scan(keys_dir)
    if contents.problems:
        raise ImproperlyConfigured(contents.problems[0])
    return contents.current, contents.keys


def _key_file_write(keys_dir: Path, private_key: Any) -> None:
    """Write a key into the directory: it verifies, and is published, once processes re-read it."""
    kid = key_thumbprint(private_key.public_key())
    # Written aside and renamed, like ``current`` below: a replica re-reading the folder
    # meanwhile sees the whole key or none of it, never half a PEM file.
    written = keys_dir / f".{kid}.tmp"
    written.touch(mode=0o600)
    written.write_bytes(private_key_pem(private_key))
    written.replace(keys_dir / f"{kid}.pem")


def _current_write(keys_dir: Path, kid: str) -> None:
    temporary = keys_dir / f".{CURRENT_KEY_FILE}.tmp"
    temporary.write_text(kid + "\n")
    temporary.replace(keys_dir / CURRENT_KEY_FILE)  # atomic: readers never see a half-written name


def keys_dir_add(keys_dir: Path, *, algorithm: str) -> str:
    """Generate a key into the directory and make it the signing key at once; returns its kid."""
    private_key = private_key_generate(algorithm=algorithm)
    kid = key_thumbprint(private_key.public_key())
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    _key_file_write(keys_dir, private_key)
    _current_write(keys_dir, kid)
    return kid


def keys_dir_publish(keys_dir: Path, *, algorithm: str) -> str:
    """Generate a key that only verifies (published in the JWKS) until promoted; returns its kid."""
    private_key = private_key_generate(algorithm=algorithm)
    kid = key_thumbprint(private_key.public_key())
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    # The mark first: a key file without it would pass, for ``jwt_keys retire``, for one
    # that signed from its creation on.
    (keys_dir / f"{kid}{PENDING_SUFFIX}").touch()
    _key_file_write(keys_dir, private_key)
    return kid


def keys_dir_promote(keys_dir: Path, *, kid: str) -> None:
    """Make a key of the directory the signing key."""
    # The promotion's time first: if ``current`` is not written after all, ``jwt_keys retire``
    # only errs towards counting more sessions as holding this key's tokens.
    (keys_dir / f"{kid}{PROMOTED_SUFFIX}").touch()
    _current_write(keys_dir, kid)
    (keys_dir / f"{kid}{PENDING_SUFFIX}").unlink(missing_ok=True)


def keys_dir_retire(keys_dir: Path, *, kid: str) -> None:
    """Delete a key from the directory: its tokens stop being accepted."""
    (keys_dir / f"{kid}.pem").unlink()
    for suffix in (PENDING_SUFFIX, PROMOTED_SUFFIX):
        (keys_dir / f"{kid}{suffix}").unlink(missing_ok=True)
    keys_dir.touch()  # running processes notice the directory changed


def keys_dir_pending(keys_dir: Path) -> set[str]:
    """The kids added by ``keys_dir_publish`` and never promoted: they have never signed."""
    return {path.name.removesuffix(PENDING_SUFFIX) for path in keys_dir.glob(f"*{PENDING_SUFFIX}")}


def _file_time(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
    except OSError:
        return None


def key_file_created(keys_dir: Path, kid: str) -> datetime | None:
    """When the key ``kid`` was written to the directory (its file's mtime); None without a file."""
    return _file_time(keys_dir / f"{kid}.pem")


def key_signing_since(keys_dir: Path, kid: str) -> datetime | None:
    """When ``kid`` last became the signing key: its promotion, else its creation (``rotate``).
    None for a key that has never signed (added, not yet promoted) or has no file."""
    if (keys_dir / f"{kid}{PENDING_SUFFIX}").exists():
        return None
    return _file_time(keys_dir / f"{kid}{PROMOTED_SUFFIX}") or key_file_created(keys_dir, kid)


def keys_dir_mtime(keys_dir: Path) -> float | None:
    try:
        return keys_dir.stat().st_mtime
    except OSError:
        return None
