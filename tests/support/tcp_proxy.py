"""A TCP proxy on loopback whose behaviour a test switches at runtime: a dependency that fails.

Put it in front of PostgreSQL or Redis and point the portal at it instead:

    with TcpProxy("127.0.0.1", 6379) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        proxy.refuse()    # stopped: new connections refused, open ones reset
        proxy.hang()      # hung: connections accepted and kept open, nothing forwarded
        proxy.forward()   # back to normal

``refuse`` stops listening (a connect gets ``ECONNREFUSED``) and resets every open
connection on both sides, so a client's pooled connections see the failure at once. ``hang``
accepts connections and holds them, and stops forwarding on the open ones, as a paused server
does: bytes wait in the kernel's buffers. ``forward`` after ``hang`` delivers what waited,
as when a paused server resumes; ``refuse`` then ``forward`` drops it, as when it restarted.

The listening port stays bound throughout (Linux stops listening on ``shutdown`` and listens
again on ``listen``), so nothing else can take it while the dependency is "stopped".
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import struct
import threading
from types import TracebackType

FORWARD = "forward"
REFUSE = "refuse"
HANG = "hang"
_MODES = frozenset({FORWARD, REFUSE, HANG})
_POLL_SECONDS = 0.05
_CHUNK = 65536


def _reset(sock: socket.socket | None) -> None:
    """Close with an RST (SO_LINGER 0): the peer's next read or write fails at once.

    Shut down first: a pump thread waiting in ``select`` on the socket holds it open until it
    wakes, which would delay the RST by up to ``_POLL_SECONDS``; a stopped server's connections
    end at once."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


def _listener_bind(host: str) -> socket.socket:
    """A socket bound to an explicit port: only then does ``shutdown`` keep the port for us."""
    for _attempt in range(20):
        with socket.socket() as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            listener.bind((host, port))
        except OSError as error:
            listener.close()
            if error.errno == errno.EADDRINUSE:
                continue  # someone took it between the probe and the bind
            raise
        return listener
    raise RuntimeError("no free port for the proxy")


class _Link:
    """One client connection and its upstream connection (made when forwarding starts)."""

    def __init__(self, proxy: TcpProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.closed = False

    def reset(self) -> None:
        """Cut both sides with an RST: what either side has not read yet is lost (refuse, exit)."""
        self.closed = True
        _reset(self.client)
        _reset(self.upstream)

    def run(self) -> None:
        try:
            self._pump()
        except (OSError, ValueError):
            self.reset()  # one side failed or was reset under us: the other learns it at once
        else:
            self.closed = True
            for sock in (self.client, self.upstream):
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.close()
        finally:
            self.proxy._forget(self)

    def _pump(self) -> None:
        reading: dict[socket.socket, socket.socket] = {}  # source -> destination, until its EOF
        while not self.closed:
            mode = self.proxy.mode
            if mode != FORWARD:
                self.proxy._mode_changed_wait(mode)  # hung: read nothing, answer nothing
                continue
            if self.upstream is None:
                self.upstream = socket.create_connection(self.proxy.target, timeout=5)
                self.upstream.settimeout(None)
                reading = {self.client: self.upstream, self.upstream: self.client}
            if not reading:
                return  # both sides said all they had to say
            readable, _, _ = select.select(list(reading), [], [], _POLL_SECONDS)
            if self.proxy.mode != FORWARD:
                continue  # switched while waiting: leave the bytes where they are
            for source in readable:
                destination = reading[source]
                data = source.recv(_CHUNK)
                if data:
                    destination.sendall(data)
                else:
                    # The peer finished sending: pass its FIN on (not an RST), so the other side
                    # still reads what came before it, as it would without the proxy.
                    destination.shutdown(socket.SHUT_WR)
                    del reading[source]


class TcpProxy:
    """A threaded proxy from ``127.0.0.1:<port>`` to ``target_host:target_port``."""

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self._mode = FORWARD
        self._changed = threading.Condition()
        self._links: set[_Link] = set()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    # --- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> TcpProxy:
        self._listener = _listener_bind(self.host)
        self._listener.setblocking(False)  # a connection reset while queued must not block accept
        self._listener.listen(128)
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._changed:
            self._stopping = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._links_reset()
        if self._listener is not None:
            self._listener.close()

    @property
    def port(self) -> int:
        if self._listener is None:
            raise RuntimeError("The proxy is not running: use it as a context manager.")
        return self._listener.getsockname()[1]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # --- modes -----------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self._mode

    def mode_set(self, mode: str) -> None:
        if mode not in _MODES:
            raise ValueError(f"unknown proxy mode {mode!r} (one of {sorted(_MODES)})")
        with self._changed:
            previous, self._mode = self._mode, mode
            if mode == REFUSE and previous != REFUSE:
                self._listener.shutdown(socket.SHUT_RDWR)  # stop listening, keep the port
            elif previous == REFUSE and mode != REFUSE:
                self._listener.listen(128)
            self._changed.notify_all()
        if mode == REFUSE:
            self._links_reset()

    def forward(self) -> None:
        self.mode_set(FORWARD)

    def refuse(self) -> None:
        self.mode_set(REFUSE)

    def hang(self) -> None:
        self.mode_set(HANG)

    # --- internals -------------------------------------------------------------------------

    def _mode_changed_wait(self, mode: str) -> None:
        with self._changed:
            if self._mode == mode and not self._stopping:
                self._changed.wait(timeout=_POLL_SECONDS * 4)

    def _links_reset(self) -> None:
        with self._changed:
            links = list(self._links)
        for link in links:
            link.reset()

    def _forget(self, link: _Link) -> None:
        with self._changed:
            self._links.discard(link)

    def _accept_loop(self) -> None:
        while not self._stopping:
            if self._mode == REFUSE:
                self._mode_changed_wait(REFUSE)
                continue
            try:
                readable, _, _ = select.select([self._listener], [], [], _POLL_SECONDS)
                if not readable:
                    continue
                with self._changed:
                    if self._mode == REFUSE:
                        continue
                    client, _ = self._listener.accept()
            except OSError:
                continue  # the listener was shut down under us (refuse): wait for the next mode
            client.setblocking(True)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            link = _Link(self, client)
            with self._changed:
                if self._stopping:
                    link.reset()
                    return
                self._links.add(link)
            threading.Thread(target=link.run, name="tcp-proxy-link", daemon=True).start()
