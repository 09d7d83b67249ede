"""gitops.argocd_api against a fake Argo CD speaking Argo CD 3.6's JSON: what it reads, how it fails."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread

import pytest

from gitops.argocd_api import ApplicationStatus, ArgoCDConnection, application_get, applications_list
from gitops.errors import ArgoCDUnavailable
from tests.helpers import free_port
from tests.support.fake_argocd import SWAGGER, FakeArgoCD

pytestmark = pytest.mark.skipif(
    not SWAGGER.exists(), reason=f"{SWAGGER} is absent: Argo CD's API description comes with ../shared"
)

TOKEN = "argocd-api-test-token-0123456789"
VALUES = "1" * 40


@pytest.fixture
def argocd():
    with FakeArgoCD(token=TOKEN) as fake:
        yield fake
        assert fake.problems == []


def _connection(fake: FakeArgoCD, **fields) -> ArgoCDConnection:
    return ArgoCDConnection(
        **{"url": fake.url, "token": TOKEN, "timeout": 1.0, "project": "qdrant-clusters", **fields}
    )


def test_a_multi_source_application_reads_as_the_revision_of_its_values_source(argocd):
    argocd.application_put(
        client="acme", cluster="prod", revision=VALUES, health="Degraded", health_message="1/3 pods ready"
    )

    status = application_get(connection=_connection(argocd), name="qdrant.acme.prod")

    assert status.name == "qdrant.acme.prod"
    assert status.revision == VALUES  # not the chart's "1.19.0", the first source
    assert (status.sync_status, status.health_status, status.health_message) == (
        "Synced",
        "Degraded",
        "1/3 pods ready",
    )
    assert (status.operation_phase, status.operation_revision) == ("Succeeded", VALUES)
    # Argo CD 3.x gives an Application's health no message: the reason is its StatefulSet's,
    # in the resource tree, asked for because the cluster is unhealthy.
    application, tree = argocd.requests()
    assert (application.path, tree.path) == (
        "/api/v1/applications/qdrant.acme.prod",
        "/api/v1/applications/qdrant.acme.prod/resource-tree",
    )
    assert {application.authorization, tree.authorization} == {f"Bearer {TOKEN}"}
    assert application.query == {"projects": ["qdrant-clusters"]}  # no token in the URL
    assert tree.query == {"project": ["qdrant-clusters"]}  # the tree's parameter is singular
    assert argocd.problems == []


def test_a_healthy_application_costs_one_question(argocd):
    argocd.application_put(client="acme", cluster="prod", revision=VALUES)
    application_get(connection=_connection(argocd), name="qdrant.acme.prod")
    applications_list(connection=_connection(argocd), selector="qdrant-portal/client=acme")
    assert [request.path for request in argocd.requests()] == [
        "/api/v1/applications/qdrant.acme.prod",
        "/api/v1/applications",
    ]


def test_resource_health_persisted_inline_is_read_without_the_tree(argocd):
    argocd.application_put(
        client="acme", cluster="prod", revision=VALUES, health="Progressing",
        health_message="Waiting for 3 pods to be ready", health_inline=True,
    )  # fmt: skip
    [status] = applications_list(connection=_connection(argocd), selector="qdrant-portal/client=acme")
    assert status.health_message == "Waiting for 3 pods to be ready"
    assert [request.path for request in argocd.requests()] == ["/api/v1/applications"]


@pytest.mark.parametrize("tree_status", [403, 500])
def test_an_unanswered_tree_leaves_the_state_without_its_reason(argocd, tree_status):
    argocd.application_put(
        client="acme", cluster="prod", revision=VALUES, health="Degraded", health_message="x"
    )
    argocd.tree_status = tree_status
    status = application_get(connection=_connection(argocd), name="qdrant.acme.prod")
    assert (status.health_status, status.health_message) == ("Degraded", "")
    [status] = applications_list(connection=_connection(argocd), selector="qdrant-portal/client=acme")
    assert (status.health_status, status.health_message) == ("Degraded", "")


def test_a_failed_operation_and_conditions_are_read_with_argo_cds_messages(argocd):
    argocd.application_put(
        client="acme",
        cluster="prod",
        revision=VALUES,
        sync="OutOfSync",
        operation="Failed",
        operation_message="one or more objects failed to apply: StatefulSet is invalid",
        conditions=(("SyncError", "Failed sync attempt"),),
    )

    status = application_get(connection=_connection(argocd), name="qdrant.acme.prod")

    assert status.operation_failed and not status.operation_running
    assert "StatefulSet is invalid" in status.operation_message
    assert [(c.type, c.message) for c in status.conditions] == [("SyncError", "Failed sync attempt")]


def test_a_refresh_is_asked_with_refresh_normal_and_the_app_namespace(argocd):
    argocd.application_put(client="acme", cluster="prod", revision=VALUES)

    application_get(
        connection=_connection(argocd, app_namespace="qdrant-apps"), name="qdrant.acme.prod", refresh=True
    )

    assert argocd.refreshes() == ["qdrant.acme.prod"]
    assert argocd.requests()[0].query["appNamespace"] == ["qdrant-apps"]


def test_a_client_s_applications_are_listed_by_label(argocd):
    argocd.application_put(client="acme", cluster="prod", revision=VALUES)
    argocd.application_put(client="acme", cluster="staging", revision=VALUES)
    argocd.application_put(client="other", cluster="prod", revision=VALUES)

    found = applications_list(connection=_connection(argocd), selector="qdrant-portal/client=acme")
    every = applications_list(connection=_connection(argocd), selector="qdrant-portal/client")

    assert sorted(status.name for status in found) == ["qdrant.acme.prod", "qdrant.acme.staging"]
    assert len(every) == 3
    assert argocd.requests()[0].query["selector"] == ["qdrant-portal/client=acme"]


@pytest.mark.parametrize(
    ("status", "kind", "words"),
    [
        (401, "unauthorized", "refused the portal's token"),
        (403, "forbidden", "RBAC"),
        (500, "bad_answer", "answered 500"),
    ],
)
def test_refusals_are_one_typed_error_with_a_reason(argocd, status, kind, words):
    argocd.application_put(client="acme", cluster="prod", revision=VALUES)
    argocd.answer_status = status

    with pytest.raises(ArgoCDUnavailable) as raised:
        application_get(connection=_connection(argocd), name="qdrant.acme.prod")

    assert raised.value.kind == kind and words in raised.value.reason


def test_a_wrong_token_is_refused_with_401(argocd):
    with pytest.raises(ArgoCDUnavailable) as raised:
        application_get(connection=_connection(argocd, token="not-the-token"), name="qdrant.acme.prod")
    assert raised.value.kind == "unauthorized"


def test_an_unknown_application_is_not_found(argocd):
    with pytest.raises(ArgoCDUnavailable) as raised:
        application_get(connection=_connection(argocd), name="qdrant.acme.gone")
    assert raised.value.kind == "not_found" and "qdrant.acme.gone" in raised.value.reason


def test_a_hanging_argo_cd_costs_the_timeout_and_no_more(argocd):
    argocd.application_put(client="acme", cluster="prod", revision=VALUES)
    argocd.hang_seconds = 5

    started = time.monotonic()
    with pytest.raises(ArgoCDUnavailable) as raised:
        application_get(connection=_connection(argocd, timeout=1.0), name="qdrant.acme.prod")

    assert raised.value.kind == "timeout" and "1 s" in raised.value.reason
    assert time.monotonic() - started < 2.0


def _trickling_server(protocol: str) -> ThreadingHTTPServer:
    """Answers 200 and its headers at once, then one byte of the body every 0.3 s, for 12 s."""

    class Trickle(BaseHTTPRequestHandler):
        protocol_version = protocol

        def do_GET(self):  # noqa: N802
            self.close_connection = True  # no waiting for a next request on a connection reset
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            chunked = self.protocol_version == "HTTP/1.1"
            self.send_header(*(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", "40")))
            self.end_headers()
            for _ in range(40):
                try:
                    self.wfile.write(b"1\r\n \r\n" if chunked else b" ")
                    self.wfile.flush()
                except OSError:  # the portal hung up, as it should
                    return
                time.sleep(0.3)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("protocol", ["HTTP/1.0", "HTTP/1.1"], ids=["closing-length", "keep-alive-chunked"])
def test_an_answer_trickling_in_costs_the_timeout_and_no_more(protocol):
    server = _trickling_server(protocol)
    connection = ArgoCDConnection(
        url=f"http://127.0.0.1:{server.server_address[1]}", token=TOKEN, timeout=1.0
    )
    try:
        started = time.monotonic()
        with pytest.raises(ArgoCDUnavailable) as raised:
            application_get(connection=connection, name="qdrant.acme.prod")
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
        server.server_close()

    assert raised.value.kind == "timeout"
    assert raised.value.reason == "Argo CD did not answer within 1 s."
    # A timeout per read would wait for all 12 s of trickle; slack for a loaded machine.
    assert elapsed < 2.0, f"a byte every 0.3 s held the call {elapsed:.1f} s"


def test_a_refused_connection_is_unreachable():
    connection = ArgoCDConnection(url=f"http://127.0.0.1:{free_port()}", token=TOKEN, timeout=1.0)
    with pytest.raises(ArgoCDUnavailable) as raised:
        application_get(connection=connection, name="qdrant.acme.prod")
    assert raised.value.kind == "unreachable"


def test_redirects_are_not_followed_so_the_token_stays_with_argo_cd(argocd):
    with FakeArgoCD(token=TOKEN) as elsewhere:
        argocd.redirect_to = elsewhere.url
        with pytest.raises(ArgoCDUnavailable) as raised:
            application_get(connection=_connection(argocd), name="qdrant.acme.prod")
        assert raised.value.kind == "bad_answer"
        assert elsewhere.requests() == []


# The second: JSON nested deeper than Python's decoder can recurse (RecursionError, not ValueError).
@pytest.mark.parametrize("answer", [b"<html>502 Bad Gateway</html>", b"[" * 200_000])
def test_an_answer_that_is_not_json_is_a_bad_answer(answer):
    class NotJson(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body = answer
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotJson)
    Thread(target=server.serve_forever, daemon=True).start()
    try:
        connection = ArgoCDConnection(url=f"http://127.0.0.1:{server.server_address[1]}", token=TOKEN)
        with pytest.raises(ArgoCDUnavailable) as raised:
            application_get(connection=connection, name="qdrant.acme.prod")
        assert raised.value.kind == "bad_answer" and "not JSON" in raised.value.reason
    finally:
        server.shutdown()
        server.server_close()


def test_the_token_is_in_no_repr_and_no_reason(argocd):
    connection = _connection(argocd)
    argocd.answer_status = 401
    with pytest.raises(ArgoCDUnavailable) as raised:
        application_get(connection=connection, name="qdrant.acme.prod")

    assert TOKEN not in repr(connection)
    assert TOKEN not in raised.value.reason and TOKEN not in str(raised.value)


def test_an_application_argo_cd_knows_little_about_yet_reads_as_empty_fields():
    from gitops.argocd_api import application_parse

    status = application_parse({"metadata": {"name": "qdrant.acme.new"}, "spec": {}, "status": {}})
    assert status == ApplicationStatus(name="qdrant.acme.new")
    with pytest.raises(ArgoCDUnavailable):
        application_parse(["not", "an", "application"])
