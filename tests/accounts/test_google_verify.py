"""google_id_token_verify with the real google-auth code: only the certificate download is faked."""

from __future__ import annotations

import base64
import json
import time

import pytest
import time_machine
from google.auth import exceptions as google_exceptions

from accounts.google import (
    GOOGLE_CERTS_URL,
    CachingRequest,
    GoogleIdentity,
    google_id_token_verify,
    google_request,
)
from config.errors import PortalError
from tests.accounts.google_tokens import CLIENT_ID, KID, OTHER_CLIENT_ID, FakeGoogle, id_token


@pytest.fixture
def transport(google: FakeGoogle) -> CachingRequest:
    return CachingRequest(google)


@pytest.fixture(autouse=True)
def _google_configured(settings):
    settings.GOOGLE_CLIENT_IDS = [CLIENT_ID]
    settings.GOOGLE_ALLOWED_DOMAINS = []


def verify_error(token, transport) -> PortalError:
    with pytest.raises(PortalError) as caught:
        google_id_token_verify(token=token, request=transport)
    return caught.value


def test_a_valid_token_names_the_google_account(google_key, transport):
    identity = google_id_token_verify(token=id_token(google_key), request=transport)

    assert identity == GoogleIdentity(
        sub="110169484474386276334",
        email="alice@example.com",
        email_verified=True,
        name="Alice Example",
        hosted_domain="example.com",
    )


def test_any_configured_client_id_is_an_accepted_audience(settings, google_key, transport):
    settings.GOOGLE_CLIENT_IDS = [OTHER_CLIENT_ID, CLIENT_ID]

    identity = google_id_token_verify(token=id_token(google_key), request=transport)

    assert identity.sub == "110169484474386276334"


def test_a_consumer_account_has_no_hosted_domain_and_may_omit_azp_and_name(google_key, transport):
    token = id_token(google_key, email="bob@gmail.com", hd=None, azp=None, name=None)

    identity = google_id_token_verify(token=token, request=transport)

    assert identity.hosted_domain is None
    assert identity.name == ""
    assert identity.email_authoritative


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"aud": OTHER_CLIENT_ID, "azp": OTHER_CLIENT_ID}, id="wrong audience"),
        pytest.param({"iss": "https://evil.example.com"}, id="wrong issuer"),
        pytest.param({"iss": None}, id="no issuer"),
        pytest.param({"azp": OTHER_CLIENT_ID}, id="authorized party mismatch"),
        pytest.param({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, id="expired"),
        pytest.param({"iat": None}, id="no iat"),
        pytest.param({"exp": "tomorrow"}, id="non-numeric exp"),
        pytest.param({"sub": None}, id="no subject"),
        pytest.param({"email": None}, id="no email"),
    ],
)
def test_a_token_that_does_not_check_out_is_refused(google_key, transport, overrides):
    error = verify_error(id_token(google_key, **overrides), transport)

    assert (error.status_code, error.code) == (401, "invalid_google_token")


def test_a_token_issued_in_the_future_is_refused(google_key, transport):
    # Made here, not in the parameters above: those are computed when the suite is collected,
    # and on a slow run ten minutes may pass before this test runs.
    error = verify_error(id_token(google_key, iat=int(time.time()) + 600), transport)

    assert (error.status_code, error.code) == (401, "invalid_google_token")


def test_an_expired_token_is_refused_once_the_clock_passes_exp(google_key, transport):
    token = id_token(google_key)
    with time_machine.travel(time.time() + 3600 + 60, tick=False):
        error = verify_error(token, transport)

    assert (error.status_code, error.code) == (401, "invalid_google_token")


def test_a_token_signed_with_another_key_is_refused(other_key, transport):
    error = verify_error(id_token(other_key), transport)

    assert (error.status_code, error.code) == (401, "invalid_google_token")


def test_a_token_with_an_unknown_key_id_is_refused(google_key, transport):
    error = verify_error(id_token(google_key, kid="rotated-away"), transport)

    assert (error.status_code, error.code) == (401, "invalid_google_token")


@pytest.mark.parametrize("alg", ["none", "HS256", "ES256"])
def test_a_token_with_another_algorithm_is_refused(google_key, transport, alg):
    header, payload, signature = id_token(google_key).split(".")
    forged_header = (
        base64.urlsafe_b64encode(json.dumps({"alg": alg, "kid": KID}).encode()).decode().rstrip("=")
    )

    error = verify_error(f"{forged_header}.{payload}.{signature}", transport)

    assert (error.status_code, error.code) == (401, "invalid_google_token")


@pytest.mark.parametrize("email_verified", [False, "false", None])
def test_an_unverified_email_is_refused(google_key, transport, email_verified):
    error = verify_error(id_token(google_key, email_verified=email_verified), transport)

    assert (error.status_code, error.code) == (403, "email_not_verified")


@pytest.mark.parametrize(
    "credential",
    [
        pytest.param("", id="empty"),
        pytest.param("   ", id="blank"),
        pytest.param(None, id="null"),
        pytest.param(12345, id="number"),
        pytest.param("not-a-jwt", id="garbage"),
        pytest.param("a.b.c", id="three garbage segments"),
        pytest.param("eyJhbGciOiJSUzI1NiJ9.W10.c2ln", id="payload not an object"),
        pytest.param("é.é.é", id="non-ascii"),
        pytest.param("a" * 10_000, id="huge"),
    ],
)
def test_a_credential_that_is_not_a_jwt_is_a_bad_request_without_a_download(google, transport, credential):
    error = verify_error(credential, transport)

    assert (error.status_code, error.code) == (400, "invalid_request")
    assert list(error.fields) == ["credential"]
    assert google.calls == []


def test_sign_in_is_not_found_when_no_client_id_is_configured(settings, google_key, google, transport):
    settings.GOOGLE_CLIENT_IDS = []

    error = verify_error(id_token(google_key), transport)

    assert (error.status_code, error.code) == (404, "not_found")
    assert google.calls == []


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param({"error": google_exceptions.TransportError("connection refused")}, id="network"),
        pytest.param({"status": 500}, id="http 500"),
        pytest.param({"status": 404}, id="http 404"),
        pytest.param({"body": b"<html>captive portal</html>"}, id="not json"),
        pytest.param({"body": b"{}"}, id="empty set"),
    ],
)
def test_certificates_that_cannot_be_fetched_make_google_unavailable(google_key, google, transport, failure):
    for attribute, value in failure.items():
        setattr(google, attribute, value)

    error = verify_error(id_token(google_key), transport)

    assert (error.status_code, error.code) == (503, "google_unavailable")


def test_a_failed_download_is_not_cached(google_key, google, transport):
    google.status = 500
    verify_error(id_token(google_key), transport)
    google.status = 200

    google_id_token_verify(token=id_token(google_key), request=transport)

    assert len(google.calls) == 2


def test_certificates_are_downloaded_once_for_many_sign_ins(google_key, google, transport):
    for _ in range(3):
        google_id_token_verify(token=id_token(google_key), request=transport)

    assert len(google.calls) == 1


def test_the_cache_is_shared_by_transports(google_key, google):
    """Another worker (another transport object) reuses what the first downloaded."""
    google_id_token_verify(token=id_token(google_key), request=CachingRequest(google))
    google_id_token_verify(token=id_token(google_key), request=CachingRequest(google))

    assert len(google.calls) == 1


@pytest.mark.usefixtures("in_process_cache")
def test_certificates_are_downloaded_again_once_max_age_has_passed(google_key, google, transport):
    google.cache_control = "public, max-age=600, must-revalidate, no-transform"
    with time_machine.travel(time.time(), tick=False) as traveller:
        google_id_token_verify(token=id_token(google_key), request=transport)
        traveller.shift(599)
        google_id_token_verify(token=id_token(google_key), request=transport)
        assert len(google.calls) == 1

        traveller.shift(2)
        google_id_token_verify(token=id_token(google_key), request=transport)
        assert len(google.calls) == 2


@pytest.mark.usefixtures("in_process_cache")
@pytest.mark.parametrize(
    ("cache_control", "cached_for"),
    [
        ("public, max-age=600", 600),
        ("public", 3600),
        ("", 3600),
        ("public, max-age=999999", 24 * 3600),
    ],
)
def test_cache_lifetime_follows_max_age_with_a_default_and_a_cap(
    google_key, google, transport, cache_control, cached_for
):
    google.cache_control = cache_control
    with time_machine.travel(time.time(), tick=False) as traveller:
        google_id_token_verify(token=id_token(google_key), request=transport)
        traveller.shift(cached_for - 1)
        google_id_token_verify(token=id_token(google_key), request=transport)
        assert len(google.calls) == 1
        traveller.shift(2)
        google_id_token_verify(token=id_token(google_key), request=transport)
        assert len(google.calls) == 2


@pytest.mark.parametrize("cache_control", ["no-store", "no-cache", "max-age=0"])
def test_certificates_google_marks_uncacheable_are_not_cached(google_key, google, transport, cache_control):
    google.cache_control = cache_control
    google_id_token_verify(token=id_token(google_key), request=transport)
    google_id_token_verify(token=id_token(google_key), request=transport)

    assert len(google.calls) == 2


def test_a_broken_cache_costs_a_download_not_a_sign_in(monkeypatch, google_key, google, transport):
    from django.core.cache import cache

    def unreachable(*args, **kwargs):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(cache, "get", unreachable)
    monkeypatch.setattr(cache, "set", unreachable)

    identity = google_id_token_verify(token=id_token(google_key), request=transport)

    assert identity.email == "alice@example.com"
    assert len(google.calls) == 1


def test_certificates_are_fetched_from_google_with_a_short_timeout(google_key, google, transport):
    google_id_token_verify(token=id_token(google_key), request=transport)

    assert google.calls == [GOOGLE_CERTS_URL]
    assert google.timeouts[0] is not None and google.timeouts[0] <= 30  # not google-auth's 120 s


def test_other_requests_pass_through_uncached(google, transport):
    other_url = "https://www.googleapis.com/oauth2/v3/certs"

    transport(other_url)
    transport(other_url)
    transport(GOOGLE_CERTS_URL, method="POST")

    assert google.calls == [other_url, other_url, GOOGLE_CERTS_URL]


def test_google_request_is_one_caching_transport():
    assert isinstance(google_request(), CachingRequest)
    assert google_request() is google_request()


@pytest.mark.parametrize(
    ("email", "hd", "allowed", "expected"),
    [
        ("alice@example.com", "example.com", ["example.com"], True),
        ("alice@example.com", "example.com", ["EXAMPLE.com"], True),
        ("alice@example.com", "example.com", ["other.com"], False),
        ("alice@example.com", None, ["example.com"], False),  # consumer account, company address
        ("alice@gmail.com", None, ["gmail.com"], False),
        ("alice@alias.example", "example.com", ["example.com"], False),
    ],
)
def test_provisioning_needs_a_workspace_account_of_an_allowed_domain(email, hd, allowed, expected):
    identity = GoogleIdentity(sub="1", email=email, email_verified=True, name="", hosted_domain=hd)

    assert identity.domain_allowed(allowed) is expected


@pytest.mark.parametrize(
    ("email", "hd", "expected"),
    [
        ("alice@gmail.com", None, True),
        ("alice@example.com", "example.com", True),
        ("alice@example.com", None, False),
    ],
)
def test_google_is_authoritative_only_for_gmail_and_workspace_addresses(email, hd, expected):
    identity = GoogleIdentity(sub="1", email=email, email_verified=True, name="", hosted_domain=hd)

    assert identity.email_authoritative is expected
