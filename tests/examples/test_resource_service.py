"""examples/resource_service: a service of its own that verifies the portal's tokens with its JWKS.

The portal runs under ``live_server``; the example runs as its own process (the way it is
deployed: no Django, nothing of the portal imported), pointed at the portal's
``/.well-known/jwks.json``. Tokens come from real sign-ins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.conf import settings as django_settings
from django.core.management import call_command

from accounts.access_tokens import access_token_secret_new
from accounts.tokens import key_ring
from accounts.views import JwksView
from tests.conftest import b64
from tests.helpers import free_port, token_parts

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SERVICE = PROJECT_ROOT / "examples" / "resource_service" / "service.py"
PASSWORD = "correct horse battery"  # tests/conftest.py's user_factory default

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class Service:
    url: str
    process: subprocess.Popen
    log: Path

    def things(self, client: str, token: str | None = None, *, header: str = "bearer") -> requests.Response:
        headers = {}
        if token is not None:
            headers = {"Authorization": f"Bearer {token}"} if header == "bearer" else {"X-Auth-Token": token}
        return requests.get(f"{self.url}/clients/{client}/things", headers=headers, timeout=10)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def service_start(*, portal_url: str, log_dir: Path, **env: str) -> Service:
    """The example as its own process, with only PATH and its own variables in the environment."""
    port = free_port()
    environment = {
        "PATH": os.environ.get("PATH", ""),
        "PORTAL_URL": portal_url,
        "JWT_ISSUER": django_settings.JWT_ISSUER,
        "JWT_AUDIENCE": django_settings.JWT_AUDIENCE,
        "PORT": str(port),
        **env,
    }
    log = log_dir / f"resource-service-{port}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(SERVICE)],
            env=environment,
            cwd=log_dir,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the resource service exited with {process.returncode}:\n{log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return Service(f"http://127.0.0.1:{port}", process, log)
        time.sleep(0.02)
    process.kill()
    pytest.fail(f"the resource service did not listen on {port}:\n{log.read_text()}")


@pytest.fixture(scope="module")
def service(live_server, tmp_path_factory) -> Iterator[Service]:
    """The example with its default configuration, for the tests that keep the portal's keys."""
    running = service_start(portal_url=live_server.url, log_dir=tmp_path_factory.mktemp("service"))
    yield running
    running.stop()


@pytest.fixture
def start_service(live_server, tmp_path) -> Iterator[Callable[..., Service]]:
    """``start_service(NAME=value, ...)``: the example with this configuration, for one test."""
    started: list[Service] = []

    def start(**env: str) -> Service:
        env.setdefault("PORTAL_URL", live_server.url)
        started.append(service_start(portal_url=env.pop("PORTAL_URL"), log_dir=tmp_path, **env))
        return started[-1]

    yield start
    for running in started:
        running.stop()


@pytest.fixture
def jwks_fetches(monkeypatch) -> list[float]:
    """When the portal served its JWKS during the test (the live server runs in this process)."""
    fetches: list[float] = []
    served = JwksView.get

    def counted(view, request):
        fetches.append(time.monotonic())
        return served(view, request)

    monkeypatch.setattr(JwksView, "get", counted)
    return fetches


@pytest.fixture
def keys_dir(settings, tmp_path, monkeypatch) -> Path:
    """The portal's keys in a JWT_KEYS_DIR managed by `jwt_keys`, re-read at every request."""
    monkeypatch.setattr("accounts.tokens.KEYS_DIR_RECHECK_SECONDS", 0)
    settings.JWT_PRIVATE_KEYS = ""
    settings.JWT_KEYS_DIR = tmp_path / "keys"
    call_command("jwt_keys", "rotate", stdout=StringIO())
    return settings.JWT_KEYS_DIR


def sign_in(live_server, user) -> dict:
    """A password login at the portal, tokens delivered in the body (as a CLI or service does)."""
    body = {"email": user.email, "password": b64(PASSWORD), "tokenDelivery": "body"}
    response = requests.post(f"{live_server.url}/api/auth/login", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["code"] == code and response.json()["detail"]


# --- scope ----------------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["bearer", "x-auth-token"])
def test_a_user_reaches_only_the_clients_in_the_tokens_scope(service, live_server, user1, client2, header):
    token = sign_in(live_server, user1)["accessToken"]

    allowed = service.things("client1", token, header=header)
    refused = service.things("client2", token, header=header)

    assert allowed.status_code == 200
    assert allowed.json() == {
        "client": "client1",
        "userId": str(user1.pk),
        "things": ["client1-thing-1", "client1-thing-2"],
    }
    assert_error(refused, 403, "permission_denied")
    assert refused.headers["WWW-Authenticate"] == 'Bearer error="insufficient_scope"'


def test_an_operator_with_scope_star_reaches_every_client(
    service, live_server, operator_staff, client1, client2
):
    token = sign_in(live_server, operator_staff)["accessToken"]
    assert [service.things(client, token).status_code for client in ("client1", "client2")] == [200, 200]


def test_a_user_without_grants_reaches_nothing(service, live_server, user_factory, client1):
    token = sign_in(live_server, user_factory())["accessToken"]
    assert_error(service.things("client1", token), 403, "permission_denied")


def test_no_token_is_401_not_authenticated(service):
    response = service.things("client1")
    assert_error(response, 401, "not_authenticated")
    assert response.headers["WWW-Authenticate"] == "Bearer"


# --- forged and unusable tokens ----------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict, claims: dict, sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    return f"{signing_input}.{_b64url(sign(signing_input.encode()))}"


def _forged(case: str, tokens: dict) -> str:
    header, claims = token_parts(tokens["accessToken"])
    portal_key = key_ring().signing.private_key
    now = int(time.time())

    def portal_signed(changes: dict) -> str:
        """Signed with the portal's own key and kid: only the claims are wrong."""
        return jwt.encode(claims | changes, portal_key, algorithm="RS256", headers={"kid": header["kid"]})

    if case == "alg-none":
        return _unsigned({**header, "alg": "none"}, claims, lambda _: b"")
    if case == "hs256-signed-with-the-public-key":
        public_pem = portal_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return _unsigned(
            {**header, "alg": "HS256"},
            claims,
            lambda data: hmac.new(public_pem, data, hashlib.sha256).digest(),
        )
    if case == "tampered-scope":
        head, _, signature = tokens["accessToken"].split(".")
        return f"{head}.{_b64url(json.dumps(claims | {'scope': '*'}).encode())}.{signature}"
    if case in {"stranger-key-with-the-portals-kid", "stranger-key-with-an-unknown-kid"}:
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        kid = header["kid"] if case == "stranger-key-with-the-portals-kid" else uuid.uuid4().hex
        return jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": kid})
    changes = {
        "another-audience": {"aud": "another-service"},
        "another-issuer": {"iss": "someone-else"},
        "expired": {"iat": now - 3600, "exp": now - 1800},
    }
    if case in changes:
        return portal_signed(changes[case])
    if case == "no-audience":
        return jwt.encode(
            {k: v for k, v in claims.items() if k != "aud"},
            portal_key,
            algorithm="RS256",
            headers={"kid": header["kid"]},
        )
    return {"refresh-token": tokens["refreshToken"], "garbage": "not-a-jwt"}[case]


@pytest.mark.parametrize(
    "case",
    [
        "alg-none",
        "hs256-signed-with-the-public-key",
        "tampered-scope",
        "stranger-key-with-the-portals-kid",
        "stranger-key-with-an-unknown-kid",
        "another-audience",
        "no-audience",
        "another-issuer",
        "expired",
        "refresh-token",
        "garbage",
    ],
)
def test_forged_and_unusable_tokens_are_401(service, live_server, user1, case):
    tokens = sign_in(live_server, user1)
    assert service.things("client1", tokens["accessToken"]).status_code == 200  # the genuine one passes

    response = service.things("client1", _forged(case, tokens))

    assert_error(response, 401, "token_not_valid")
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


def test_a_verifier_that_forgets_token_type_still_refuses_a_refresh_token(live_server, user1):
    """RFC 8725 section 2.8: refresh tokens carry an audience of their own, so a service checking
    signature, issuer, audience and expiry, the usual library call, cannot take one (days long,
    alive after its session is revoked) for an access token."""
    tokens = sign_in(live_server, user1)
    keys = jwt.PyJWKClient(f"{live_server.url}/.well-known/jwks.json")

    def verified(token: str) -> dict:
        return jwt.decode(
            token,
            keys.get_signing_key_from_jwt(token).key,
            algorithms=["RS256"],
            issuer=django_settings.JWT_ISSUER,
            audience=django_settings.JWT_AUDIENCE,
        )

    assert verified(tokens["accessToken"])["token_type"] == "access"
    with pytest.raises(jwt.InvalidAudienceError):
        verified(tokens["refreshToken"])


# --- the portal's keys: rotation without restart, retirement, rate-limited refetches -----------


def test_rotated_keys_are_picked_up_without_a_restart_and_retired_ones_refused(
    keys_dir, start_service, live_server, user1, jwks_fetches
):
    cache_seconds = 3.0
    service = start_service(JWKS_CACHE_SECONDS=str(cache_seconds), JWKS_REFETCH_INTERVAL="1")
    old = sign_in(live_server, user1)["accessToken"]
    old_kid = token_parts(old)[0]["kid"]
    assert service.things("client1", old).status_code == 200
    assert len(jwks_fetches) == 1

    call_command("jwt_keys", "rotate", stdout=StringIO())
    new = sign_in(live_server, user1)["accessToken"]
    assert token_parts(new)[0]["kid"] != old_kid

    # The unknown kid makes the service fetch the key set again at once, long before it expires.
    assert service.things("client1", new).status_code == 200
    assert len(jwks_fetches) == 2 and jwks_fetches[1] - jwks_fetches[0] < cache_seconds
    assert service.things("client1", old).status_code == 200  # the old key still verifies

    call_command("jwt_keys", "retire", old_kid, "--force", stdout=StringIO())  # its sessions end too
    # Until the cached key set expires, the retired key still verifies here (README: at most
    # JWKS_CACHE_SECONDS); afterwards its tokens are refused, and the new key's still pass.
    assert service.things("client1", old).status_code == 200
    # The service starts its cache's clock once it has parsed the set, a little after the fetch.
    deadline = jwks_fetches[-1] + cache_seconds + 5
    while (answer := service.things("client1", old)).status_code == 200:
        assert time.monotonic() < deadline, "the retired key was still accepted long after the cache expired"
        time.sleep(0.1)
    assert_error(answer, 401, "token_not_valid")
    assert service.things("client1", new).status_code == 200


def _stranger_signed(claims: dict, kid: str | None = None) -> str:
    """The claims signed by a key the portal never had, under a kid it never published."""
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(claims, stranger, algorithm="RS256", headers={"kid": kid or uuid.uuid4().hex})


def assert_retry_later(response: requests.Response, *, at_most: float) -> None:
    assert_error(response, 503, "auth_unavailable")
    assert 1 <= int(response.headers["Retry-After"]) <= math.ceil(at_most)


def test_tokens_with_made_up_kids_cost_the_portal_one_fetch_per_interval(
    start_service, live_server, user1, jwks_fetches
):
    service = start_service(JWKS_REFETCH_INTERVAL="30")
    tokens = sign_in(live_server, user1)
    assert service.things("client1", tokens["accessToken"]).status_code == 200
    _, claims = token_parts(tokens["accessToken"])
    first_kid = uuid.uuid4().hex

    # The first unknown kid has the set fetched again, which shows it unknown: 401.
    assert_error(service.things("client1", _stranger_signed(claims, first_kid)), 401, "token_not_valid")
    # Other unknown kids within the interval are not fetched for: they may be keys newer than
    # the set, so "retry later" (503), not "invalid" (401, which would make clients sign out).
    for _ in range(20):
        assert_retry_later(service.things("client1", _stranger_signed(claims)), at_most=30)
    assert_error(service.things("client1", _stranger_signed(claims, first_kid)), 401, "token_not_valid")

    assert len(jwks_fetches) == 2  # the first fetch, and one early refetch for the first unknown kid
    assert service.things("client1", tokens["accessToken"]).status_code == 200
    assert len(jwks_fetches) == 2


def test_a_key_rotated_in_just_after_an_unknown_kid_is_retried_later_not_refused(
    keys_dir, start_service, live_server, user1, jwks_fetches
):
    """A leftover token of a retired key has the set fetched just before a rotation: the new
    key's tokens must not be called invalid until the next refetch is allowed."""
    interval = 3.0
    service = start_service(JWKS_REFETCH_INTERVAL=str(interval))
    old = sign_in(live_server, user1)["accessToken"]
    assert service.things("client1", old).status_code == 200
    leftover = _stranger_signed(token_parts(old)[1])
    assert_error(service.things("client1", leftover), 401, "token_not_valid")
    refetched_at = jwks_fetches[-1]

    call_command("jwt_keys", "rotate", stdout=StringIO())
    new = sign_in(live_server, user1)["accessToken"]
    answer = service.things("client1", new)

    assert time.monotonic() - refetched_at < interval, "too slow to test within the interval"
    assert_retry_later(answer, at_most=interval)
    assert_error(service.things("client1", leftover), 401, "token_not_valid")  # its refetch showed it unknown
    time.sleep(int(answer.headers["Retry-After"]))
    assert service.things("client1", new).status_code == 200
    assert len(jwks_fetches) == 3


def test_a_key_the_fetched_set_lacked_is_accepted_once_a_later_fetch_has_it(
    keys_dir, start_service, live_server, user1, jwks_fetches
):
    """After a rotation one replica signs with the new key while another still serves the older
    set: that set's answer holds for one refetch interval, not for the whole cache lifetime."""
    from accounts.keys import key_thumbprint, private_key_pem

    interval = 2.0
    service = start_service(JWKS_REFETCH_INTERVAL=str(interval), JWKS_CACHE_SECONDS="300")
    token = sign_in(live_server, user1)["accessToken"]
    assert service.things("client1", token).status_code == 200
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = key_thumbprint(rotated.public_key())
    signed_by_the_other_replica = jwt.encode(
        token_parts(token)[1], rotated, algorithm="RS256", headers={"kid": kid}
    )
    assert_error(service.things("client1", signed_by_the_other_replica), 401, "token_not_valid")

    (keys_dir / f"{kid}.pem").write_bytes(private_key_pem(rotated))  # this replica now publishes it too
    time.sleep(interval + 0.2)

    assert service.things("client1", signed_by_the_other_replica).status_code == 200


def test_eddsa_tokens_pass_only_where_eddsa_is_configured(
    settings, tmp_path, start_service, live_server, user1
):
    settings.JWT_ALGORITHM, settings.JWT_PRIVATE_KEYS, settings.JWT_KEYS_DIR = "EdDSA", "", tmp_path / "ed"
    call_command("jwt_keys", "rotate", stdout=StringIO())
    token = sign_in(live_server, user1)["accessToken"]
    assert token_parts(token)[0]["alg"] == "EdDSA"

    assert start_service(JWT_ALGORITHMS="EdDSA").things("client1", token).status_code == 200
    assert_error(start_service(JWT_ALGORITHMS="RS256").things("client1", token), 401, "token_not_valid")


# --- local validation's trade-off, and failures -------------------------------------------------


def test_a_logout_is_seen_here_only_when_the_access_token_expires(service, live_server, user1):
    """The price of verifying locally: the portal's /validate refuses at once, this service cannot know."""
    tokens = sign_in(live_server, user1)
    headers = {"Authorization": f"Bearer {tokens['accessToken']}"}
    assert requests.post(f"{live_server.url}/api/auth/logout", headers=headers, timeout=10).status_code == 204

    validate = requests.get(f"{live_server.url}/api/auth/validate", headers=headers, timeout=10)
    assert validate.json()["code"] == "token_not_valid"
    assert service.things("client1", tokens["accessToken"]).status_code == 200
    assert token_parts(tokens["accessToken"])[1]["exp"] - time.time() <= 15 * 60


def test_an_unreachable_portal_is_503_not_a_pass(start_service, live_server, user1):
    token = sign_in(live_server, user1)["accessToken"]
    service = start_service(PORTAL_URL=f"http://127.0.0.1:{free_port()}")
    assert_retry_later(service.things("client1", token), at_most=5)


@pytest.fixture
def hanging_portal() -> Iterator[str]:
    """A portal that takes connections and never answers (the service gives up after 5 s)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # connections complete in the backlog; nothing ever reads them
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_requests_during_a_hanging_portal_wait_for_one_fetch_then_fail_fast(
    start_service, live_server, user1, hanging_portal
):
    token = sign_in(live_server, user1)["accessToken"]
    service = start_service(PORTAL_URL=hanging_portal)

    def timed_request(_: int) -> tuple[float, requests.Response]:
        started = time.monotonic()
        response = requests.get(
            f"{service.url}/clients/client1/things", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        return time.monotonic() - started, response

    with ThreadPoolExecutor(max_workers=4) as pool:
        answers = list(pool.map(timed_request, range(4)))

    # One fetch for all four (each in turn would take 5, 10, 15 and 20 s).
    assert max(seconds for seconds, _ in answers) < 8, [round(seconds, 1) for seconds, _ in answers]
    for _, response in answers:
        assert_retry_later(response, at_most=5)
    # The failure is remembered: the next request is answered at once, not after another 5 s.
    seconds, response = timed_request(0)
    assert seconds < 1
    assert_retry_later(response, at_most=5)


def test_a_personal_access_token_is_refused_with_where_to_check_it(service):
    response = service.things("client1", access_token_secret_new())

    assert_error(response, 401, "token_not_valid")
    assert "/api/auth/validate" in response.json()["detail"]
    assert "Personal access tokens" in response.json()["detail"]


@pytest.mark.parametrize("algorithms", ["HS256", "none", "RS256,HS256", ","])
def test_the_service_refuses_to_start_with_symmetric_or_no_algorithms(tmp_path, algorithms):
    result = subprocess.run(
        [sys.executable, str(SERVICE)],
        env={"PATH": os.environ.get("PATH", ""), "JWT_ALGORITHMS": algorithms, "PORT": str(free_port())},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "JWT_ALGORITHMS" in result.stderr
