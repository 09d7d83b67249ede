"""``gitops_sync`` looks at the remote before it renders, without holding up writes meanwhile, and
says so when it could not."""

from __future__ import annotations

import threading
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from clusters import sync
from gitops.locks import branch_lock
from gitops.remote import RemoteState

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_fetch_before_a_sync_leaves_the_branch_lock_to_writers(settings, git_server, cluster1):
    real_fetch = sync.remote_fetch
    writer_got_the_lock = threading.Event()
    during_the_fetch: list[bool] = []

    def fetch_while_a_writer_commits(**kwargs):
        def writer() -> None:
            try:
                with branch_lock(repo_path=Path(settings.GITOPS_REPO_PATH)):
                    writer_got_the_lock.set()
            finally:
                connection.close()

        thread = threading.Thread(target=writer)
        thread.start()
        thread.join(timeout=3)  # a fetch of a hanging remote lasts as long: writes must not wait
        during_the_fetch.append(writer_got_the_lock.is_set())
        return real_fetch(**kwargs)

    sync.remote_fetch, saved = fetch_while_a_writer_commits, sync.remote_fetch
    try:
        call_command("gitops_sync", stdout=StringIO())
    finally:
        sync.remote_fetch = saved

    assert during_the_fetch == [True]


def test_a_sync_that_could_not_fetch_fails_even_with_nothing_to_push(monkeypatch, git_server, cluster1):
    monkeypatch.setattr(sync, "remote_fetch", lambda **kwargs: RemoteState(reachable=False, tip=None))

    with pytest.raises(CommandError, match="could not be fetched"):  # the CronJob must not look healthy
        call_command("gitops_sync", stdout=StringIO())
