"""The OpenAPI document describes the account-security API: every endpoint, and the codes a
client must handle (the second step, re-authentication, the staff enrolment policy)."""

from __future__ import annotations

import re

import pytest

SECURITY_OPERATIONS = {
    ("post", "/api/auth/mfa/verify"): {"invalid_second_factor", "mfa_token_invalid", "throttled"},
    ("post", "/api/auth/mfa/options"): {"mfa_token_invalid", "throttled"},
    ("get", "/api/auth/mfa"): set(),
    ("post", "/api/auth/mfa/totp"): {"reauthentication_required", "already_enrolled"},
    ("delete", "/api/auth/mfa/totp"): {
        "reauthentication_required",
        "not_found",
        "invalid_request",
        "invalid_second_factor",
        "throttled",
    },
    ("post", "/api/auth/mfa/totp/confirm"): {"invalid_request"},
    ("post", "/api/auth/mfa/recovery-codes"): {"reauthentication_required"},
    ("post", "/api/auth/mfa/passkeys/options"): {"reauthentication_required"},
    ("post", "/api/auth/mfa/passkeys"): {"reauthentication_required", "invalid_request"},
    ("patch", "/api/auth/mfa/passkeys/{passkey_id}"): {"reauthentication_required", "not_found"},
    ("delete", "/api/auth/mfa/passkeys/{passkey_id}"): {"reauthentication_required", "not_found"},
    ("post", "/api/auth/passkey/options"): {"throttled"},
    ("post", "/api/auth/passkey"): {"invalid_second_factor", "mfa_token_invalid"},
    ("post", "/api/auth/reauthenticate"): {"invalid_second_factor", "mfa_token_invalid", "throttled"},
    ("post", "/api/auth/reauthenticate/options"): {"invalid_request"},
    ("post", "/api/auth/password"): {"invalid_request", "throttled"},
    ("post", "/api/auth/password/reset"): {"throttled"},
    ("post", "/api/auth/password/reset/confirm"): {"invalid_reset_token", "invalid_request"},
    ("post", "/api/auth/admin-session"): {"permission_denied", "mfa_enrolment_required"},
}


def _codes(operation: dict) -> set[str]:
    """The error codes an operation documents (config.openapi.error_responses writes "`code`: ...")."""
    text = " ".join(response.get("description", "") for response in operation["responses"].values())
    return set(re.findall(r"`([a-z_]+)`:", text))


@pytest.mark.parametrize(("method", "path"), sorted(SECURITY_OPERATIONS))
def test_every_security_endpoint_is_documented_with_its_error_codes(openapi_document, method, path):
    operation = openapi_document["paths"][path][method]
    assert SECURITY_OPERATIONS[(method, path)] <= _codes(operation)


def test_the_sign_in_answer_may_be_the_second_step(openapi_document):
    schemas = openapi_document["components"]["schemas"]
    login = openapi_document["paths"]["/api/auth/login"]["post"]["responses"]["200"]["content"][
        "application/json"
    ]
    assert login["schema"]["$ref"].endswith("/SignInResponse")
    assert set(schemas["MfaChallenge"]["properties"]) == {"mfaRequired", "methods", "mfaToken", "deviceToken"}


@pytest.mark.parametrize(
    ("method", "path", "listed"),
    [
        ("get", "/api/clients", True),  # refused until a staff account has a second factor
        ("get", "/api/auth/permissions", True),
        ("get", "/api/auth/validate", True),
        ("get", "/api/auth/me", False),  # allowed before: the app must know who signed in
        ("get", "/api/auth/sessions", False),
        ("post", "/api/auth/mfa/totp", False),  # setting one up is the way out
    ],
)
def test_the_enrolment_policy_code_is_listed_where_it_applies(openapi_document, method, path, listed):
    assert ("mfa_enrolment_required" in _codes(openapi_document["paths"][path][method])) is listed


def test_removing_the_app_declares_the_code_it_takes(openapi_document):
    operation = openapi_document["paths"]["/api/auth/mfa/totp"]["delete"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/CodeInputRequest")  # {"code"}
