"""Every error under /api/ has the contract's shape: {"code", "detail"} (+ "fields")."""

import pytest

from config import errors, exceptions


def test_unknown_api_path_is_a_json_404(client, db):
    response = client.get("/api/no-such-thing")
    assert response.status_code == 404
    assert response.json() == {"code": "not_found", "detail": "Not found."}


def test_unknown_well_known_path_is_a_json_404(client, db):
    response = client.get("/.well-known/nothing-here")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize("debug", [True, False])
@pytest.mark.parametrize("path", ["/api", "/.well-known"])
def test_the_bare_prefixes_are_a_json_404_to_every_method(client, db, settings, path, debug):
    # Not a redirect to the slashed path (a write would lose its body there) nor, with DEBUG on,
    # CommonMiddleware's "URL doesn't end in a slash" 500.
    settings.DEBUG = debug
    for method in ("get", "post", "put", "patch", "delete"):
        response = getattr(client, method)(path, data={}, content_type="application/json")
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), method


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


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("delete", "/api/auth/sessions/not-a-session"),
        ("post", "/api/auth/login/"),  # a trailing slash
        ("put", "/api/no-such-thing"),
        ("patch", "/.well-known/nothing-here"),
    ],
)
@pytest.mark.parametrize("with_cookies", [True, False], ids=["browser-cookies", "no-cookies"])
def test_an_unsafe_request_to_an_unknown_route_is_a_404_with_or_without_cookies(
    client, db, method, path, with_cookies
):
    if with_cookies:
        client.cookies["csrftoken"] = "x" * 32  # a browser's cookies, without the header
    response = getattr(client, method)(path, HTTP_AUTHORIZATION="Bearer whatever")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_an_unknown_session_id_in_upper_case_is_a_404_not_a_csrf_failure(bearer_client, user):
    response = bearer_client(user).delete("/api/auth/sessions/0F8FAD5B-D9CB-469F-A165-70867728950E")
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_a_session_id_in_upper_case_names_the_same_session(bearer_client, user):
    from accounts.models import Session

    client = bearer_client(user)  # signs in first: the oldest session
    other = bearer_client(user)
    target = Session.objects.order_by("created_at").first()
    response = other.delete(f"/api/auth/sessions/{str(target.pk).upper()}")
    assert response.status_code == 204
    assert client.get("/api/auth/me").json()["code"] == "token_not_valid"


@pytest.mark.parametrize(
    "name", ["DATABASE_URL", "REDIS_URL", "GITOPS_REMOTE_URL", "GITOPS_REMOTE_TOKEN", "SENTRY_DSN"]
)
def test_the_debug_page_never_shows_connection_urls_or_tokens(rf, settings, name):
    from django.views.debug import get_default_exception_reporter_filter

    settings.DEBUG = True
    request = rf.get("/boom", **{name: "postgres://portal:hunter2@db:5432/portal"})
    meta = get_default_exception_reporter_filter().get_safe_request_meta(request)
    assert "hunter2" not in str(meta[name])


def test_the_rendered_debug_page_hides_the_database_password(rf, settings):
    import sys

    from django.views.debug import technical_500_response

    settings.DEBUG = True
    # The password is built where it is used: the page also shows this test's source and locals.
    request = rf.get("/boom", DATABASE_URL="postgres://portal:" + "hunter" + "2" + "@db:5432/portal")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        page = technical_500_response(request, *sys.exc_info()).content.decode()
    assert "DATABASE_URL" in page and "hunter" + "2" not in page


def test_the_readme_documents_every_error_code_with_its_status():
    import inspect
    import re
    from pathlib import Path

    from config import errors

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"^\| `([a-z_]+)` \| (\d{3}) \|", table, flags=re.MULTILINE))
    raised = {
        error.default_code: str(error.status_code)
        for _, error in inspect.getmembers(errors, inspect.isclass)
        if issubclass(error, errors.PortalError) and error is not errors.PortalError
    }
    assert documented == raised


@pytest.mark.parametrize(
    ("retry_after", "said"),
    [(80, "try again in 80 seconds."), (90, "try again in 90 seconds."), (91, "try again in 2 minutes."),
     (900, "try again in 15 minutes.")],
)  # fmt: skip
def test_a_throttled_answer_says_the_wait_in_words_once(retry_after, said):
    throttled = errors.Throttled(retry_after=retry_after)
    assert str(throttled.detail) == f"Too many attempts; {said}"
    assert throttled.headers == {"Retry-After": str(retry_after)}


@pytest.mark.parametrize("debug", [True, False])
def test_the_bare_admin_address_is_redirected_for_every_method(client, db, settings, debug):
    settings.DEBUG = debug  # with DEBUG on, CommonMiddleware would answer a POST with a 500
    for method in ("get", "post", "put", "patch", "delete"):
        response = getattr(client, method)("/admin?next=x")
        assert (response.status_code, response["Location"]) == (301, "/admin/?next=x"), method
        # The admin's own addresses without their slash: it redirects them itself (to sign in first).
        assert getattr(client, method)("/admin/clusters/cluster/add").status_code == 302, method


# --- What an error repeats of the request is bounded ----------------------------------------
# Anyone may send a sign-in or a reset request: an answer as large as the request would make the
# portal reflect (and amplify, with many small keys) whatever it is sent.


def test_a_huge_refused_value_is_echoed_cut_in_the_middle(api_client, db):
    body = {"email": "a@example.com", "password": "YQ==", "tokenDelivery": "x" * 1_000_000}
    response = api_client.post("/api/auth/login", body, format="json")

    assert response.status_code == 400
    assert len(response.content) < 1_000
    (message,) = response.json()["fields"]["tokenDelivery"]
    assert message.startswith('"xxx') and "x…x" in message and message.endswith('" is not a valid choice.')
    assert len(message) == errors.ECHO_MAX_CHARS


def test_a_huge_unknown_key_is_named_cut_in_the_middle(api_client, db):
    key = "k" * 500_000 + "tail"
    response = api_client.post("/api/auth/password/reset", {"email": "a@example.com", key: 1}, format="json")

    assert response.status_code == 400
    assert len(response.content) < 1_000
    (name,) = response.json()["fields"]
    assert name.startswith("kkk") and name.endswith("kktail") and "…" in name
    assert len(name) == errors.ECHO_MAX_CHARS


def test_thousands_of_unknown_keys_are_listed_in_part_and_counted(api_client, db):
    body = {"email": "a@example.com"} | {f"k{number:04}": 1 for number in range(5_000)}
    response = api_client.post("/api/auth/password/reset", body, format="json")

    assert response.status_code == 400
    fields = response.json()["fields"]
    listed = [name for name in fields if name != "nonFieldErrors"]
    assert listed == [f"k{number:04}" for number in range(exceptions.ERROR_FIELDS_MAX)]
    assert fields["nonFieldErrors"] == [
        f"Errors in {5_000 - exceptions.ERROR_FIELDS_MAX:,} more fields are not listed."
    ]
    assert len(response.content) < 5_000


def test_errors_of_a_handful_of_fields_are_all_listed(api_client, db):
    body = {"email": "a@example.com"} | {f"k{number}": 1 for number in range(exceptions.ERROR_FIELDS_MAX)}
    fields = api_client.post("/api/auth/password/reset", body, format="json").json()["fields"]
    assert len(fields) == exceptions.ERROR_FIELDS_MAX and "nonFieldErrors" not in fields
