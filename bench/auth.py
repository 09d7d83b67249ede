"""Benchmark the token service under gunicorn: GET /api/auth/validate vs /api/auth/me vs /healthz.

Run with `make bench` (or `python bench/auth.py`). Starts the app with DEBUG off on a free
loopback port (two gunicorn workers; sessions in Redis with REDIS_URL set, else in the file
cache both workers share), signs a user in, then measures each
endpoint for a fixed time with a bounded load generator (threads, keep-alive connections).
Target: /validate at >= 0.9 x the bare JSON view.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.portal_server import django_run, gunicorn, manage, server_env  # noqa: E402

DURATION = float(os.environ.get("BENCH_SECONDS", "5"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
EMAIL, PASSWORD = "bench@example.com", "bench password 123"


def create_user(env: dict[str, str]) -> None:
    django_run(
        env,
        f"from accounts.models import User; User.objects.filter(email={EMAIL!r}).delete(); "
        f"User.objects.create_user(email={EMAIL!r}, password={PASSWORD!r})",
    )


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
        env = server_env(Path(tmp))
        manage(env, "migrate", "--noinput")
        create_user(env)
        redis = bool(env.get("REDIS_URL"))
        workers = 2
        with gunicorn(env, workers=workers, threads=CONCURRENCY) as port:
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

    bare = results[0][1]
    backend = "Redis" if redis else "the file cache every local process shares"
    print(f"\nToken service benchmark: gunicorn {workers} worker(s) x {CONCURRENCY} threads, {backend}, "
          f"{CONCURRENCY} keep-alive clients, {DURATION:.0f} s each")  # fmt: skip
    print(f"{'endpoint':<36} {'req/s':>9} {'x bare':>7} {'errors':>7}")
    for name, rps, errors in results:
        print(f"{name:<36} {rps:>9.0f} {rps / bare:>7.2f} {errors:>7}")
    ratio = results[1][1] / bare
    print(f"\n/validate / bare view = {ratio:.2f} (target >= 0.90): {'met' if ratio >= 0.9 else 'NOT met'}")


if __name__ == "__main__":
    main()
