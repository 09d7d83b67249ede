"""Test environment, loaded as a pytest plugin (``-p tests.environment``) before Django starts.

Tests run with DEBUG off, like production: so every secret must be configured. These
values exist only for the test run; real deployments set their own (see .env.example).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_RUN_DIR = Path(tempfile.mkdtemp(prefix="portal-tests-"))
atexit.register(shutil.rmtree, _RUN_DIR, ignore_errors=True)

# A developer's .env (written by `make run`) must not leak into the tests.
os.environ["PORTAL_ENV_FILE"] = ""
os.environ.setdefault("DJANGO_DEBUG", "0")
os.environ.setdefault("EMAIL_URL", "locmem://")
os.environ.setdefault("EMAIL_SEND_IN_BACKGROUND", "0")
os.environ.setdefault("PUBLIC_URL", "https://portal.example.com")
# Most tests are not about the staff policy; those that are switch it on.
os.environ.setdefault("MFA_REQUIRED_FOR_STAFF", "0")
os.environ.setdefault("DJANGO_SECRET_KEY", "tests-only-secret-key-" + "x" * 40)
os.environ.setdefault("FIELD_ENCRYPTION_KEY", "tests-only-field-encryption-key")
os.environ.setdefault("DJANGO_ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("DJANGO_SECURE_SSL_REDIRECT", "0")
os.environ.setdefault("STATIC_MANIFEST", "0")
os.environ.setdefault("PORTAL_VAR_DIR", str(_RUN_DIR))
os.environ.setdefault("JWT_KEYS_DIR", str(_RUN_DIR / "jwt-keys"))
os.environ.setdefault("GITOPS_REPO_PATH", str(_RUN_DIR / "gitops.git"))
os.environ.setdefault("DJANGO_STATIC_ROOT", str(_RUN_DIR / "static"))
(_RUN_DIR / "static").mkdir(exist_ok=True)

# Production refuses to start without configured signing keys, and tests run like production:
# one RSA key, generated for this run only, given the way a deployment gives it (a PEM).
if "JWT_PRIVATE_KEYS" not in os.environ:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    _test_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    os.environ["JWT_PRIVATE_KEYS"] = _test_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
