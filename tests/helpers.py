"""Small helpers several test modules share (fixtures live in conftest.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from html.parser import HTMLParser
from io import StringIO

import jwt
import pytest
from django.core.management import CommandError, call_command
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


class Racer(threading.Thread):
    """A request's service call in a thread of its own, on its own database connection, committing
    as the request would; ``held``: in one transaction kept open once the call has returned, until
    ``release()`` (so another call can be run against its uncommitted work). ``outcome`` is what
    it returned or raised."""

    def __init__(self, call: Callable[[], object], *, held: bool = False) -> None:
        super().__init__(daemon=True)
        self.call, self.held = call, held
        self.called, self.released = threading.Event(), threading.Event()
        self.outcome: object = None

    def run(self) -> None:
        from contextlib import nullcontext

        from django.db import connections, transaction

        try:
            with transaction.atomic() if self.held else nullcontext():
                try:
                    self.outcome = self.call()
                finally:
                    self.called.set()
                if self.held:
                    self.released.wait(timeout=30)
        except Exception as error:  # noqa: BLE001 - the outcome the test asserts
            self.outcome = error
        finally:
            self.called.set()
            connections.close_all()

    def release(self) -> None:
        self.released.set()

    def finish(self) -> object:
        self.release()
        self.join(timeout=30)
        assert not self.is_alive(), "still waiting after 30 s: a deadlock?"
        return self.outcome


def side_by_side(first: Racer, second: Racer) -> tuple[object, object]:
    """``first`` done but not committed, ``second`` started against it, then both finished."""
    first.start()
    assert first.called.wait(timeout=30)
    second.start()
    second.join(timeout=0.5)  # time to run ahead, if nothing makes it wait
    return first.finish(), second.finish()


def concurrent_writers_required() -> None:
    """Races need a database whose writers wait for each other's locks."""
    from django.db import connection

    if connection.vendor == "sqlite":
        pytest.skip(
            "concurrent writers need PostgreSQL or MariaDB (the SQLite test database is shared-cache in memory)"
        )


def access_token_made(user, *, clients: dict, name: str = "ci", days: int = 7):
    """A personal access token of ``user`` and its secret, made as the Tokens page makes one: by a
    session of theirs (a sign-in of its own)."""
    from datetime import timedelta

    from accounts.access_tokens import access_token_create
    from accounts.audit import RequestOrigin
    from accounts.models import Session
    from accounts.selectors import session_facts
    from accounts.services import session_start

    origin = RequestOrigin(ip=None, user_agent="")
    session = Session.objects.get(pk=session_start(user=user, method="password", origin=origin).session_id)
    return access_token_create(
        user=user,
        session_id=session.pk,
        facts=session_facts(session),
        name=name,
        expires_in=timedelta(days=days),
        clients=clients,
        origin=origin,
    )


def race(*calls: Callable[[], object]) -> list[object]:
    """Run the calls at the same moment, each in a thread on its own database connection; what
    each returned or raised, in their order."""
    from django.db import connections

    start, outcomes = threading.Barrier(len(calls)), [None] * len(calls)

    def run(index: int) -> None:
        try:
            start.wait()
            outcomes[index] = calls[index]()
        except Exception as error:  # noqa: BLE001 - the outcome the test asserts
            outcomes[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,), daemon=True) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return outcomes


class _FormFields(HTMLParser):
    """The fields of one ``<form>`` as a browser submits them (``form_as_submitted``)."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id, self.inside = form_id, False
        self.select: str | None = None
        self.multiple, self.first_option = False, None  # a single select with none chosen sends its first
        self.textarea: str | None = None
        self.data: dict[str, list[str]] = {}

    def _add(self, name: str | None, value: str) -> None:
        if name:
            self.data.setdefault(name, []).append(value)

    def _input(self, found: dict) -> None:
        kind = (found.get("type") or "text").lower()
        if kind in {"submit", "button", "image", "reset", "file"}:
            return
        if kind not in {"checkbox", "radio"} or "checked" in found:
            self._add(found.get("name"), found.get("value", "on" if kind == "checkbox" else ""))

    def _option(self, found: dict) -> None:
        if self.first_option is None:
            self.first_option = found.get("value", "")
        if "selected" in found:
            self._add(self.select, found.get("value", ""))

    def handle_starttag(self, tag: str, attrs: list) -> None:
        found = dict(attrs)
        if tag == "form":
            self.inside = found.get("id") == self.form_id
        if not self.inside or "disabled" in found:
            return
        if tag == "input":
            self._input(found)
        elif tag == "select":
            self.select, self.multiple, self.first_option = found.get("name"), "multiple" in found, None
        elif tag == "option" and self.select:
            self._option(found)
        elif tag == "textarea":
            self.textarea = found.get("name")
            self._add(self.textarea, "")

    def handle_data(self, data: str) -> None:
        if self.inside and self.textarea:
            self.data[self.textarea][-1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select" and self.select:
            if not self.multiple and self.select not in self.data and self.first_option is not None:
                self._add(self.select, self.first_option)
            self.select = None
        elif tag == "textarea" and self.textarea:
            self.data[self.textarea][-1] = self.data[self.textarea][-1].removeprefix("\n")
            self.textarea = None


def change_page_form(browser, url: str, form_id: str) -> dict[str, list[str]]:
    """The admin page at ``url`` as ``browser`` shows it: its form, to change and post back."""
    page = browser.get(url)
    assert page.status_code == 200
    return form_as_submitted(page.content.decode(), form_id=form_id)


def form_as_submitted(page: str, *, form_id: str) -> dict[str, list[str]]:
    """What a browser submits of the form ``form_id`` on ``page`` (HTML) left as it is: its
    inputs (checkboxes and radios when checked), each select's chosen options and its textareas;
    disabled fields and buttons are not sent. Change it, then post it, as an operator would."""
    parser = _FormFields(form_id)
    parser.feed(page)
    assert parser.data, f"no form {form_id!r} on the page"
    return parser.data


def admin_action_confirmed(browser, changelist: str, action: str, pks: list, **kwargs):
    """An admin action that asks first, run as an operator runs it: the rows selected, the action
    chosen, then the question page's form sent as it came (the answer to that one page)."""
    asked = browser.post(changelist, {"action": action, "_selected_action": [str(pk) for pk in pks]})
    assert asked.status_code == 200, asked.get("Location")
    answer = form_as_submitted(asked.content.decode(), form_id="action-confirmation")
    return browser.post(changelist, answer, **kwargs)


def gitops_sync_run(*args: str) -> tuple[str, CommandError | None]:
    """``manage.py gitops_sync *args``: what it printed, and the error it exited with (None: 0)."""
    out = StringIO()
    try:
        call_command("gitops_sync", *args, stdout=out)
    except CommandError as error:
        return out.getvalue(), error
    return out.getvalue(), None
