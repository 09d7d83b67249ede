"""Run the portal for a benchmark: a fresh database, a signing key, gunicorn on a free loopback port.

Shared by the benchmarks that drive the real HTTP API (bench/peer_server.py serves the peer with
the same gunicorn helper). Nothing here is imported by the portal.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
        PORTAL_ENV_FILE="",  # a developer's .env (make run writes one) must not leak into the run
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


def _wait_until_up(port: int, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", "/healthz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"gunicorn did not come up: {log.read_text(errors='replace')[-2000:]}")


@dataclass(frozen=True)
class Server:
    """A running gunicorn: where it listens and its master's process id (the workers are its children)."""

    port: int
    pid: int


@contextmanager
def gunicorn_server(
    env: dict[str, str],
    *,
    workers: int,
    worker_class: str = "gthread",
    threads: int = 1,
    app: str = "config.wsgi:application",
    python: str | Path = sys.executable,
    cwd: Path = ROOT,
) -> Iterator[Server]:
    """``app`` under gunicorn on a free loopback port, run by ``python`` (the portal's by default)."""
    port = free_port()
    args = [str(python), "-m", "gunicorn", app, "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--worker-class", worker_class, "--backlog", "512", "--log-level", "warning"]  # fmt: skip
    if worker_class == "gthread":
        args += ["--threads", str(threads), "--keep-alive", "30"]
    # The log goes to a file, not a pipe: nobody reads a pipe while the load runs, and a full one
    # would block the server on its next warning.
    with tempfile.NamedTemporaryFile(prefix="gunicorn-", suffix=".log") as log:
        server = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=log)
        try:
            _wait_until_up(port, server, Path(log.name))
            yield Server(port=port, pid=server.pid)
        finally:
            server.terminate()
            server.wait(timeout=10)


@contextmanager
def gunicorn(env: dict[str, str], *, workers: int, threads: int) -> Iterator[int]:
    """The portal under gunicorn (gthread workers); yields its port."""
    with gunicorn_server(env, workers=workers, threads=threads) as server:
        yield server.port


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
