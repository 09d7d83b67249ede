import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from accounts.security_serializers import MfaVerifyInputSerializer, ReauthenticateInputSerializer
from clusters.serializers import ClusterUpdateInputSerializer
from clusters.team_serializers import InvitationSignUpInputSerializer
from tests.conftest import b64


def test_openapi_document_is_valid_openapi_3(client, db):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.")
    validate(document)


def test_docs_page_loads_from_local_assets(client, db):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
    assert b"cdn.jsdelivr.net" not in response.content


def test_the_login_password_is_described_as_base64(client, db):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    password = document["components"]["schemas"]["LoginInputRequest"]["properties"]["password"]
    assert password["format"] == "byte" and "UTF-8" in password["description"]


def test_every_password_the_api_takes_is_described_as_base64(client, db):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    passwords = {
        f"{name}.{field}": spec
        for name, schema in document["components"]["schemas"].items()
        if name.endswith("Request")
        for field, spec in schema.get("properties", {}).items()
        if "password" in field.lower()
    }
    assert len(passwords) >= 5  # login, password change (2), reset, re-authentication, sign-up...
    assert {name: spec.get("format") for name, spec in passwords.items()} == dict.fromkeys(passwords, "byte")


def test_a_cluster_change_describes_the_offered_versions(client, db, settings):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    change = document["paths"]["/api/clients/{client}/clusters/{cluster}"]["patch"]["requestBody"]
    reference = change["content"]["application/json"]["schema"]["$ref"].rpartition("/")[2]
    version = document["components"]["schemas"][reference]["properties"]["version"]
    offered = document["components"]["schemas"][version["allOf"][0]["$ref"].rpartition("/")[2]]
    assert offered["enum"] == settings.QDRANT_VERSIONS and "allowedVersions" in version["description"]


def test_every_error_response_is_documented_with_the_one_error_shape(client, db):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]["$ref"]
                    assert schema.endswith("/Error"), (method, path, status)


def test_revoking_an_invitation_documents_the_conflict_it_answers_not_a_body_error(client, db):
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    revoke = document["paths"]["/api/clients/{client}/invitations/{invitation_id}"]["delete"]["responses"]
    assert "invitation_not_pending" in revoke["409"]["description"]
    assert "400" not in revoke  # it takes no body


def test_the_schema_states_what_the_team_endpoints_really_take_and_answer(client, db):
    schemas = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["components"]
    policy = schemas["schemas"]["SignInPolicyInputRequest"]["properties"]
    assert policy["maxSessionLength"]["minimum"] == 300  # the service refuses less
    state = schemas["schemas"]["Invitation"]["properties"]["state"]
    states = state.get("enum") or schemas["schemas"][state["allOf"][0]["$ref"].rpartition("/")[2]]["enum"]
    assert set(states) == {"pending", "expired", "accepted", "revoked"}


def test_pat_not_allowed_is_documented_exactly_where_a_personal_access_token_is_refused(client, db):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]

    def documents_it(path: str, method: str) -> bool:
        return "pat_not_allowed" in paths[path][method]["responses"].get("403", {}).get("description", "")

    for path, method in [
        ("/api/clients", "get"),
        ("/api/auth/me", "get"),
        ("/api/auth/validate", "get"),
        ("/api/clients/{client}/clusters/{cluster}", "patch"),
    ]:
        assert not documents_it(path, method), f"{method} {path} takes a personal access token"
    for path, method in [("/api/auth/sessions", "get"), ("/api/clients/{client}/members", "get")]:
        assert documents_it(path, method), f"{method} {path} refuses a personal access token"


@pytest.mark.parametrize("accept", ["", "text/html"])
def test_an_accept_header_without_json_is_a_documented_406(client, db, accept):
    """Everywhere but the gateways' check, which answers JSON whatever its client accepts."""
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    undocumented = [
        f"{method.upper()} {path}"
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if "406" not in operation["responses"]
    ]
    assert undocumented == ["GET /api/auth/validate"]
    response = client.get("/api/auth/csrf", HTTP_ACCEPT=accept)
    assert (response.status_code, response.json()["code"]) == (406, "not_acceptable")


@pytest.mark.parametrize("query", ["?format=xml", "?format=api", "?format=json&format=yaml"])
def test_a_format_the_api_does_not_render_is_406_not_a_missing_page(bearer_client, user1, cluster1, query):
    for path in (
        "/api/clients",
        "/api/auth/me",
        "/api/clients/client1/clusters/main",
        "/api/clients/client2/clusters",
    ):
        response = bearer_client(user1).get(path + query)
        assert (response.status_code, response.json()["code"]) == (406, "not_acceptable"), path
    assert bearer_client(user1).get("/api/clients?format=json").status_code == 200


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
@pytest.mark.parametrize(
    "credentials",
    [{"HTTP_AUTHORIZATION": "Bearer not-a-token"}, {"HTTP_COOKIE": "__Host-accessToken=eyJ.e30.x"}],
    ids=["bearer", "cookie"],
)
def test_the_public_docs_open_whatever_stale_token_the_caller_holds(client, db, path, credentials):
    response = client.get(path, **credentials)
    assert response.status_code == 200, response.content[:200]


def _request_schema(document: dict, path: str, method: str) -> dict:
    body = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    return document["components"]["schemas"][body["$ref"].rsplit("/", 1)[1]]


def test_a_patch_body_marks_required_what_the_server_requires(openapi_document, as_admin1, user1):
    """No PATCH here is partial: a client generated from the document must send a member's role."""
    document = openapi_document
    assert _request_schema(document, "/api/clients/{client}/members/{user_id}", "patch")["required"] == [
        "role"
    ]
    assert _request_schema(document, "/api/auth/mfa/passkeys/{passkey_id}", "patch")["required"] == ["name"]
    refused = as_admin1.patch(f"/api/clients/client1/members/{user1.pk}", {}, format="json")
    assert (refused.status_code, list(refused.json()["fields"])) == (400, ["role"])


def test_bodies_that_refuse_unknown_keys_say_so(openapi_document, as_user1, cluster1):
    document = openapi_document
    update = _request_schema(document, "/api/clients/{client}/clusters/{cluster}", "patch")
    assert update["additionalProperties"] is False
    refused = as_user1.patch(
        "/api/clients/client1/clusters/main", {"replicas": 3, "replica": 4}, format="json"
    )
    assert (refused.status_code, refused.json()["fields"]) == (400, {"replica": ["Unknown field."]})
    # The account endpoints too: a misspelt token lifetime is refused, not the default.
    assert _request_schema(document, "/api/auth/login", "post")["additionalProperties"] is False
    assert _request_schema(document, "/api/auth/tokens", "post")["additionalProperties"] is False


def test_every_429_declares_retry_after(openapi_document):
    throttled = [
        (path, method, operation["responses"]["429"])
        for path, operations in openapi_document["paths"].items()
        for method, operation in operations.items()
        if "429" in operation.get("responses", {})
    ]
    assert len(throttled) >= 10  # sign-in, second factors, resets, invitations...
    assert all("Retry-After" in response.get("headers", {}) for _, _, response in throttled)


def test_answers_with_a_fixed_set_of_values_name_it(openapi_document):
    schemas = openapi_document["components"]["schemas"]

    def values(spec: dict) -> list[str]:
        spec = spec.get("items", spec)
        return schemas[spec["$ref"].rsplit("/", 1)[1]]["enum"]

    assert values(schemas["SignInPolicy"]["properties"]["allowedMethods"]) == [
        "password",
        "google",
        "passkey",
    ]
    assert values(schemas["SignInPolicy"]["properties"]["jitRole"]) == ["viewer", "operator"]
    assert "storage_expand" in values(schemas["HistoryEntryOutput"]["properties"]["action"])
    assert {"password", "totp", "webauthn"} <= set(values(schemas["Session"]["properties"]["amr"]))
    assert set(schemas["StorageOutput"]["required"]) >= {"requestedGi", "requestedAt", "requestedBy"}


PASSWORD, ASSERTION = b64("s3cret passphrase"), {"id": "credential", "type": "public-key"}
# Bodies each endpoint is sent: the document must accept exactly those the server accepts.
ALTERNATIVE_BODIES = {
    ("/api/clients/{client}/clusters/{cluster}", "patch", ClusterUpdateInputSerializer): [
        {},
        {"confirm": True},
        {"replicas": 3},
        {"replicas": 3, "storageGi": 20, "confirm": True},
    ],
    ("/api/auth/reauthenticate", "post", ReauthenticateInputSerializer): [
        {},
        {"password": PASSWORD},
        {"code": "123456"},
        {"webauthn": ASSERTION, "token": "options"},
        {"webauthn": ASSERTION},
        {"password": PASSWORD, "token": "options"},
        {"password": PASSWORD, "code": "123456"},
    ],
    ("/api/auth/mfa/verify", "post", MfaVerifyInputSerializer): [
        {"mfaToken": "step"},
        {"mfaToken": "step", "code": "123456"},
        {"mfaToken": "step", "webauthn": ASSERTION},
        {"mfaToken": "step", "code": "123456", "webauthn": ASSERTION},
    ],
    ("/api/invitations/sign-up", "post", InvitationSignUpInputSerializer): [
        {"token": "invitation"},
        {"token": "invitation", "password": PASSWORD},
        {"token": "invitation", "credential": "google-id-token"},
        {"token": "invitation", "password": PASSWORD, "credential": "google-id-token"},
    ],
}


@pytest.mark.parametrize(("path", "method", "serializer"), list(ALTERNATIVE_BODIES))
def test_which_fields_go_together_is_in_the_document_as_the_server_checks_it(
    openapi_document, path, method, serializer
):
    """A client generated from the document refuses the bodies the server refuses for sending
    too few or too many of the alternatives, and sends the ones it accepts."""
    document = openapi_document
    body_schema = document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
    validator = OAS30Validator({"components": document["components"], "allOf": [body_schema]})
    verdicts = []
    for body in ALTERNATIVE_BODIES[(path, method, serializer)]:
        accepted = serializer(data=body).is_valid()
        assert validator.is_valid(body) == accepted, (body, accepted)
        verdicts.append(accepted)
    assert True in verdicts and False in verdicts


def test_the_fresh_token_header_is_documented_where_a_bearer_token_can_get_one(client, db):
    """A header-token client not told of X-Extended-Token keeps using its out-of-date token."""
    document = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    clusters = document["paths"]["/api/clients"]["get"]["responses"]["200"]
    login = document["paths"]["/api/auth/login"]["post"]["responses"]["200"]

    assert "X-Extended-Token" in clusters["headers"]
    assert "X-Extended-Token" not in login.get("headers", {})  # no token presented there
