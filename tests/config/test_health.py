from django.db import OperationalError, connection


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
