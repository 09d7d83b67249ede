"""Every error under /api/ has the contract's shape: {"code", "detail"} (+ "fields")."""

import pytest


def test_unknown_api_path_is_a_json_404(client, db):
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


def test_unknown_well_known_path_is_a_json_404(client, db):
    response = client.get("/.well-known/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.urls("tests.config.urls")
class TestErrorFormat:
    def test_malformed_json_is_invalid_request(self, client):
        response = client.post("/api/echo", data="{not json", content_type="application/json")
        assert response.status_code == 400
        assert response.json() == {
            "code": "invalid_request",
            "detail": "The request body is not valid JSON.",
        }

    def test_validation_error_lists_fields(self, client):
        response = client.post("/api/echo", data={"replicas": 11}, content_type="application/json")
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid_request"
        assert list(body["fields"]) == ["replicas"]
        assert body["fields"]["replicas"][0].startswith("Ensure this value")

    def test_wrong_method_is_405_with_code(self, client):
        response = client.get("/api/echo")
        assert response.status_code == 405
        assert response.json()["code"] == "method_not_allowed"
        assert "GET" in response.json()["detail"]

    def test_form_encoded_body_is_415(self, client):
        response = client.post("/api/echo", data={"replicas": "3"})  # multipart, not JSON
        assert response.status_code == 415
        assert response.json()["code"] == "unsupported_media_type"

    def test_a_bug_answers_the_json_500_without_a_traceback(self, client):
        client.raise_request_exception = False
        response = client.get("/api/broken")
        assert response.status_code == 500
        assert response.json() == {
            "code": "server_error",
            "detail": "An unexpected error occurred; it has been logged.",
        }
        assert b"Traceback" not in response.content
