"""Benchmark the token service against the Django peer a user would otherwise pick (issue 16).

Run with `make bench` (or `python bench/auth.py`). In one run, interleaved, it serves:

- this project under gunicorn (2 sync workers, DEBUG off, SQLite), once with Redis (a database
  of its own, flushed) and once with the embedded default cache (the file cache the workers share);
- the peer (bench/peer_server.py): dj-rest-auth + simplejwt with cookie JWTs, RS256, rotation and
  blacklist, argon2, built in its own virtual environment under var/bench-peer/.

Each round measures every case on every side in turn (round-robin), three rounds: requests/s
with `wrk -t2 -c16` (the built-in generator without wrk), server CPU µs per request from the
gunicorn processes over a fixed number of requests, refreshes/s of 8 clients rotating their own
sessions, and a login's time beyond one password hash. The tables print medians and ratios
against the issue's targets; /validate and /me also at concurrency 1, 4, 16 and 64.
Environment: BENCH_ROUNDS, BENCH_SECONDS, BENCH_SWEEP_SECONDS, BENCH_CPU_REQUESTS,
BENCH_REDIS_URL (default redis://127.0.0.1:6379/15; refused when it holds another's keys).
BENCH_NO_WRK=1 uses the built-in generator even where wrk is installed.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import load  # noqa: E402
from bench.auth_clients import (  # noqa: E402
    CookieJar,
    HashTimer,
    SignIn,
    login_pairs,
    refresh_loop,
    sign_in,
)
from bench.auth_report import (  # noqa: E402
    PEER,
    Results,
    errors_lines,
    sweep_table,
    table,
    targets_table,
    verdict_line,
)
from bench.peer_server import PROJECT, peer_gunicorn, peer_prepare, peer_python  # noqa: E402
from bench.portal_server import ROOT, Server, django_run, gunicorn_server, manage, server_env  # noqa: E402

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
SWEEP_SECONDS = float(os.environ.get("BENCH_SWEEP_SECONDS", "2"))
CPU_REQUESTS = int(os.environ.get("BENCH_CPU_REQUESTS", "2000"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
CONNECTIONS, SWEEP, CPU_CONCURRENCY = 16, (1, 4, 16, 64), 8
# A login beyond its hash is the difference of two ~100 ms figures whose pairs spread over
# ±8 ms on a 2-core VM: 7 pairs a round left the median swinging by 5 ms between runs.
WORKERS, REFRESH_CLIENTS, LOGINS = 2, 8, 21
USERNAME, EMAIL, PASSWORD = "bench", "bench@example.com", "bench password 123"
REDIS_OWNER_KEY = "bench-auth:owner"  # marks the Redis database as this benchmark's to flush


@dataclass
class Side:
    """One server under test and how to drive it."""

    key: str  # "redis", "embedded" or PEER
    title: str
    server: Server
    hash_timer: HashTimer  # in the server's own interpreter and settings
    how: SignIn
    refresh_cookie: str
    paths: dict[str, str]  # case ("bare", "validate", "me", "refresh") -> path
    headers: dict[str, dict[str, str]] = field(default_factory=dict)  # case -> request headers
    refresh_jars: list[CookieJar] = field(default_factory=list)


def sessions_open(side: Side) -> None:
    """The /me session (cookies; its access token as a bearer for /validate) and 8 refresh sessions."""
    jar = sign_in(side.server.port, side.how)
    side.headers = {"bare": {}, "me": {"Cookie": jar.header()}}
    if "validate" in side.paths:
        side.headers["validate"] = {"Authorization": f"Bearer {jar.cookies['accessToken']}"}
    side.refresh_jars = [sign_in(side.server.port, side.how) for _ in range(REFRESH_CLIENTS)]


def redis_claim() -> str | None:
    """REDIS_URL flushed for this run; None when Redis cannot be reached."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        keys = client.dbsize()
    except redis.ConnectionError:
        return None
    if keys and not client.exists(REDIS_OWNER_KEY):
        raise SystemExit(f"{REDIS_URL} holds {keys} keys that are not this benchmark's: set BENCH_REDIS_URL")
    client.flushdb()
    client.set(REDIS_OWNER_KEY, "bench/auth.py")
    return REDIS_URL


def portal_side(stack: ExitStack, run_dir: Path, redis_url: str | None) -> Side:
    run_dir.mkdir(parents=True)
    # SQLite whatever DATABASE_URL says: the comparison is on one machine, with the peer's database.
    env = server_env(run_dir, DATABASE_URL=f"sqlite:///{run_dir / 'bench.sqlite3'}")
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
    manage(env, "migrate", "--noinput")
    django_run(
        env,
        f"from accounts.models import User; User.objects.create_user(email={EMAIL!r}, password={PASSWORD!r})",
    )
    server = stack.enter_context(gunicorn_server(env, workers=WORKERS, worker_class="sync"))
    body = json.dumps({"email": EMAIL, "password": base64.b64encode(PASSWORD.encode()).decode()})
    return Side(
        key="redis" if redis_url else "embedded",
        title=f"this project, Redis ({redis_url})" if redis_url else "this project, embedded file cache",
        server=server,
        hash_timer=stack.enter_context(closing(HashTimer(sys.executable, ROOT, env, password=PASSWORD))),
        how=SignIn("/api/auth/login", body.encode()),
        refresh_cookie="refreshToken",
        paths={
            "bare": "/healthz",
            "validate": "/api/auth/validate",
            "me": "/api/auth/me",
            "refresh": "/api/auth/refresh",
        },
    )


def peer_side(stack: ExitStack, run_dir: Path) -> Side:
    env = peer_prepare(run_dir, username=USERNAME, email=EMAIL, password=PASSWORD)
    server = stack.enter_context(peer_gunicorn(env, workers=WORKERS))
    return Side(
        key=PEER,
        title="peer: dj-rest-auth 7.2 + simplejwt 5.5.1",
        server=server,
        hash_timer=stack.enter_context(closing(HashTimer(peer_python(), PROJECT, env, password=PASSWORD))),
        how=SignIn("/auth/login/", json.dumps({"username": USERNAME, "password": PASSWORD}).encode()),
        refresh_cookie="peer-refresh",
        paths={"bare": "/healthz", "me": "/auth/user/", "refresh": "/auth/token/refresh/"},
    )


# --- one round --------------------------------------------------------------------------------


def get_measure(side: Side, case: str, results: Results) -> None:
    port, path, headers = side.server.port, side.paths[case], side.headers[case]
    rate = load.throughput(port, path, headers, connections=CONNECTIONS, seconds=SECONDS)
    results.add(side.key, f"{case} rps", rate.rps, rate.errors)
    results.add(side.key, f"{case} c{CONNECTIONS}", rate.rps)
    cpu, errors = load.cpu_us_per_request(
        side.server.pid, port, path, headers, count=CPU_REQUESTS, concurrency=CPU_CONCURRENCY
    )
    results.add(side.key, f"{case} cpu", cpu, errors)


def refresh_measure(side: Side, results: Results) -> None:
    before = load.cpu_seconds(side.server.pid)
    outcome = refresh_loop(side.server.port, side.paths["refresh"], side.refresh_jars, seconds=SECONDS)
    cpu = (load.cpu_seconds(side.server.pid) - before) / max(outcome.refreshes, 1) * 1e6
    results.add(side.key, "refresh rps", outcome.refreshes / outcome.seconds, outcome.errors)
    results.add(side.key, "refresh cpu", cpu)
    if outcome.errors:
        results.notes.append(f"{side.key} refresh refused: {outcome.first_error}; that client stopped")
        # A broken chain would stay broken: the next rounds get fresh sessions for those clients.
        side.refresh_jars = [sign_in(side.server.port, side.how) for _ in side.refresh_jars]


def sweep_measure(side: Side, case: str, connections: int, results: Results) -> None:
    port, path, headers = side.server.port, side.paths[case], side.headers[case]
    rate = load.throughput(port, path, headers, connections=connections, seconds=SWEEP_SECONDS)
    results.add(side.key, f"{case} c{connections}", rate.rps, rate.errors)


def login_measure(side: Side, results: Results) -> None:
    pairs = login_pairs(side.server.port, side.how, side.hash_timer, count=LOGINS)
    results.add(side.key, "login ms", statistics.median(login for login, _ in pairs) * 1000)
    results.add(side.key, "hash ms", statistics.median(hasher for _, hasher in pairs) * 1000)
    results.add(
        side.key, "login extra ms", statistics.median(login - hasher for login, hasher in pairs) * 1000
    )


def round_run(sides: list[Side], results: Results) -> None:
    """Every case on every side, one after the other: a slow moment touches a single case."""
    portals = [side for side in sides if side.key != PEER]
    for case in ("bare", "validate", "me"):
        for side in sides:
            if case in side.paths:
                get_measure(side, case, results)
    for side in sides:
        refresh_measure(side, results)
    for level in (level for level in SWEEP if level != CONNECTIONS):  # CONNECTIONS: measured above
        for case in ("validate", "me"):
            for side in portals:
                sweep_measure(side, case, level, results)
    for side in sides:
        login_measure(side, results)


def rotation_check(side: Side, results: Results) -> None:
    """A refresh must set a new refresh token, or the refresh case would not measure rotation."""
    jar = side.refresh_jars[0]
    before = jar.cookies.get(side.refresh_cookie)
    reply = load.request(side.server.port, "POST", side.paths["refresh"], {"Cookie": jar.header()})
    jar.update(reply)
    if reply.status != 200 or jar.cookies.get(side.refresh_cookie) in (None, before):
        results.notes.append(f"{side.key}: a refresh did not rotate the refresh token ({reply.status})")


def warm_up(sides: list[Side]) -> None:
    """Imports, first connections and code paths of both workers, before anything is timed."""
    for side in sides:
        for case in ("bare", "validate", "me"):
            if case in side.paths:
                load.fixed_count(
                    side.server.port, side.paths[case], side.headers[case], count=200, concurrency=4
                )
        refresh_loop(side.server.port, side.paths["refresh"], side.refresh_jars, seconds=0.5)


# --- the run ----------------------------------------------------------------------------------


def report(sides: list[Side], results: Results, rss: dict[str, list[float]], seconds: float) -> None:
    generator = (
        f"wrk -t2 -c{CONNECTIONS} -d{SECONDS:g}s"
        if load.WRK
        else f"built-in generator, {CONNECTIONS} clients, {SECONDS:g} s"
    )
    print(f"\nToken service vs peer: gunicorn {WORKERS} sync workers each, DEBUG off, SQLite; {generator}; "
          f"{ROUNDS} interleaved rounds, medians; CPU = utime+stime of the gunicorn processes over "
          f"{CPU_REQUESTS:,} requests ({CPU_CONCURRENCY} at a time); {os.cpu_count()} cores")  # fmt: skip
    for side in sides:
        if side.key != PEER:
            print(f"\nConfiguration: {side.title}")
            print("\n".join(targets_table(results, side.key)))
    portals = {side.key: side.title.removeprefix("this project, ") for side in sides if side.key != PEER}
    print(
        f"\nThroughput by concurrency (concurrent clients; c={CONNECTIONS} for {SECONDS:g} s, the others {SWEEP_SECONDS:g} s):"
    )
    print("\n".join(sweep_table(results, portals, SWEEP)))
    print("\nMemory after the run:")
    rows = [[side.title, ", ".join(f"{mib:.1f} MiB" for mib in rss[side.key])] for side in sides]
    print("\n".join(table(["server", "RSS per worker"], rows)))
    print("\n" + "\n".join(errors_lines(results)))
    print(f"\n{verdict_line(results, list(portals))}. Total time {seconds / 60:.1f} min.")


def main() -> None:
    started = time.monotonic()
    results = Results()
    with tempfile.TemporaryDirectory(prefix="portal-bench-") as tmp, ExitStack() as stack:
        run_dir = Path(tmp)
        redis_url = redis_claim()
        if redis_url is None:
            results.notes.append(
                f"Redis is not reachable at {REDIS_URL}: only the embedded cache was measured"
            )
        sides = [portal_side(stack, run_dir / "redis", redis_url)] if redis_url else []
        sides += [portal_side(stack, run_dir / "embedded", None), peer_side(stack, run_dir / "peer")]
        for side in sides:
            sessions_open(side)
            rotation_check(side, results)
        warm_up(sides)
        for number in range(1, ROUNDS + 1):
            print(f"round {number}/{ROUNDS} ({(time.monotonic() - started) / 60:.1f} min)", flush=True)
            round_run(sides, results)
        rss = {side.key: [load.rss_mib(pid) for pid in load.children(side.server.pid)] for side in sides}
    report(sides, results, rss, time.monotonic() - started)


if __name__ == "__main__":
    main()
