import pytest
from django.db import OperationalError, connection
from django.test import Client


def test_healthz_answers_without_touching_the_database(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_database_and_cache_answer(client, db):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "cache": "ok"}


def test_readyz_is_503_with_a_reason_when_the_database_is_unreachable(client, db, monkeypatch):
    def refuse_connection(*args, **kwargs):
        raise OperationalError("connection refused")

    # The database server going away is outside this process: stand in for it at the driver edge.
    with monkeypatch.context() as patch:
        patch.setattr(connection, "cursor", refuse_connection)
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "not_ready"
    assert body["checks"]["database"] == "database unreachable: OperationalError"
    assert body["checks"]["cache"] == "ok"


def test_a_failing_readiness_probe_is_reported_once_per_burst_not_an_error_per_probe(
    client, db, monkeypatch, caplog
):
    import logging

    from config import outages
    from config.logging import OutageFilter

    monkeypatch.setattr(outages.database_outage, "_last_report", -outages.REPORT_INTERVAL_SECONDS)

    def refuse_connection(*args, **kwargs):
        raise OperationalError("connection refused")

    with caplog.at_level(logging.INFO), monkeypatch.context() as patch:
        patch.setattr(connection, "cursor", refuse_connection)
        for _ in range(3):  # Kubernetes probes every few seconds while the database is gone
            assert client.get("/readyz").status_code == 503
    # What the log handler lets through (config.logging.OutageFilter): no error line per probe.
    logged = [r for r in caplog.records if r.name == "django.request" and OutageFilter().filter(r)]
    assert [r.getMessage() for r in logged] == []
    reports = [r.getMessage() for r in caplog.records if r.name == "portal.outages"]
    assert len(reports) == 1 and reports[0].startswith("database unreachable: OperationalError")


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probes_answer_head_like_get_for_monitors_that_send_it(client, db, settings, path):
    settings.METRICS_TOKEN = "scrape-token-for-this-test"
    headers = {"Authorization": "Bearer scrape-token-for-this-test"}
    got = client.get(path, headers=headers)
    headed = client.head(path, headers=headers)
    assert got.status_code == headed.status_code == 200
    assert headed.content == b""
    assert headed["Content-Type"] == got["Content-Type"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
@pytest.mark.parametrize("method", ["post", "put", "delete", "options"])
def test_probes_refuse_other_methods_in_the_error_shape_even_without_a_csrf_token(db, path, method):
    client = Client(enforce_csrf_checks=True)
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"
    assert response["Allow"] == "GET, HEAD"
