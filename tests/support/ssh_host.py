"""An SSH server on loopback that only says who tried to sign in: a git host's front door.

It shows what the portal's SSH transport does before any git is spoken: whether it checks
the host's key, and whether it offers its own key to a host it does not know. Nothing past
the authentication is served (every key is refused), so no git operation ever succeeds:

    with SshHost() as host:
        url = host.url("gitops.git")      # ssh://git@127.0.0.1:<port>/gitops.git
        host.known_hosts_line             # "[127.0.0.1]:<port> ssh-ed25519 AAAA..."
        host.sign_in_attempts             # users that offered a key, in order
"""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import paramiko


class _Refusing(paramiko.ServerInterface):
    def __init__(self, host: SshHost) -> None:
        self._host = host

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        self._host.sign_in_attempts.append(username)
        return paramiko.AUTH_FAILED


class SshHost:
    def __init__(self) -> None:
        self._key = paramiko.RSAKey.generate(2048)
        self.sign_in_attempts: list[str] = []
        self._socket = socket.socket()
        self._transports: list[paramiko.Transport] = []
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._socket.getsockname()[1]

    @property
    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self._key.get_name()} {self._key.get_base64()}\n"

    def url(self, path: str) -> str:
        return f"ssh://git@127.0.0.1:{self.port}/{path}"

    def __enter__(self) -> SshHost:
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(8)
        self._thread = threading.Thread(target=self._serve, name="ssh-host", daemon=True)
        self._thread.start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self._socket.accept()
            except OSError:  # closed: the test is over
                return
            # Each connection's handshake in its own thread: one the client gives up on (it
            # refused an unknown host key) must not hold up, or end, the serving of the next.
            threading.Thread(target=self._handshake, args=(connection,), daemon=True).start()

    def _handshake(self, connection: socket.socket) -> None:
        transport = paramiko.Transport(connection)
        transport.add_server_key(self._key)
        self._transports.append(transport)
        try:
            transport.start_server(server=_Refusing(self))
        except (paramiko.SSHException, OSError, EOFError):  # EOFError: the client hung up
            return

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._socket.close()
        for transport in self._transports:
            transport.close()
