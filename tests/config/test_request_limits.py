"""Hostile bodies get a clear 4xx, never a 500 or a 503: deep nesting, oversize, not JSON at all,
not Unicode text, NUL characters, a key sent twice."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings

NESTED = "[" * 10_000 + "]" * 10_000
CLUSTER = "/api/clients/client1/clusters/main"
# Every endpoint that reads a JSON body (the others ignore what is sent).
JSON_ENDPOINTS = [
    ("post", "/api/auth/login"),
    ("post", "/api/auth/google"),
    ("patch", "/api/clients/client1/clusters/main"),
]


@pytest.fixture
def caller(bearer_client, user1, cluster1, settings):
    settings.GOOGLE_CLIENT_IDS = ["client-id.apps.googleusercontent.com"]
    return bearer_client(user1)


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
@pytest.mark.parametrize("body", [NESTED, '{"a":' * 40 + "1" + "}" * 40], ids=["depth-10000", "depth-40"])
def test_a_deeply_nested_body_is_a_400_on_every_json_endpoint(caller, method, path, body):
    response = getattr(caller, method)(path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json() == {"code": "invalid_request", "detail": "The request body is nested too deeply."}


@pytest.mark.parametrize(("method", "path"), JSON_ENDPOINTS)
def test_an_oversized_body_is_a_413_on_every_json_endpoint(caller, method, path):
    body = '{"email": "' + "a" * (django_settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1) + '"}'
    response = getattr(caller, method)(path, body, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (413, "request_too_large")


def test_a_six_megabyte_login_is_413_not_a_sign_in_outage(api_client, db):
    body = '{"email": "a@example.com", "password": "' + "A" * 6_000_000 + '"}'
    response = api_client.post("/api/auth/login", body, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (413, "request_too_large")


def test_nesting_within_the_bound_is_judged_on_its_content(caller):
    response = caller.patch("/api/clients/client1/clusters/main", {"replicas": [[[3]]]}, format="json")
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["replicas"]


def _json_operations() -> list[tuple[str, str]]:
    """Every operation of the API's OpenAPI document that takes a JSON body."""
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        (method, path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if "application/json" in operation.get("requestBody", {}).get("content", {})
    )


NOT_TEXT = "The request body holds a lone surrogate escape (such as \\ud800), which is not Unicode text."


@pytest.mark.parametrize(
    "body",
    [
        '{"email": "a@example.com", "password": "cGFzcw==", "tokenDelivery": "\\ud800"}',
        '{"a\\udfffb": 1}',  # in a key: echoed by "unknown field" errors
        '{"clients": {"x": ["\\udc00"]}}',
    ],
    ids=["value", "key", "nested"],
)
def test_a_lone_surrogate_is_a_400_not_a_500(caller, body):
    # Valid JSON that decodes to a string UTF-8 cannot encode: echoed in an error or stored, a 500.
    response = caller.post("/api/auth/login", body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert response.json() == {"code": "invalid_request", "detail": NOT_TEXT}


NUL = "The request body holds a NUL character (\\u0000), which no field takes."


@pytest.mark.parametrize("repeat", [7])
def test_a_nul_in_a_sign_in_is_a_400_however_often_it_is_sent(api_client, db, repeat):
    """Refused sign-ins are counted and recorded per account: a NUL must never get that far
    (PostgreSQL cannot store it: a 500 once the account limit wrote to the audit log)."""
    body = '{"email": "z\\u0000q@example.com", "password": "eA=="}'
    answers = [
        api_client.post("/api/auth/login", body, content_type="application/json") for _ in range(repeat)
    ]
    assert [(a.status_code, a.json()["detail"]) for a in answers] == [(400, NUL)] * repeat


def test_a_paired_surrogate_escape_is_ordinary_text(api_client, db):
    body = '{"email": "\\ud83d\\ude00@example.com", "password": "cGFzcw=="}'  # an emoji, escaped
    response = api_client.post("/api/auth/login", body, content_type="application/json")
    assert response.status_code in (400, 401)
    assert response.json()["detail"] != NOT_TEXT


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        (NESTED, "The request body is nested too deeply."),
        ('{"\\ud800": ["\\ud800"]}', NOT_TEXT),
        ('{"name": ["a\\u0000b"]}', NUL),
        ('{"a": 1, "a": 1}', 'The request body repeats the key "a": send each key once.'),
    ],
    ids=["nested", "lone-surrogate", "nul", "repeated-key"],
)
def test_every_operation_that_takes_json_refuses_what_no_field_takes_with_a_400(
    bearer_client, user_factory, cluster1, settings, body, answer
):
    from clusters.models import Grant
    from clusters.services import grant_set

    settings.GOOGLE_CLIENT_IDS = ["client-id.apps.googleusercontent.com"]  # Google sign-in on

    admin = user_factory(email="admin1@example.com")  # may do everything on client1
    grant_set(user=admin, client=cluster1.client, role=Grant.Role.ADMIN)
    caller = bearer_client(admin)
    params = {"client": "client1", "cluster": "main", "user_id": str(admin.pk), "passkey_id": "1"}
    operations = _json_operations()
    assert len(operations) >= 20  # the document lists them all, so new ones are covered as they come

    answers = {}
    for method, path in operations:
        url = path.format(**params)
        response = getattr(caller, method)(url, body, content_type="application/json")
        answers[f"{method.upper()} {path}"] = (response.status_code, response.json().get("detail"))

    assert {operation: got for operation, got in answers.items() if got != (400, answer)} == {}


@pytest.mark.parametrize("debug", [False, True])  # DEBUG is `make run`'s mode: its debug page failed on these
@pytest.mark.parametrize("path", ["/api/auth/me", "/api/auth/login", "/api/clients"])
def test_a_query_string_of_too_many_fields_is_a_json_400(client, db, settings, debug, path):
    settings.DEBUG = debug
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example.com"]
    fields = "&".join(f"a{number}=1" for number in range(django_settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))

    response = client.get(f"{path}?{fields}", HTTP_ORIGIN="https://app.example.com")

    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
    # With the headers of every other answer: a browser app elsewhere reads it, and nothing sniffs it.
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_a_repeated_key_changes_nothing(caller, cluster1):
    """A proxy or a log that keeps the first of two values must not see another request than ours."""
    before = cluster1.replicas
    response = caller.patch(CLUSTER, '{"replicas": 1, "replicas": 7}', content_type="application/json")

    assert (response.status_code, response.json()) == (
        400,
        {
            "code": "invalid_request",
            "detail": 'The request body repeats the key "replicas": send each key once.',
        },
    )
    cluster1.refresh_from_db()
    assert cluster1.replicas == before


@pytest.mark.parametrize(
    ("body", "key"),
    [
        (
            '{"name": "ci", "expiresIn": "1h", "expiresIn": "365d", "clients": {"client1": ["view"]}}',
            "expiresIn",
        ),
        (
            '{"name": "ci", "clients": {"client1": ["view"]}, "clients": {"client1": ["view", "credentials"]}}',
            "clients",
        ),
        ('{"name": "ci", "clients": {"client1": ["view"], "client1": ["view", "credentials"]}}', "client1"),
    ],
    ids=["expiresIn", "clients", "nested"],
)
def test_a_token_asked_for_with_a_repeated_key_is_not_minted(caller, body, key):
    from accounts.models import PersonalAccessToken

    response = caller.post("/api/auth/tokens", body, content_type="application/json")

    assert (response.status_code, response.json()["detail"]) == (
        400,
        f'The request body repeats the key "{key}": send each key once.',
    )
    assert not PersonalAccessToken.objects.exists()


def test_a_repeated_key_is_named_within_bounds(caller):
    key = "k" * 100_000
    response = caller.patch(CLUSTER, f'{{"{key}": 1, "{key}": 2}}', content_type="application/json")

    assert (response.status_code, response.json()["code"]) == (400, "invalid_request")
    assert len(response.content) < 1_000
    assert "kkk…kkk" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "answer"),
    [('{"\\ud800": 1, "\\ud800": 2}', NOT_TEXT), ('{"a\\u0000": 1, "a\\u0000": 2}', NUL)],
    ids=["lone-surrogate", "nul"],
)
def test_a_repeated_key_that_no_field_takes_is_refused_for_what_it_holds(caller, body, answer):
    response = caller.patch(CLUSTER, body, content_type="application/json")
    assert (response.status_code, response.json()["detail"]) == (400, answer)


def test_keys_that_only_look_alike_are_not_repeats(caller):
    response = caller.patch(CLUSTER, '{"replicas": 3, "Replicas": 3}', content_type="application/json")
    assert (response.status_code, response.json()["fields"]) == (400, {"Replicas": ["Unknown field."]})
