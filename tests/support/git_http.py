"""A git server on loopback: bare repositories served over smart HTTP by ``git http-backend``.

libgit2's local-path transport writes straight into the other repository and runs no hooks,
so it cannot show what a real server does: refuse a push in a ``pre-receive`` hook, answer
late, or not answer at all. This server runs git's own CGI program for each request, as a
web server in front of a git host would:

    with GitHttpServer(tmp_path / "served") as server:
        server.repository_create("gitops.git", push_delay_ms=100)
        url = server.url("gitops.git")   # http://127.0.0.1:<port>/gitops.git
        server.answering = False          # every request now fails, as if the host were down
        server.stall_seconds = 3          # every request waits this long first, as a stalled host

With ``credentials=(user, password)`` it asks for HTTP Basic authentication, as a git host
asks for a token.
"""

from __future__ import annotations

import base64
import hmac
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

HTTP_BACKEND = "/usr/lib/git-core/git-http-backend"
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
}


def _chunked_body_read(stream: BinaryIO, connection: socket.socket) -> bytes:
    """A ``Transfer-Encoding: chunked`` body (libgit2 sends pushes that way).

    libgit2 writes each chunk's size line and data separately, and its Nagle algorithm holds
    the data until the size line is acknowledged: Linux's delayed ACK would add 40 ms to every
    push on loopback, so each read acknowledges at once (TCP_QUICKACK does not stay set).
    """
    chunks = []
    while True:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        size = int(stream.readline().split(b";")[0].strip(), 16)
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        chunks.append(stream.read(size))
        stream.readline()  # the CRLF after each chunk


def _cgi_response_split(output: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a CGI program's output."""
    ends = [(output.find(separator), separator) for separator in (b"\r\n\r\n", b"\n\n")]
    _, separator = min((found for found in ends if found[0] >= 0), default=(0, b"\n\n"))
    head, _, body = output.partition(separator)
    status, headers = 200, []
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.lower() == "status":
            status = int(value.split()[0])
        elif name:
            headers.append((name, value.strip()))
    return status, headers, body


class _GitHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # libgit2 keeps the connection for the push's second request
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        if not self.server.owner.answering:
            self.close_connection = True  # hang up without a word, as a dead host's proxy would
            return
        time.sleep(self.server.owner.stall_seconds)
        super().handle_one_request()

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        if self._authorized():
            self._cgi_run(b"")

    def do_POST(self) -> None:  # noqa: N802
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            body = _chunked_body_read(self.rfile, self.connection)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self._authorized():
            self._cgi_run(body)

    def _authorized(self) -> bool:
        """Basic authentication when the server has credentials; otherwise everyone may."""
        expected = self.server.owner.credentials
        if expected is None:
            return True
        token = base64.b64encode(f"{expected[0]}:{expected[1]}".encode()).decode()
        if hmac.compare_digest(self.headers.get("Authorization", ""), f"Basic {token}"):
            return True
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def _cgi_run(self, body: bytes) -> None:
        path, _, query = self.path.partition("?")
        environment = {
            **_GIT_ENV,
            "GIT_PROJECT_ROOT": str(self.server.owner.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GATEWAY_INTERFACE": "CGI/1.1",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)),
            "REMOTE_USER": "portal",
            "REMOTE_ADDR": self.client_address[0],
        }
        if self.headers.get("Content-Encoding"):
            environment["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            environment["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        result = subprocess.run([HTTP_BACKEND], input=body, capture_output=True, env=environment, check=False)
        status, headers, content = _cgi_response_split(result.stdout)
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(content)))
        # Headers and body in one write: two small writes would wait on the client's delayed ACK.
        self._headers_buffer.append(b"\r\n" + content)
        self.flush_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass  # quiet: pytest shows failures, not every request


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: GitHttpServer


class GitHttpServer:
    """Serves the bare repositories under ``root`` on ``http://127.0.0.1:<free port>/``."""

    def __init__(self, root: Path, *, credentials: tuple[str, str] | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.credentials = credentials  # (user, password) for HTTP Basic, or None: no authentication
        self.answering = True  # False: every connection is closed unanswered
        self.stall_seconds = 0.0  # each connection's requests wait this long before they are read
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> GitHttpServer:
        self._server = _Server(("127.0.0.1", 0), _GitHandler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="git-http", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("The server is not running: use it as a context manager.")
        return self._server.server_address[1]

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def repository_create(self, name: str, *, push_delay_ms: int = 0) -> Path:
        """A bare repository that accepts pushes; with a delay, each push is answered that much later."""
        path = self.root / name
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "--initial-branch=main", str(path)],
            check=True,
            env={**os.environ, **_GIT_ENV},
        )
        subprocess.run(
            ["git", "--git-dir", str(path), "config", "http.receivepack", "true"],
            check=True,
            env={**os.environ, **_GIT_ENV},
        )
        if push_delay_ms:
            self.pre_receive_hook_install(name, f"sleep {push_delay_ms / 1000:.3f}")
        return path

    def pre_receive_hook_install(self, name: str, script: str) -> None:
        """Run ``script`` (sh) before each push is accepted; a non-zero exit refuses the push."""
        hook = self.root / name / "hooks" / "pre-receive"
        hook.write_text(f"#!/bin/sh\ncat >/dev/null\n{script}\n")
        hook.chmod(0o755)

    def refusing_hook_install(self, name: str, reason: str = "pushes are closed") -> None:
        self.pre_receive_hook_install(name, f"echo {shlex.quote(reason)} >&2\nexit 1")


class GitHttpServerProcess(GitHttpServer):
    """The same server in a process of its own, as a real git host is: its request handling
    then does not compete with the caller's threads for one interpreter lock (benchmarks).
    ``answering`` and ``credentials`` are not supported here."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self._process: subprocess.Popen[str] | None = None
        self._port = 0

    def __enter__(self) -> GitHttpServerProcess:
        self._process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", "tests.support.git_http", str(self.root)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        self._port = int(self._process.stdout.readline())  # the child prints its port once serving
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)

    @property
    def port(self) -> int:
        return self._port


if __name__ == "__main__":
    with GitHttpServer(Path(sys.argv[1])) as served:
        print(served.port, flush=True)
        threading.Event().wait()  # until terminated
