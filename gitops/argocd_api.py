"""Argo CD's REST API: the one module that asks Argo CD anything (with ``requests``).

It reads what the portal needs of the Applications the ApplicationSet generates
(``gitops.argocd``): their sync status and the revision of each source, their health, the last
sync operation and their conditions (Argo CD 3.x, ``GET /api/v1/applications[/{name}]``), and
asks Argo CD to refresh one at once (``?refresh=normal``) instead of waiting for its poll. Why
an Application is not healthy is its StatefulSet's health message: Argo CD 3.x keeps that in the
resource tree (``GET .../{name}/resource-tree``), read only for an unhealthy Application.

Every call is bounded: ``timeout`` is the whole exchange, connecting and reading included, so a
server that trickles bytes cannot hold a caller longer than a silent one. TLS is verified (with
``ca_file`` when Argo CD's certificate is not signed by a public authority); redirects are not
followed and proxy settings from the environment are not used, so the token goes to
``url`` and nowhere else. Every failure is one :class:`gitops.errors.ArgoCDUnavailable`
with a reason for people; the token is in no reason, log line or ``repr``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

import requests
import urllib3

from gitops.argocd import VALUES_SOURCE_REF
from gitops.errors import ArgoCDUnavailable

# A list of every Application of a large installation is a few megabytes; more is not Argo CD.
_BODY_MAX_BYTES = 64 * 1024 * 1024
_CHUNK_BYTES = 64 * 1024
# Argo CD's own words for a finished, unsuccessful operation and for one under way.
OPERATION_FAILED = frozenset({"Failed", "Error"})
OPERATION_RUNNING = frozenset({"Running", "Terminating"})
# The chart's workload: its health message says why the cluster is not healthy.
_WORKLOAD = ("apps", "StatefulSet")
_UNHEALTHY = frozenset({"Progressing", "Degraded", "Suspended", "Missing"})


@dataclass(frozen=True)
class ArgoCDConnection:
    """Where Argo CD's API server is and how to ask it; ``project`` narrows every question to one project."""

    url: str
    token: str = field(repr=False)
    timeout: float = 2.0
    ca_file: str | None = None
    app_namespace: str = ""
    project: str = ""


@dataclass(frozen=True)
class ApplicationCondition:
    type: str
    message: str


@dataclass(frozen=True)
class ApplicationStatus:
    """What Argo CD reports about one Application.

    ``revision``: the git revision Argo CD last compared the Application to, of the source
    holding the values files (``ref: values`` in a multi-source Application, else the only
    source); ``operation_revision``: the same source's revision in the last sync operation.
    Empty strings where Argo CD says nothing.
    """

    name: str
    sync_status: str = ""
    revision: str = ""
    health_status: str = ""
    health_message: str = ""
    operation_phase: str = ""
    operation_message: str = ""
    operation_revision: str = ""
    conditions: tuple[ApplicationCondition, ...] = ()
    # When the health last changed (``health.lastTransitionTime``), and when the last sync
    # operation began and ended (``operationState.startedAt``, ``finishedAt``); None where
    # Argo CD does not say.
    health_since: datetime | None = None
    operation_started_at: datetime | None = None
    operation_finished_at: datetime | None = None

    @property
    def operation_failed(self) -> bool:
        return self.operation_phase in OPERATION_FAILED

    @property
    def operation_running(self) -> bool:
        return self.operation_phase in OPERATION_RUNNING


# --- Reading an Application's JSON -------------------------------------------------------------


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _time(value: Any) -> datetime | None:
    """A Kubernetes timestamp (RFC 3339, ``2026-11-27T10:00:00Z``); None when absent or not one."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(_text(item) for item in value) if isinstance(value, list) else ()


def _values_index(spec: Mapping[str, Any]) -> int | None:
    """The index of the source holding the values files (None: a single-source Application)."""
    sources = spec.get("sources")
    if not isinstance(sources, list) or not sources:
        return None
    for index, source in enumerate(sources):
        if _mapping(source).get("ref") == VALUES_SOURCE_REF:
            return index
    return 0


def _source_revision(single: Any, many: Any, index: int | None) -> str:
    if index is None:
        return _text(single)
    revisions = _texts(many)
    return revisions[index] if index < len(revisions) else ""


def _operation_revision(operation: Mapping[str, Any], index: int | None) -> str:
    result = _mapping(operation.get("syncResult"))
    found = _source_revision(result.get("revision"), result.get("revisions"), index)
    if found:
        return found
    requested = _mapping(_mapping(operation.get("operation")).get("sync"))
    return _source_revision(requested.get("revision"), requested.get("revisions"), index)


def _workload_health_message(resources: Any) -> str:
    """The StatefulSet's health message among ``resources`` (an Application's ``status.resources``,
    where Argo CD keeps each resource's health when it persists it inline, or a resource tree's
    ``nodes``)."""
    for resource in map(_mapping, resources if isinstance(resources, list) else ()):
        if (_text(resource.get("group")), _text(resource.get("kind"))) == _WORKLOAD:
            return _text(_mapping(resource.get("health")).get("message"))
    return ""


def application_parse(document: Any) -> ApplicationStatus:
    """The status of an Application from Argo CD's JSON (``v1alpha1Application``)."""
    if not isinstance(document, Mapping):
        raise ArgoCDUnavailable("Argo CD answered something that is not an Application.", kind="bad_answer")
    status = _mapping(document.get("status"))
    sync, health = _mapping(status.get("sync")), _mapping(status.get("health"))
    operation = _mapping(status.get("operationState"))
    index = _values_index(_mapping(document.get("spec")))
    conditions = status.get("conditions") if isinstance(status.get("conditions"), list) else []
    return ApplicationStatus(
        name=_text(_mapping(document.get("metadata")).get("name")),
        sync_status=_text(sync.get("status")),
        revision=_source_revision(sync.get("revision"), sync.get("revisions"), index),
        health_status=_text(health.get("status")),
        # The Application's own message (Argo CD 3.x sets none), else its StatefulSet's, inline.
        health_message=_text(health.get("message")) or _workload_health_message(status.get("resources")),
        operation_phase=_text(operation.get("phase")),
        operation_message=_text(operation.get("message")),
        operation_revision=_operation_revision(operation, index),
        conditions=tuple(
            ApplicationCondition(type=_text(item.get("type")), message=_text(item.get("message")))
            for item in map(_mapping, conditions)
        ),
        health_since=_time(health.get("lastTransitionTime")),
        operation_started_at=_time(operation.get("startedAt")),
        operation_finished_at=_time(operation.get("finishedAt")),
    )


# --- Asking ------------------------------------------------------------------------------------

_STATUS_REASONS = {
    401: ("unauthorized", "Argo CD refused the portal's token (401): it is missing, expired or revoked."),
    403: ("forbidden", "Argo CD's RBAC does not let the portal's account read this (403)."),
    404: ("not_found", "Argo CD has no such Application (404)."),
}


def _response_socket(response: requests.Response) -> socket.socket | None:
    """The socket of a kept-alive connection (None once the server closed it after this answer:
    each read then has the whole timeout, so a server that falls silent then costs at most
    twice ``ARGOCD_TIMEOUT``; one that trickles is still cut at the deadline)."""
    connection = response.raw.connection
    return connection.sock if connection is not None else None


def _body_read(response: requests.Response, deadline: float) -> bytes:
    """The body, read by 64 KiB at most, each read bounded by the time left until ``deadline``.

    Not ``iter_content``: each of its reads waits for 64 KiB or the end, every receive with
    the whole timeout, so a server trickling a byte now and then never reaches a deadline
    check. ``read1`` returns what one receive brought, and before each the socket's timeout is
    cut to the time left.
    """
    sock = _response_socket(response)
    chunks, size = [], 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise requests.Timeout("the answer took too long")
            if sock is not None and sock.fileno() != -1:  # -1: closed, the whole body is in
                sock.settimeout(left)
            chunk = response.raw.read1(_CHUNK_BYTES, decode_content=True)
            if not chunk:
                return b"".join(chunks)
            size += len(chunk)
            if size > _BODY_MAX_BYTES:
                raise ArgoCDUnavailable(
                    "Argo CD's answer is larger than any list of Applications.", kind="bad_answer"
                )
            chunks.append(chunk)
    except urllib3.exceptions.ReadTimeoutError as error:
        raise requests.Timeout("the answer took too long") from error
    except urllib3.exceptions.HTTPError as error:  # cut off, or not decodable
        raise ArgoCDUnavailable("Argo CD's answer broke off before its end.", kind="bad_answer") from error


def _answer_check(response: requests.Response, what: str) -> None:
    if response.status_code in _STATUS_REASONS:
        kind, reason = _STATUS_REASONS[response.status_code]
        raise ArgoCDUnavailable(reason.replace("such Application", f"Application {what}"), kind=kind)
    if response.status_code != 200:
        raise ArgoCDUnavailable(
            f"Argo CD answered {response.status_code} {response.reason or ''}".rstrip() + ".",
            kind="bad_answer",
        )


def _get(connection: ArgoCDConnection, path: str, params: Mapping[str, str], what: str) -> Any:
    """The JSON Argo CD answers to ``GET path``, within ``connection.timeout`` all told."""
    deadline = time.monotonic() + connection.timeout
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment sees the token; no .netrc replaces it
    try:
        with session.get(
            connection.url.rstrip("/") + path,
            params={key: value for key, value in params.items() if value},
            headers={"Authorization": f"Bearer {connection.token}", "Accept": "application/json"},
            # Connecting and the headers share the timeout (urllib3 gives the headers what
            # connecting left; each of their few reads is bounded by that); _body_read bounds
            # the body by what is left after them.
            timeout=urllib3.Timeout(
                connect=connection.timeout, read=connection.timeout, total=connection.timeout
            ),
            verify=connection.ca_file or True,
            allow_redirects=False,
            stream=True,
        ) as response:
            _answer_check(response, what)
            body = _body_read(response, deadline)
    except requests.exceptions.SSLError as error:
        raise ArgoCDUnavailable("Argo CD's TLS certificate was not accepted.", kind="tls") from error
    except requests.Timeout as error:
        raise ArgoCDUnavailable(
            f"Argo CD did not answer within {connection.timeout:g} s.", kind="timeout"
        ) from error
    except requests.ConnectionError as error:
        raise ArgoCDUnavailable("Argo CD cannot be reached.", kind="unreachable") from error
    except requests.RequestException as error:
        raise ArgoCDUnavailable(
            f"Asking Argo CD failed: {type(error).__name__}.", kind="bad_answer"
        ) from error
    finally:
        session.close()
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the decoder recurses
        raise ArgoCDUnavailable("Argo CD's answer is not JSON.", kind="bad_answer") from None


def _scope(connection: ArgoCDConnection) -> dict[str, str]:
    # With a project, Argo CD answers 404 for a missing Application instead of 403 (it knows
    # then that the caller may read that project's Applications).
    return {"appNamespace": connection.app_namespace, "projects": connection.project}


def application_get(*, connection: ArgoCDConnection, name: str, refresh: bool = False) -> ApplicationStatus:
    """One Application's status; ``refresh``: ask Argo CD to compare it with git again at once.

    A refresh is requested as soon as Argo CD receives the call (it then answers once it has
    compared, which may outlast the timeout: the refresh happens all the same).
    """
    params = {**_scope(connection), "refresh": "normal" if refresh else ""}
    document = _get(connection, f"/api/v1/applications/{quote(name, safe='')}", params, name)
    return _with_workload_message(connection, application_parse(document))


def _with_workload_message(connection: ArgoCDConnection, status: ApplicationStatus) -> ApplicationStatus:
    """``status`` with why it is unhealthy: its StatefulSet's health message from the resource tree.

    Argo CD 3.x keeps each resource's health there (``resourceHealthSource: appTree``), not in
    the Application: one more question, for an unhealthy Application only. Without an answer
    the state still stands, with a general sentence instead of the reason.
    """
    if status.health_status not in _UNHEALTHY or status.health_message or not status.name:
        return status
    path = f"/api/v1/applications/{quote(status.name, safe='')}/resource-tree"
    scope = {"appNamespace": connection.app_namespace, "project": connection.project}
    try:
        tree = _get(connection, path, scope, status.name)
    except ArgoCDUnavailable:
        return status
    message = _workload_health_message(tree.get("nodes") if isinstance(tree, Mapping) else None)
    return replace(status, health_message=message) if message else status


def applications_list(*, connection: ArgoCDConnection, selector: str = "") -> list[ApplicationStatus]:
    """The Applications matching a label ``selector`` (``key=value``, or ``key`` for any value).

    The unhealthy ones' reasons are asked for while the list's own ``timeout`` lasts, so many
    unhealthy clusters make a list take at most about twice the timeout.
    """
    deadline = time.monotonic() + connection.timeout
    document = _get(connection, "/api/v1/applications", {**_scope(connection), "selector": selector}, "list")
    items = _mapping(document).get("items") if isinstance(document, Mapping) else None
    if items is None:
        return []  # Argo CD leaves "items" out of an empty list
    if not isinstance(items, list):
        raise ArgoCDUnavailable("Argo CD's list of Applications is not a list.", kind="bad_answer")
    statuses = [application_parse(item) for item in items]
    return [
        _with_workload_message(connection, status) if time.monotonic() < deadline else status
        for status in statuses
    ]
