"""Load generators and server-side meters for the HTTP benchmarks.

Throughput comes from `wrk` when it is installed (a C client: it leaves the machine's cores to
the server) and from a small threaded generator otherwise. CPU per request comes from the
server's own processes (``utime + stime`` in /proc/<pid>/stat), counted over a fixed number of
requests: a figure that a noisy neighbour disturbs much less than requests per second.
"""

from __future__ import annotations

import http.client
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# BENCH_NO_WRK=1 tries the built-in generator on a machine that has wrk.
WRK = None if os.environ.get("BENCH_NO_WRK") else shutil.which("wrk")
CLOCK_TICK_SECONDS = 1 / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Throughput:
    rps: float
    errors: int  # non-2xx answers and socket errors


@dataclass(frozen=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def request(port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> Reply:
    """One request on a connection of its own (gunicorn's sync workers close every connection anyway)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        return Reply(response.status, response.getheaders(), response.read())
    finally:
        connection.close()


# --- requests per second --------------------------------------------------------------------


def throughput(
    port: int, path: str, headers: dict[str, str], *, connections: int, seconds: float
) -> Throughput:
    """GETs per second over ``seconds`` from ``connections`` concurrent clients."""
    if WRK:
        return _wrk(port, path, headers, connections=connections, seconds=seconds)
    return _threaded(port, path, headers, connections=connections, seconds=seconds)


def _wrk(port: int, path: str, headers: dict[str, str], *, connections: int, seconds: float) -> Throughput:
    args = [WRK, f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds:g}s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    output = subprocess.run(
        [*args, f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, check=True
    ).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if rps is None:
        raise SystemExit(f"could not read wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(non_2xx.group(1)) if non_2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return Throughput(float(rps.group(1)), errors)


def _threaded(
    port: int, path: str, headers: dict[str, str], *, connections: int, seconds: float
) -> Throughput:
    stop = time.monotonic() + seconds
    counts = _in_threads(
        connections, lambda: time.monotonic() < stop, lambda: request(port, "GET", path, headers)
    )
    return Throughput(counts[0] / seconds, counts[1])


def _in_threads(threads: int, more: Callable[[], bool], send: Callable[[], Reply]) -> tuple[int, int]:
    """Call ``send`` from ``threads`` threads while ``more()``; (2xx answers, other answers)."""
    ok, failed = [0] * threads, [0] * threads

    def client(index: int) -> None:
        while more():
            try:
                reply = send()
            except OSError:
                failed[index] += 1
                continue
            if 200 <= reply.status < 300:
                ok[index] += 1
            else:
                failed[index] += 1

    workers = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sum(ok), sum(failed)


def fixed_count(port: int, path: str, headers: dict[str, str], *, count: int, concurrency: int) -> int:
    """Send exactly ``count`` GETs, ``concurrency`` at a time; the number that failed."""
    remaining = iter(range(count))
    lock = threading.Lock()

    def more() -> bool:
        with lock:
            return next(remaining, None) is not None

    return _in_threads(concurrency, more, lambda: request(port, "GET", path, headers))[1]


# --- the server's processes -----------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    # The command name (field 2) may contain spaces: the fields after it follow its closing ")".
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (gunicorn's workers, for its master)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, ValueError):
                continue  # the process ended meanwhile
    return sorted(found)


def cpu_seconds(master: int) -> float:
    """User + system CPU time of a gunicorn master and its workers so far."""
    ticks = 0
    for pid in (master, *children(master)):
        fields = _stat_fields(pid)
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    return ticks * CLOCK_TICK_SECONDS


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise ValueError(f"no VmRSS for process {pid}")


def cpu_us_per_request(
    master: int, port: int, path: str, headers: dict[str, str], *, count: int, concurrency: int
) -> tuple[float, int]:
    """Server CPU µs per GET over ``count`` requests, and how many failed."""
    before = cpu_seconds(master)
    errors = fixed_count(port, path, headers, count=count, concurrency=concurrency)
    return (cpu_seconds(master) - before) / count * 1e6, errors
