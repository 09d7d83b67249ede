from __future__ import annotations

from pathlib import Path

import pytest

from gitops.remote import RemoteConfig
from gitops.repository import GitIdentity, GitopsRepository, repository_open

ALICE = GitIdentity(name="Alice Example", email="alice@example.com")
PORTAL = GitIdentity(name="Qdrant Portal", email="portal@example.com")


@pytest.fixture
def repository(tmp_path: Path) -> GitopsRepository:
    return repository_open(
        path=tmp_path / "gitops.git", branch="main", bootstrap_files={"README.md": b"hello\n"}
    )


@pytest.fixture
def remote(tmp_path: Path) -> RemoteConfig:
    """An empty bare repository playing the git server."""
    server = repository_open(path=tmp_path / "server.git", branch="main", bootstrap_files={})
    return RemoteConfig(url=str(server.path))
