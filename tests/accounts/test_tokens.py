"""Token claims and the attacks the decoder must refuse."""

import base64
import hashlib
import hmac
import json

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from rest_framework.test import APIClient

from accounts.models import Session
from accounts.tokens import key_ring
from tests.helpers import me
from tests.helpers import token_parts as split


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict, payload: dict, sign) -> str:
    signing_input = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(payload).encode())}"
    return f"{signing_input}.{b64url(sign(signing_input.encode()))}"


@pytest.fixture
def tokens(bearer_client, user):
    return bearer_client(user).tokens


def test_access_token_carries_the_contract_claims_and_a_kid(tokens, user):
    header, claims = split(tokens["accessToken"])
    assert header["alg"] == "RS256" and header["kid"] == key_ring().signing.kid
    assert set(claims) >= {"iss", "sub", "email", "scope", "sid", "jti", "token_type", "iat", "exp"}
    assert claims["iss"] == "qdrant-portal" and claims["sub"] == str(user.pk)
    assert claims["token_type"] == "access" and claims["sid"] == str(Session.objects.get().pk)
    assert claims["exp"] - claims["iat"] == 15 * 60
    _, refresh_claims = split(tokens["refreshToken"])
    assert refresh_claims["token_type"] == "refresh" and refresh_claims["sid"] == claims["sid"]


def test_the_scope_claim_is_star_for_operators(bearer_client, user_factory):
    operator = user_factory(is_staff=True, is_operator=True)
    assert split(bearer_client(operator).tokens["accessToken"])[1]["scope"] == "*"


@pytest.mark.parametrize("header_name", ["HTTP_AUTHORIZATION", "HTTP_X_AUTH_TOKEN"])
def test_access_token_is_accepted_from_either_header(tokens, header_name):
    value = tokens["accessToken"] if header_name == "HTTP_X_AUTH_TOKEN" else f"Bearer {tokens['accessToken']}"
    assert APIClient().get("/api/auth/me", **{header_name: value}).status_code == 200


def test_a_genuine_token_passes_where_the_forgeries_below_fail(tokens):
    assert me(tokens["accessToken"]).status_code == 200


def test_alg_none_is_refused(tokens):
    header, claims = split(tokens["accessToken"])
    token = forge({**header, "alg": "none"}, claims, lambda _: b"")
    assert me(token).json()["code"] == "token_not_valid"
    assert me(token.rsplit(".", 1)[0] + ".").json()["code"] == "token_not_valid"


def test_hs256_signed_with_the_public_key_is_refused(tokens):
    header, claims = split(tokens["accessToken"])
    public_pem = key_ring().signing.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = forge(
        {**header, "alg": "HS256"}, claims, lambda data: hmac.new(public_pem, data, hashlib.sha256).digest()
    )
    assert me(token).json()["code"] == "token_not_valid"


def test_a_tampered_payload_is_refused(tokens):
    header, payload, signature = tokens["accessToken"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scope"] = "*"
    tampered = f"{header}.{b64url(json.dumps(claims).encode())}.{signature}"
    assert me(tampered).json()["code"] == "token_not_valid"


@pytest.mark.parametrize("kid", ["unknown-kid", None])
def test_an_unknown_or_missing_kid_is_refused(tokens, kid):
    header, claims = split(tokens["accessToken"])
    header = {k: v for k, v in header.items() if k != "kid"} | ({"kid": kid} if kid else {})
    private = key_ring().signing.private_key
    token = jwt.encode(claims, private, algorithm="RS256", headers=header)
    assert me(token).json()["code"] == "token_not_valid"


def test_a_token_signed_by_a_key_outside_the_ring_is_refused(tokens):
    from cryptography.hazmat.primitives.asymmetric import rsa

    header, claims = split(tokens["accessToken"])
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": header["kid"]})
    assert me(token).json()["code"] == "token_not_valid"


def test_a_refresh_token_is_not_an_access_token(tokens):
    assert me(tokens["refreshToken"]).json()["code"] == "token_not_valid"
    validate = APIClient().get("/api/auth/validate", HTTP_AUTHORIZATION=f"Bearer {tokens['refreshToken']}")
    assert validate.json()["code"] == "token_not_valid"


def test_a_token_from_another_issuer_is_refused(tokens, settings):
    token = tokens["accessToken"]
    settings.JWT_ISSUER = "someone-else"
    assert me(token).json()["code"] == "token_not_valid"


def test_issued_tokens_carry_the_configured_audience(bearer_client, user, settings):
    settings.JWT_AUDIENCE = "portal-under-test"
    tokens = bearer_client(user).tokens
    assert split(tokens["accessToken"])[1]["aud"] == "portal-under-test"
    # A refresh token has an audience of its own: a service checking only signature, issuer,
    # audience and expiry (not token_type) refuses it (RFC 8725 section 2.8).
    assert split(tokens["refreshToken"])[1]["aud"] == "portal-under-test/refresh"
    assert me(tokens["accessToken"]).status_code == 200


def test_an_access_token_with_the_refresh_audience_is_refused(tokens, settings):
    _, claims = split(tokens["accessToken"])
    token = key_ring().backend.encode(claims | {"aud": f"{settings.JWT_AUDIENCE}/refresh"})
    assert me(token).json()["code"] == "token_not_valid"
    validate = APIClient().get("/api/auth/validate", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert (validate.status_code, validate.json()["code"]) == (403, "token_not_valid")


def test_a_refresh_token_issued_before_refresh_had_its_own_audience_still_refreshes(tokens, settings):
    """Sessions signed in before the change are not ended by it; their next token has the new audience."""
    _, claims = split(tokens["refreshToken"])
    legacy = key_ring().backend.encode(claims | {"aud": settings.JWT_AUDIENCE})  # the session's current jti
    refreshed = APIClient().post("/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {legacy}")
    assert refreshed.status_code == 200, refreshed.content
    assert split(refreshed.json()["refreshToken"])[1]["aud"] == f"{settings.JWT_AUDIENCE}/refresh"


@pytest.mark.parametrize("audience", ["another-service", ["another-service"], None])
def test_a_token_signed_by_the_portal_for_another_audience_is_refused(tokens, audience):
    """RFC 8725 section 3.9: a genuine signature over a token meant for someone else is not enough."""
    backend = key_ring().backend
    header, claims = split(tokens["accessToken"])
    claims = {k: v for k, v in claims.items() if k != "aud"} | ({"aud": audience} if audience else {})
    token = backend.encode(claims)
    assert split(token)[0]["kid"] == header["kid"]  # the portal's own key signed it
    assert me(token).json()["code"] == "token_not_valid"
    validate = APIClient().get("/api/auth/validate", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert (validate.status_code, validate.json()["code"]) == (403, "token_not_valid")

    _, refresh_claims = split(tokens["refreshToken"])
    refresh = backend.encode({k: v for k, v in refresh_claims.items() if k != "aud"} | {"aud": "elsewhere"})
    refused = APIClient().post("/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {refresh}")
    assert (refused.status_code, refused.json()["code"]) == (403, "token_not_valid")


@pytest.mark.parametrize("garbage", ["garbage", "a.b.c", "", "Bearer"])
def test_garbage_tokens_are_403_never_500(db, garbage):
    response = APIClient().get("/api/auth/me", HTTP_AUTHORIZATION=f"Bearer {garbage}")
    assert response.status_code == 403
    assert response.json()["code"] in {"token_not_valid", "not_authenticated"}


def test_hs256_is_available_by_configuration(api_client, user, settings):
    settings.JWT_ALGORITHM, settings.JWT_SECRET = "HS256", "s" * 48
    from tests.conftest import login

    body = login(api_client, user, tokenDelivery="body").json()
    header, _ = split(body["accessToken"])
    assert header["alg"] == "HS256" and header["kid"].startswith("hs-")
    assert me(body["accessToken"]).status_code == 200
    assert APIClient().get("/.well-known/jwks.json").json() == {"keys": []}


def test_eddsa_is_available_by_configuration(api_client, user, settings, tmp_path):
    settings.JWT_ALGORITHM, settings.JWT_PRIVATE_KEYS, settings.JWT_KEYS_DIR = "EdDSA", "", tmp_path
    settings.DEBUG = True  # development default: a key is generated on first use
    from tests.conftest import login

    body = login(api_client, user, tokenDelivery="body").json()
    assert split(body["accessToken"])[0]["alg"] == "EdDSA"
    assert me(body["accessToken"]).status_code == 200
    assert [k["kty"] for k in APIClient().get("/.well-known/jwks.json").json()["keys"]] == ["OKP"]


@pytest.mark.parametrize(("ahead", "accepted"), [(2, True), (60, False)])
def test_a_token_from_a_replica_whose_clock_runs_a_little_ahead_is_accepted(tokens, ahead, accepted):
    """Another replica minted it a moment "in the future": a few seconds are the clocks' skew,
    a minute is not."""
    claims = split(tokens["accessToken"])[1]
    minted = key_ring().backend.encode(claims | {"iat": claims["iat"] + ahead, "exp": claims["exp"] + ahead})
    response = me(minted)
    assert (response.status_code == 200) is accepted
    if not accepted:
        assert response.json()["code"] == "token_not_valid"
