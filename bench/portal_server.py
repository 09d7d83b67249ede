"""Run the portal for a benchmark: a fresh database, a signing key, gunicorn on a free loopback port.

Shared by the benchmarks that drive the real HTTP API. Nothing here is imported by the portal.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(run_dir: Path, **overrides: str) -> dict[str, str]:
    """Production-like settings (DEBUG off) for a throwaway portal under ``run_dir``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    env = dict(os.environ)
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="bench-only-secret-key-" + "x" * 40,
        FIELD_ENCRYPTION_KEY="bench-only-field-key",
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",
        AUTH_COOKIE_SECURE="0",  # plain HTTP on loopback: cookies without the Secure prefix
        STATIC_MANIFEST="0",
        PORTAL_VAR_DIR=str(run_dir),
        GITOPS_REPO_PATH=str(run_dir / "gitops.git"),
        JWT_PRIVATE_KEYS=pem.decode(),
        LOGIN_THROTTLE_IP="1000/min",
        LOGIN_THROTTLE_ACCOUNT="1000/min",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{run_dir / 'bench.sqlite3'}"
    env.update(overrides)
    return env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


def django_run(env: dict[str, str], code: str) -> None:
    """Run ``code`` with Django set up, in a process of its own (the benchmark itself stays Django-free)."""
    subprocess.run(
        [sys.executable, "-c", "import django; django.setup()\n" + code], cwd=ROOT, env=env, check=True
    )


def _wait_until_up(port: int, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(
                f"gunicorn exited: {server.stderr.read().decode()[-2000:] if server.stderr else ''}"
            )
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("gunicorn did not come up")


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int, threads: int) -> Iterator[int]:
    """The portal under gunicorn (gthread workers); yields its port."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
         "--keep-alive", "30", "--backlog", "512", "--log-level", "warning"],
        cwd=ROOT, env=env, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        _wait_until_up(port, server)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=10)


def bearer_sign_in(port: int, email: str, password: str) -> str:
    """An access token for ``email`` (body delivery, as a script would sign in)."""
    connection = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps(
        {"email": email, "password": base64.b64encode(password.encode()).decode(), "tokenDelivery": "body"}
    )
    connection.request("POST", "/api/auth/login", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    data = response.read()
    if response.status != 200:
        raise SystemExit(f"login failed: {response.status} {data[:200]!r}")
    return json.loads(data)["accessToken"]
