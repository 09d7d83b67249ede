"""Benchmark the token service under gunicorn: GET /api/auth/validate vs /api/auth/me vs /healthz.

Run with `make bench` (or `python bench/auth.py`). Starts the app with DEBUG off on a free
loopback port (one worker with threads: the in-process cache is per process; with REDIS_URL
set, the sessions live in Redis and two workers are used), signs a user in, then measures each
endpoint for a fixed time with a bounded load generator (threads, keep-alive connections).
Target: /validate at >= 0.9 x the bare JSON view.
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
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DURATION = float(os.environ.get("BENCH_SECONDS", "5"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
EMAIL, PASSWORD = "bench@example.com", "bench password 123"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(run_dir: Path) -> dict[str, str]:
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
        LOG_LEVEL="WARNING",
    )
    if not env.get("DATABASE_URL"):
        env["DATABASE_URL"] = f"sqlite:///{run_dir / 'bench.sqlite3'}"
    return env


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


def create_user(env: dict[str, str]) -> None:
    code = (
        "import django; django.setup(); from accounts.models import User; "
        f"User.objects.filter(email={EMAIL!r}).delete(); "
        f"User.objects.create_user(email={EMAIL!r}, password={PASSWORD!r})"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env | {"DJANGO_SETTINGS_MODULE": "config.settings"},
        check=True,
    )


def wait_until_up(port: int, server: subprocess.Popen) -> None:
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


def sign_in(port: int) -> tuple[str, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port)
    body = json.dumps({"email": EMAIL, "password": base64.b64encode(PASSWORD.encode()).decode()})
    connection.request("POST", "/api/auth/login", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"login failed: {response.status}")
    cookies = [h.split(";", 1)[0] for k, h in response.getheaders() if k.lower() == "set-cookie"]
    access = next(c.split("=", 1)[1] for c in cookies if c.startswith("accessToken="))
    return access, "; ".join(cookies)


def measure(port: int, path: str, headers: dict[str, str]) -> tuple[float, int]:
    """Requests per second over DURATION seconds from CONCURRENCY keep-alive connections."""
    counts, errors = [0] * CONCURRENCY, [0] * CONCURRENCY
    stop = time.monotonic() + DURATION

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.monotonic() < stop:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status == 200:
                counts[index] += 1
            else:
                errors[index] += 1
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONCURRENCY)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.monotonic() - started), sum(errors)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp:
        run_dir = Path(tmp)
        env = server_env(run_dir)
        manage(env, "migrate", "--noinput")
        create_user(env)
        port = free_port()
        redis = bool(env.get("REDIS_URL"))
        workers = "2" if redis else "1"  # the in-process cache is per process: one worker without Redis
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", workers, "--threads", str(CONCURRENCY), "--worker-class", "gthread",
             "--keep-alive", "30", "--log-level", "warning"],
            cwd=ROOT, env=env, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            wait_until_up(port, server)
            access, cookie_header = sign_in(port)
            cases = [
                ("GET /healthz (bare JSON view)", "/healthz", {}),
                (
                    "GET /api/auth/validate (bearer)",
                    "/api/auth/validate",
                    {"Authorization": f"Bearer {access}"},
                ),
                ("GET /api/auth/me (cookie)", "/api/auth/me", {"Cookie": cookie_header}),
            ]
            measure(port, "/healthz", {})  # warm up
            results = [(name, *measure(port, path, headers)) for name, path, headers in cases]
        finally:
            server.terminate()
            server.wait(timeout=10)

    bare = results[0][1]
    backend = "Redis" if redis else "in-process cache"
    print(f"\nToken service benchmark: gunicorn {workers} worker(s) x {CONCURRENCY} threads, {backend}, "
          f"{CONCURRENCY} keep-alive clients, {DURATION:.0f} s each")  # fmt: skip
    print(f"{'endpoint':<36} {'req/s':>9} {'x bare':>7} {'errors':>7}")
    for name, rps, errors in results:
        print(f"{name:<36} {rps:>9.0f} {rps / bare:>7.2f} {errors:>7}")
    ratio = results[1][1] / bare
    print(f"\n/validate / bare view = {ratio:.2f} (target >= 0.90): {'met' if ratio >= 0.9 else 'NOT met'}")


if __name__ == "__main__":
    main()
