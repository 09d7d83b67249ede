"""What the token benchmark's clients do: sign in, keep cookies, refresh in a loop, time a login.

Shared by both sides of the comparison, so the portal and the peer are driven the same way.
"""

from __future__ import annotations

import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.load import Reply, request

# Times argon2 alone, with the hasher and parameters the server's settings configure: one hash
# per line read, so that the benchmark can alternate a hash with a login (see login_pairs).
HASH_TIMER_CODE = """
import sys, time
import django
django.setup()
from django.contrib.auth.hashers import get_hasher
hasher = get_hasher()
print(hasher.algorithm, flush=True)
for _ in sys.stdin:
    started = time.perf_counter()
    hasher.encode({password!r}, hasher.salt())
    print(time.perf_counter() - started, flush=True)
"""


@dataclass(frozen=True)
class SignIn:
    """How a side signs in: where to POST what."""

    path: str
    body: bytes
    content_type: str = "application/json"


class CookieJar:
    """One browser's cookies for one site (paths ignored: every cookie goes with every request)."""

    def __init__(self) -> None:
        self.cookies: dict[str, str] = {}

    def update(self, reply: Reply) -> None:
        for name, value in reply.headers:
            if name.lower() != "set-cookie":
                continue
            pair, _, attributes = value.partition(";")
            key, _, content = pair.strip().partition("=")
            if "max-age=0" in attributes.lower().replace(" ", ""):  # Django's delete_cookie
                self.cookies.pop(key, None)
            else:
                self.cookies[key] = content

    def header(self) -> str:
        return "; ".join(f"{key}={value}" for key, value in self.cookies.items())


def sign_in(port: int, how: SignIn) -> CookieJar:
    """A fresh session's cookies."""
    reply = request(port, "POST", how.path, {"Content-Type": how.content_type}, how.body)
    if reply.status != 200:
        raise SystemExit(f"sign-in at {how.path} failed: {reply.status} {reply.body[:300]!r}")
    jar = CookieJar()
    jar.update(reply)
    return jar


class HashTimer:
    """A process of the server's own interpreter and settings that times one password hash on demand."""

    def __init__(self, python: str | Path, cwd: Path, env: dict[str, str], *, password: str) -> None:
        self.process = subprocess.Popen(
            [str(python), "-c", HASH_TIMER_CODE.format(password=password)],
            cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        algorithm = self._line()
        if algorithm != "argon2":
            raise SystemExit(f"the first password hasher is {algorithm}, not argon2")

    def _line(self) -> str:
        assert self.process.stdin and self.process.stdout
        line = self.process.stdout.readline().strip()
        if not line:
            raise SystemExit(f"the hash timer exited ({self.process.poll()})")
        return line

    def seconds(self) -> float:
        assert self.process.stdin
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return float(self._line())

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=10)


def login_pairs(port: int, how: SignIn, timer: HashTimer, *, count: int) -> list[tuple[float, float]]:
    """(login, hash) wall times, alternated on an otherwise idle server.

    A login beyond its hash is a difference of two noisy figures hundreds of milliseconds
    long: timing them in alternation puts a slow moment of the machine into both of a pair.
    """
    pairs = []
    for _ in range(count):
        started = time.perf_counter()
        sign_in(port, how)
        pairs.append((time.perf_counter() - started, timer.seconds()))
    return pairs


@dataclass
class RefreshResult:
    refreshes: int = 0
    errors: int = 0
    seconds: float = 0.0
    first_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def failed(self, reply: Reply) -> None:
        with self.lock:
            self.errors += 1
            self.first_error = self.first_error or f"{reply.status} {reply.body[:200]!r}"


def refresh_loop(port: int, path: str, jars: list[CookieJar], *, seconds: float) -> RefreshResult:
    """One client per jar, each refreshing its own session with the cookies the last answer set.

    A refused refresh ends that client: its chain is broken (the session revoked), and what
    follows would only measure how fast refusals are.
    """
    result, stop = RefreshResult(), time.monotonic() + seconds
    counts = [0] * len(jars)

    def client(index: int, jar: CookieJar) -> None:
        while time.monotonic() < stop:
            reply = request(port, "POST", path, {"Cookie": jar.header()})
            if reply.status != 200:
                result.failed(reply)
                return
            jar.update(reply)
            counts[index] += 1

    threads = [threading.Thread(target=client, args=(i, jar)) for i, jar in enumerate(jars)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result.seconds, result.refreshes = time.monotonic() - started, sum(counts)
    return result
