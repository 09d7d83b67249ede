"""A fake Argo CD API server on loopback, speaking the JSON of Argo CD 3.6's REST API.

It serves ``GET /api/v1/applications/{name}`` and ``GET /api/v1/applications`` (label
``selector``) for the Applications a test puts in it, and answers as Argo CD does: 401 without
the right bearer token, 404 for an unknown Application (403 unless exactly one ``projects`` is
named, as Argo CD hides what exists), lists filtered by ``projects``, ``runtimeError`` bodies;
query parameters its API description does not know are a problem of the test. Every
Application it serves is first checked against the ``v1alpha1Application`` definition of Argo
CD's own API description (``../shared/reference/argocd/swagger.json``), with unknown fields
refused, so the portal is tested against the real shape, not one made up here:

    with FakeArgoCD(token="t0ken") as argocd:
        argocd.application_put(client="client1", cluster="main", revision=commit, health="Progressing")
        argocd.url                      # http://127.0.0.1:<port>
        argocd.hang_seconds = 5         # every answer now comes 5 s late
        argocd.answer_status = 401      # every request is now refused
        argocd.refreshes()              # names the portal asked to refresh (?refresh=normal)
"""

from __future__ import annotations

import copy
import functools
import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema

SWAGGER = Path(__file__).resolve().parents[3] / "shared" / "reference" / "argocd" / "swagger.json"
CHART_REPO = "https://qdrant.github.io/qdrant-helm"
GITOPS_REPO = "https://git.example.com/platform/qdrant-clusters.git"
_ERRORS = {  # gRPC codes Argo CD's gateway puts in runtimeError bodies
    401: (16, "invalid session: token signature is invalid"),
    403: (7, "permission denied"),
    404: (5, "applications.argoproj.io not found"),
    500: (13, "internal error"),
}


def _strict(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` wherever it lists properties and allows no others."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema:
        strict["additionalProperties"] = False
    return strict


def _inherited(definitions: dict) -> dict:
    """Each definition with the properties of those it embeds (``allOf: [{$ref}]``) as its own.

    Strict, an ``allOf`` would refuse every document: each part forbids the other's fields.
    """
    merged = {}
    for name, schema in definitions.items():
        parts = [
            definitions[part["$ref"].rsplit("/", 1)[1]] for part in schema.get("allOf", []) if "$ref" in part
        ]
        if parts:
            schema = {key: value for key, value in schema.items() if key != "allOf"}
            schema["properties"] = {
                **{k: v for part in parts for k, v in part.get("properties", {}).items()},
                **schema.get("properties", {}),
            }
        merged[name] = schema
    return merged


@functools.cache
def _validator(definition: str) -> jsonschema.Draft4Validator:
    swagger = json.loads(SWAGGER.read_text())
    schema = {
        "$ref": f"#/definitions/{definition}",
        "definitions": _strict(_inherited(swagger["definitions"])),
    }
    return jsonschema.Draft4Validator(schema)


@functools.cache
def _query_parameters(path: str) -> frozenset[str]:
    """The query parameters Argo CD's API description gives ``GET path``."""
    operation = json.loads(SWAGGER.read_text())["paths"][path]["get"]
    return frozenset(p["name"] for p in operation.get("parameters", []) if p.get("in") == "query")


def argocd_problems(document: Any, definition: str = "v1alpha1Application") -> list[str]:
    """Where ``document`` differs from Argo CD's API description of ``definition``."""
    errors = _validator(definition).iter_errors(document)
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in errors]


def _now() -> str:
    return datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Recorded:
    """One request the fake received."""

    path: str
    query: dict[str, list[str]]
    authorization: str | None


def _matches(labels: dict[str, str], selector: str) -> bool:
    """Kubernetes label selector terms ``key=value``, ``key!=value`` and ``key`` (exists), comma-separated."""
    for term in filter(None, (part.strip() for part in selector.split(","))):
        if "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif term not in labels:
            return False
    return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        owner = self.server.owner
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        owner.record(Recorded(path=url.path, query=query, authorization=self.headers.get("Authorization")))
        if owner.hang_seconds:
            time.sleep(owner.hang_seconds)
        if owner.redirect_to:
            self._send(302, b"", location=owner.redirect_to + self.path)
            return
        status = owner.answer_status or (0 if owner.authorized(self.headers.get("Authorization")) else 401)
        if status:
            self._error(status)
            return
        prefix, tree_suffix = "/api/v1/applications/", "/resource-tree"
        tree = url.path.startswith(prefix) and url.path.endswith(tree_suffix)
        described = (
            "/api/v1/applications"
            if url.path == "/api/v1/applications"
            else prefix + ("{applicationName}" + tree_suffix if tree else "{name}")
        )
        unknown = sorted(set(query) - _query_parameters(described))
        if unknown:  # Argo CD would ignore them: a misspelt parameter must fail the test
            owner.problems.append(f"GET {described}: query parameters Argo CD does not know: {unknown}")
        projects = query.get("projects", [])
        if url.path == "/api/v1/applications":
            listed = owner.list_document(query.get("selector", [""])[0], projects)
            self._json(200, listed, "v1alpha1ApplicationList")
            return
        if tree:
            projects = query.get("project", [])  # the tree's parameter is singular
        name = unquote(url.path[len(prefix) : -len(tree_suffix) if tree else None])
        found = owner.application(name) if url.path.startswith(prefix) else None
        if found is None or (projects and found["spec"]["project"] not in projects):
            # Argo CD says 404 only when it can check the caller may see that project's
            # Applications: with exactly one project named; otherwise 403, hiding what exists.
            self._error(404 if len(projects) == 1 else 403)
            return
        if tree:
            if owner.tree_status:
                self._error(owner.tree_status)
                return
            self._json(200, owner.tree(name), "v1alpha1ApplicationTree")
            return
        self._json(200, found, "v1alpha1Application")

    def _error(self, status: int) -> None:
        code, message = _ERRORS.get(status, (2, "unknown"))
        self._json(status, {"error": message, "code": code, "message": message}, "runtimeError")

    def _json(self, status: int, document: Any, definition: str) -> None:
        problems = argocd_problems(document, definition)
        if problems:  # a bug in the fake: fail loudly in the test, never serve a made-up shape
            self.server.owner.problems.extend(problems)
            self._send(500, b"fake Argo CD: invalid document")
            return
        self._send(status, json.dumps(document).encode(), content_type="application/json")

    def _send(self, status: int, body: bytes, content_type: str = "text/plain", location: str = "") -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            if location:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the portal gave up waiting: what a late answer from a slow Argo CD meets

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: FakeArgoCD


class FakeArgoCD:
    """Argo CD's API on ``http://127.0.0.1:<free port>``, holding the Applications a test puts in it."""

    def __init__(self, *, token: str = "fake-argocd-token", project: str = "qdrant-clusters") -> None:
        if not SWAGGER.exists():
            raise FileNotFoundError(f"{SWAGGER} is absent: Argo CD's API description comes with ../shared")
        self.token = token
        self.project = project
        self.answer_status = 0  # not 0: every request is answered with this status
        self.hang_seconds = 0.0  # every answer waits this long
        self.redirect_to = ""  # every request is redirected there
        self.tree_status = 0  # not 0: every resource tree is answered with this status
        self.problems: list[str] = []  # documents that did not match Argo CD's API description
        self._applications: dict[str, dict] = {}
        self._trees: dict[str, dict] = {}
        self._requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeArgoCD:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-argocd", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.hang_seconds = 0
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("The fake is not running: use it as a context manager.")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- What the handler asks ----------------------------------------------------------------

    def authorized(self, header: str | None) -> bool:
        return header == f"Bearer {self.token}"

    def record(self, request: Recorded) -> None:
        with self._lock:
            self._requests.append(request)

    def application(self, name: str) -> dict | None:
        with self._lock:
            found = self._applications.get(name)
            return copy.deepcopy(found) if found is not None else None

    def tree(self, name: str) -> dict:
        with self._lock:
            return copy.deepcopy(self._trees.get(name, {"nodes": []}))

    def list_document(self, selector: str, projects: list[str]) -> dict:
        with self._lock:
            items = [
                copy.deepcopy(app)
                for app in self._applications.values()
                if _matches(app["metadata"].get("labels", {}), selector)
                and (not projects or app["spec"]["project"] in projects)
            ]
        return {"metadata": {"resourceVersion": "4242"}, "items": items}

    # --- What the test sees ---------------------------------------------------------------------

    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)

    def refreshes(self) -> list[str]:
        """The Applications the portal asked to refresh (``GET ...?refresh=normal``), in order."""
        prefix = "/api/v1/applications/"
        return [
            unquote(request.path[len(prefix) :])
            for request in self.requests()
            if request.path.startswith(prefix) and request.query.get("refresh") == ["normal"]
        ]

    def wait_for_refresh(self, name: str, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if name in self.refreshes():
                return True
            time.sleep(0.02)
        return False

    # --- What the test sets ---------------------------------------------------------------------

    def application_remove(self, name: str) -> None:
        with self._lock:
            self._applications.pop(name, None)
            self._trees.pop(name, None)

    def application_put(
        self,
        *,
        client: str,
        cluster: str,
        revision: str,
        sync: str = "Synced",
        health: str = "Healthy",
        health_message: str = "",
        health_inline: bool = False,
        operation: str = "Succeeded",
        operation_message: str = "",
        operation_revision: str | None = None,
        conditions: tuple[tuple[str, str], ...] = (),
        since: str | None = None,
    ) -> dict:
        """Put (or replace) the Application of ``client``/``cluster`` as Argo CD would report it.

        ``revision``: the git revision of the values (and secret) sources Argo CD compared to;
        ``health_message``: the StatefulSet's, where Argo CD 3.x keeps it: in the resource tree
        (its default), or with ``health_inline`` in ``status.resources`` (resource health
        persisted inline, 2.x's default); never the Application's own health, which 3.x leaves
        without a message. ``operation``: the phase of the last sync operation (``""``: none yet), for
        ``operation_revision`` (default: ``revision``); ``since``: when the health last
        changed and the operation, if any, ended (``lastTransitionTime``, ``finishedAt``; default now).
        """
        name = f"qdrant.{client}.{cluster}"
        sources = _sources(client, cluster)
        revisions = ["1.19.0", revision, revision]
        status: dict[str, Any] = {
            "sync": {
                "status": sync,
                "revisions": revisions,
                "comparedTo": {"sources": sources, "destination": _destination(client)},
            },
            "health": {"status": health, "lastTransitionTime": since or _now()},
            "reconciledAt": _now(),
            "sourceTypes": ["Helm", "Directory", "Directory"],
            "controllerNamespace": "argocd",
        }
        statefulset = {
            "group": "apps",
            "version": "v1",
            "kind": "StatefulSet",
            "namespace": f"qdrant-{client}",
            "name": f"qdrant-{client}-{cluster}",
        }
        resource_health = (
            {"status": health, "message": health_message} if health_message else {"status": health}
        )
        if health_inline:
            status["resources"] = [{**statefulset, "status": sync, "health": resource_health}]
        else:
            status["resourceHealthSource"] = "appTree"
        if operation:
            status["operationState"] = _operation(
                operation, operation_message, operation_revision or revision, since or _now()
            )
        if conditions:
            status["conditions"] = [
                {"type": kind, "message": message, "lastTransitionTime": _now()}
                for kind, message in conditions
            ]
        document = {
            "metadata": {
                "name": name,
                "namespace": "argocd",
                "labels": {"qdrant-portal/client": client, "qdrant-portal/cluster": cluster},
                "resourceVersion": str(time.monotonic_ns()),
                "creationTimestamp": _now(),
            },
            "spec": {
                "project": self.project,
                "sources": sources,
                "destination": _destination(client),
                "syncPolicy": {
                    "automated": {"prune": True, "selfHeal": True},
                    "syncOptions": ["CreateNamespace=true", "RespectIgnoreDifferences=true"],
                },
            },
            "status": status,
        }
        problems = argocd_problems(document)
        assert problems == [], problems
        tree = {"nodes": [{**statefulset, "health": resource_health, "resourceVersion": "1"}]}
        problems = argocd_problems(tree, "v1alpha1ApplicationTree")
        assert problems == [], problems
        with self._lock:
            self._applications[name] = document
            self._trees[name] = tree
        return document


def _sources(client: str, cluster: str) -> list[dict]:
    """The three sources of the ApplicationSet's template (gitops/argocd.py), filled in."""
    folder = f"clients/{client}/{cluster}"
    return [
        {
            "repoURL": CHART_REPO,
            "chart": "qdrant",
            "targetRevision": "1.19.0",
            "helm": {
                "releaseName": f"qdrant-{client}-{cluster}",
                "valueFiles": [f"$values/{folder}/values.yaml"],
            },
        },
        {"repoURL": GITOPS_REPO, "targetRevision": "main", "ref": "values"},
        {
            "repoURL": GITOPS_REPO,
            "targetRevision": "main",
            "path": folder,
            "directory": {"include": "apikey.sealed.yaml"},
        },
    ]


def _destination(client: str) -> dict:
    return {"server": "https://kubernetes.default.svc", "namespace": f"qdrant-{client}"}


def _operation(phase: str, message: str, revision: str, since: str) -> dict:
    state: dict[str, Any] = {
        "phase": phase,
        "startedAt": since,
        "operation": {
            "sync": {"revisions": ["1.19.0", revision, revision], "prune": True},
            "initiatedBy": {"automated": True},
            "retry": {"limit": 5},
        },
    }
    if message:
        state["message"] = message
    if phase not in {"Running", "Terminating"}:
        state["finishedAt"] = since
        state["syncResult"] = {"revisions": ["1.19.0", revision, revision], "resources": []}
    return state
