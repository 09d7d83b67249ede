"""The fault suite's switchable proxy does what its modes promise (no PostgreSQL or Redis needed)."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.support.tcp_proxy import TcpProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.server.received.append(data)
            self.request.sendall(data)


class _EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.received: list[bytes] = []


@pytest.fixture
def proxy() -> Iterator[tuple[TcpProxy, _EchoServer]]:
    server = _EchoServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        with TcpProxy(*server.server_address) as tcp_proxy:
            yield tcp_proxy, server
    finally:
        server.shutdown()
        server.server_close()


def _connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=2)


def _echo(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    return sock.recv(4096)


def test_forward_carries_both_ways(proxy):
    tcp_proxy, _server = proxy
    with _connect(tcp_proxy.port) as sock:
        assert _echo(sock, b"ping") == b"ping"


def test_refuse_resets_open_connections_and_refuses_new_ones_then_forward_listens_again(proxy):
    tcp_proxy, _server = proxy
    port = tcp_proxy.port
    with _connect(port) as pooled:
        assert _echo(pooled, b"one") == b"one"
        tcp_proxy.refuse()
        with pytest.raises(OSError):  # reset by peer, or the empty read of a closed connection
            if not _echo(pooled, b"two"):
                raise ConnectionResetError
    with pytest.raises(ConnectionRefusedError):
        _connect(port)
    tcp_proxy.forward()
    assert tcp_proxy.port == port  # the same address throughout
    with _connect(port) as sock:
        assert _echo(sock, b"back") == b"back"


def test_hang_accepts_and_holds_then_forward_delivers_what_waited(proxy):
    tcp_proxy, server = proxy
    with _connect(tcp_proxy.port) as pooled:
        assert _echo(pooled, b"before") == b"before"
        tcp_proxy.hang()
        with _connect(tcp_proxy.port) as fresh:  # accepted, as by a paused server's kernel
            fresh.settimeout(0.3)
            fresh.sendall(b"fresh")
            with pytest.raises(TimeoutError):
                fresh.recv(4096)
            pooled.settimeout(0.3)
            pooled.sendall(b"held")
            with pytest.raises(TimeoutError):
                pooled.recv(4096)
            assert b"held" not in b"".join(server.received)

            tcp_proxy.forward()  # resumed: what waited is delivered and answered
            pooled.settimeout(2)
            fresh.settimeout(2)
            assert pooled.recv(4096) == b"held"
            assert fresh.recv(4096) == b"fresh"


def test_hang_then_refuse_drops_what_waited_as_a_restart_does(proxy):
    tcp_proxy, server = proxy
    with _connect(tcp_proxy.port) as pooled:
        assert _echo(pooled, b"before") == b"before"
        tcp_proxy.hang()
        pooled.sendall(b"lost")
        tcp_proxy.refuse()
        tcp_proxy.forward()
        with _connect(tcp_proxy.port) as sock:
            assert _echo(sock, b"after") == b"after"
    assert b"lost" not in b"".join(server.received)


def test_a_client_that_gives_up_while_hung_still_delivers_what_it_sent(proxy):
    """A FIN, not an RST, follows the bytes upstream: a resumed server still reads them."""
    tcp_proxy, server = proxy
    with _connect(tcp_proxy.port) as pooled:
        assert _echo(pooled, b"before") == b"before"
        tcp_proxy.hang()
        pooled.sendall(b"late")
    tcp_proxy.forward()
    deadline = time.monotonic() + 2
    while b"late" not in b"".join(server.received) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert b"late" in b"".join(server.received)
