"""Small helpers several test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
import threading

import jwt
from rest_framework.test import APIClient

from gitops.repository import GitIdentity, GitopsRepository, branch_tip, files_commit


def token_parts(token: str) -> tuple[dict, dict]:
    """A JWT's header and claims, read without verifying (to look at what was issued)."""
    return jwt.get_unverified_header(token), jwt.decode(token, options={"verify_signature": False})


def me(token: str):
    """``GET /api/auth/me`` with ``token`` as the bearer, from a fresh client."""
    return APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {token}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# A cache that refuses every connection at once: for the paths that must fail closed (503).
DEAD_REDIS = {
    "default": {
        "BACKEND": "config.cache.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",
        "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
    }
}


def cache_reads_late(monkeypatch, seconds: float = 0.05) -> None:
    """Every read of the default cache answers ``seconds`` late, so that requests sent together
    overlap: what reads a count, then writes it back, lets them all through."""
    from django.core.cache import caches

    backend = caches["default"]
    read = backend.get

    def late_read(*args, **kwargs):
        value = read(*args, **kwargs)
        threading.Event().wait(seconds)
        return value

    monkeypatch.setattr(backend, "get", late_read)


def hand_commit(repository: GitopsRepository, path: str, content: bytes | None) -> str:
    """A person's commit on the branch tip of ``repository`` (``content`` None: the file is
    deleted), as someone editing the gitops repository by hand makes it; its id."""
    ops = GitIdentity("Ops", "ops@example.com")
    files_commit(
        repository=repository,
        changes={path: content},
        author=ops,
        committer=ops,
        message="hand edit\n",
        expected_tip=branch_tip(repository=repository),
    )
    return branch_tip(repository=repository)
