"""deploy/gateway/nginx.conf, for real: Debian's nginx in front of the portal and a protected service.

nginx runs as a foreground process with the repository's config (only the two upstream
addresses, the listen port, TLS where a test terminates it there, and temporary paths
substituted), in front of the portal under Django's ``live_server`` and a small HTTP server on
loopback that records what reaches it. One group of tests puts it in front of the portal as
the Kubernetes ConfigMap runs it instead (gunicorn, HTTPS redirect and proxy trust on).
Skipped, with the reason, when nginx is not installed; with PORTAL_REQUIRE_NGINX=1 (set by
.ci/run when it installed nginx) a missing nginx is a failure instead.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import json
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core.cache import caches
from django.test import override_settings

from accounts.authentication import access_cookie_name
from accounts.tokens import key_ring
from config import errors
from tests.accounts.test_sessions import DEAD_REDIS
from tests.conftest import b64
from tests.helpers import free_port, token_parts
from tests.support.portal_process import GunicornServer, gunicorn_start, manage, production_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# PORTAL_GATEWAY_CONF: run these tests against another copy of the configuration.
NGINX_CONF = Path(os.environ.get("PORTAL_GATEWAY_CONF") or PROJECT_ROOT / "deploy" / "gateway" / "nginx.conf")
CONFIGMAP = PROJECT_ROOT / "deploy" / "k8s" / "configmap.yaml"
NGINX = os.environ.get("PORTAL_NGINX", "/usr/sbin/nginx")
PASSWORD = "correct horse battery"  # tests/conftest.py's user_factory default
IDENTITY_HEADERS = ("x-auth-user-id", "x-auth-email", "x-auth-scope", "x-auth-permissions")
OPERATOR_ROLE_PERMISSIONS = "client1=configure,credentials,view"  # user1's on client1
DEFAULT_DETAIL = {
    error.default_code: error.default_detail
    for error in (
        errors.NotAuthenticated,
        errors.TokenNotValid,
        errors.AccountDisabled,
        errors.MfaEnrolmentRequired,
        errors.CsrfFailed,
        errors.AuthUnavailable,
    )
}

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    if not os.access(NGINX, os.X_OK):
        message = f"nginx not found at {NGINX}: install it with `apt-get install -y nginx`"
        if os.environ.get("PORTAL_REQUIRE_NGINX") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return NGINX


# --- the protected service: records every request that reaches it ----------------------------


@dataclass
class Upstream:
    address: str
    received: list[dict] = field(default_factory=list)

    def headers(self, index: int = 0) -> dict[str, list[str]]:
        """The headers of one received request, by lower-case name, every value kept."""
        found: dict[str, list[str]] = {}
        for name, value in self.received[index]["headers"]:
            found.setdefault(name.lower(), []).append(value)
        return found


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    recorder = Upstream(address="")

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            recorder.received.append(
                {"method": self.command, "path": self.path, "headers": self.headers.items()}
            )
            body = json.dumps({"service": "reached"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_OPTIONS = _answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    recorder.address = f"127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield recorder
    server.shutdown()
    server.server_close()


# --- nginx with the repository's config ------------------------------------------------------


@dataclass(frozen=True)
class Certificate:
    """A self-signed certificate for 127.0.0.1, for nginx to terminate TLS with."""

    cert: Path
    key: Path


def nginx_conf_render(
    *,
    portal: str,
    service: str,
    port: int,
    prefix: Path,
    tls: Certificate | None = None,
    insertions: dict[str, str] | None = None,
) -> str:
    """deploy/gateway/nginx.conf with test addresses; each placeholder must be there exactly once.
    ``insertions``: text to insert after a line of the configuration (also there exactly once)."""
    temp_paths = "".join(
        f"    {kind}_temp_path {prefix / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    listen = f"listen 127.0.0.1:{port};"
    if tls is not None:
        listen = f"listen 127.0.0.1:{port} ssl; ssl_certificate {tls.cert}; ssl_certificate_key {tls.key};"
    replacements = {
        "server portal.qdrant-portal.svc.cluster.local:80;": f"server {portal};",
        "server service.internal:8080;": f"server {service};",
        "listen 8080;": listen,
        "worker_processes auto;": "worker_processes 1;",
        "\nhttp {\n": "\nhttp {\n" + temp_paths,
    }
    replacements |= {line: line + inserted for line, inserted in (insertions or {}).items()}
    text = NGINX_CONF.read_text()
    for placeholder, value in replacements.items():
        assert text.count(placeholder) == 1, f"{placeholder!r} should appear once in {NGINX_CONF}"
        text = text.replace(placeholder, value)
    return text


def _wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"nginx exited with {process.returncode}:\n{log.read_text()}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    pytest.fail(f"nginx did not listen on {port}:\n{log.read_text()}")


@pytest.fixture
def start_gateway(nginx_binary, tmp_path) -> Iterator[Callable[..., str]]:
    """``start_gateway(portal=..., service=..., tls=None, insertions=None)``: nginx in the foreground;
    returns its base URL."""
    processes: list[subprocess.Popen] = []

    def start(
        *, portal: str, service: str, tls: Certificate | None = None, insertions: dict[str, str] | None = None
    ) -> str:
        prefix = tmp_path / f"nginx-{len(processes)}"
        prefix.mkdir()
        port = free_port()
        conf = prefix / "nginx.conf"
        conf.write_text(
            nginx_conf_render(
                portal=portal, service=service, port=port, prefix=prefix, tls=tls, insertions=insertions
            )
        )
        log = prefix / "nginx.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [nginx_binary, "-p", str(prefix), "-c", str(conf), "-e", "stderr",
                 "-g", f"daemon off; pid {prefix / 'nginx.pid'};"],
                stdout=output,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        processes.append(process)
        _wait_for_port(port, process, log)
        return f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _portal_address(live_server) -> str:
    return f"127.0.0.1:{urlsplit(live_server.url).port}"


@pytest.fixture
def gateway(start_gateway, live_server, upstream) -> str:
    return start_gateway(portal=_portal_address(live_server), service=upstream.address)


# --- helpers ---------------------------------------------------------------------------------


def sign_in(gateway: str, email: str, *, delivery: str = "body") -> dict:
    """Log in through the gateway: the tokens from the body, or the access token from its cookie."""
    body = {"email": email, "password": b64(PASSWORD)} | (
        {"tokenDelivery": "body"} if delivery == "body" else {}
    )
    response = requests.post(f"{gateway}/api/auth/login", json=body, timeout=10)
    assert response.status_code == 200, response.text
    if delivery == "body":
        return response.json()
    return {"accessToken": response.cookies[access_cookie_name()]}


def token_headers(token: str, via: str) -> dict[str, str]:
    return {
        "cookie": {"Cookie": f"{access_cookie_name()}={token}"},
        "bearer": {"Authorization": f"Bearer {token}"},
        "x-auth-token": {"X-Auth-Token": token},
    }[via]


def assert_refused(response: requests.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"code": code, "detail": DEFAULT_DETAIL[code]}


# --- a valid token passes, with the identity the portal vouches for ----------------------------


@pytest.mark.parametrize("via", ["cookie", "bearer", "x-auth-token"])
def test_a_valid_access_token_reaches_the_service_with_the_identity_headers(gateway, upstream, user1, via):
    token = sign_in(gateway, user1.email, delivery="cookie" if via == "cookie" else "body")["accessToken"]

    response = requests.get(f"{gateway}/service/things?page=2", headers=token_headers(token, via), timeout=10)

    assert (response.status_code, response.json()) == (200, {"service": "reached"})
    (request,) = upstream.received
    assert (request["method"], request["path"]) == ("GET", "/things?page=2")
    headers = upstream.headers()
    assert headers["x-auth-user-id"] == [str(user1.pk)]
    assert headers["x-auth-email"] == ["client1@example.com"]
    assert headers["x-auth-scope"] == ["client1"]
    assert headers["x-auth-permissions"] == [OPERATOR_ROLE_PERMISSIONS]


def test_identity_headers_sent_by_the_client_never_reach_the_service(gateway, upstream, user1, user_factory):
    forged = {
        "X-Auth-User-Id": "1",
        "X-Auth-Email": "admin@example.com",
        "X-Auth-Scope": "*",
        "X-Auth-Permissions": "*",
        "X_Auth_User_Id": "1",  # the underscore spelling WSGI servers read as the same header
    }
    token = sign_in(gateway, user1.email)["accessToken"]
    assert requests.get(
        f"{gateway}/service/a", headers=forged | token_headers(token, "bearer"), timeout=10
    ).ok
    no_grants = user_factory(email="nogrants@example.com")
    token = sign_in(gateway, no_grants.email)["accessToken"]
    assert requests.get(
        f"{gateway}/service/b", headers=forged | token_headers(token, "bearer"), timeout=10
    ).ok
    refused = requests.get(f"{gateway}/service/c", headers=forged, timeout=10)

    assert_refused(refused, 403, "not_authenticated")
    assert len(upstream.received) == 2
    first, second = upstream.headers(0), upstream.headers(1)
    assert [first[name] for name in IDENTITY_HEADERS] == [
        [str(user1.pk)],
        [user1.email],
        ["client1"],
        [OPERATOR_ROLE_PERMISSIONS],
    ]
    # A user without grants has an empty scope: no scope header at all, and not the forged one.
    assert [second.get(name) for name in IDENTITY_HEADERS] == [
        [str(no_grants.pk)],
        [no_grants.email],
        None,
        None,
    ]
    assert not any("_" in name for request in (first, second) for name in request)


# --- refused requests: 403 with the portal's code, and the service sees nothing ----------------


def _expired(access_token: str) -> str:
    """The same claims, signed by the portal's key, with an expiry in the past."""
    _, claims = token_parts(access_token)
    now = int(time.time())
    return key_ring().backend.encode(claims | {"iat": now - 3600, "exp": now - 1800})


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing", "not_authenticated"),
        ("garbage", "token_not_valid"),
        ("refresh-token", "token_not_valid"),
        ("logged-out", "token_not_valid"),
        ("expired", "token_not_valid"),
    ],
)
def test_the_gateway_refuses_with_the_portals_code(gateway, upstream, live_server, user1, case, code):
    tokens = sign_in(gateway, user1.email)
    headers = {
        "missing": {},
        "garbage": token_headers("not.a.token", "bearer"),
        "refresh-token": token_headers(tokens["refreshToken"], "bearer"),
        "logged-out": token_headers(tokens["accessToken"], "bearer"),
        "expired": token_headers(_expired(tokens["accessToken"]), "bearer"),
    }[case]
    if case == "logged-out":
        assert requests.get(f"{gateway}/service/things", headers=headers, timeout=10).status_code == 200
        logout = requests.post(f"{gateway}/api/auth/logout", headers=headers, timeout=10)
        assert logout.status_code == 204
        upstream.received.clear()

    response = requests.get(f"{gateway}/service/things", headers=headers, timeout=10)

    assert_refused(response, 403, code)
    assert response.headers["Cache-Control"] == "no-store"
    portal = requests.get(f"{live_server.url}/api/auth/validate", headers=headers, timeout=10)
    # nginx cannot read the portal's body: it rebuilds it from the code (with the code's sentence).
    assert response.json()["code"] == portal.json()["code"] == portal.headers["X-Auth-Error-Code"]
    assert upstream.received == []


def test_a_client_asking_for_csv_or_an_event_stream_is_refused_as_any_other(gateway, upstream):
    """Not the gateway's "sign-in unavailable": that would keep the client from refreshing."""
    for accept in ("text/csv", "text/event-stream"):
        headers = {"Accept": accept, **token_headers("not.a.token", "bearer")}
        assert_refused(
            requests.get(f"{gateway}/service/things", headers=headers, timeout=10), 403, "token_not_valid"
        )
    assert upstream.received == []


def test_a_staff_account_that_must_set_up_a_second_factor_is_told_so_by_the_gateway(
    gateway, upstream, user_factory, settings
):
    settings.MFA_REQUIRED_FOR_STAFF = True
    staff = user_factory(email="ops@example.com", is_staff=True, is_operator=True)
    headers = token_headers(sign_in(gateway, staff.email)["accessToken"], "bearer")

    response = requests.get(f"{gateway}/service/things", headers=headers, timeout=10)

    # Passed on as the portal's own code, so the app asks to enrol instead of refreshing.
    assert_refused(response, 403, "mfa_enrolment_required")
    assert upstream.received == []


def test_a_refused_post_never_reaches_the_service_either(gateway, upstream):
    response = requests.post(f"{gateway}/service/things", json={"delete": "everything"}, timeout=10)
    assert_refused(response, 403, "not_authenticated")
    assert upstream.received == []


def test_a_write_carried_by_the_cookie_needs_the_portals_csrf_token_and_origin(gateway, upstream, user1):
    """On a port of its own (nginx passes the Host with its port): no CSRF_TRUSTED_ORIGINS needed."""
    cookies = _portal_cookies(gateway, user1.email, "/service/things")
    browser = {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
    # nginx's own X-Original-Method wins over one the client makes up.
    forged = {**browser, "Origin": "https://evil.example.com", "X-Original-Method": "GET"}

    assert_refused(
        requests.post(f"{gateway}/service/things", json={}, headers=forged, timeout=10), 403, "csrf_failed"
    )
    assert_refused(
        requests.post(f"{gateway}/service/things", json={}, headers=browser, timeout=10), 403, "csrf_failed"
    )
    assert upstream.received == []

    same_origin = {**browser, "Origin": gateway, "X-CSRFToken": cookies["csrftoken"]}
    response = requests.post(f"{gateway}/service/things", json={}, headers=same_origin, timeout=10)
    assert (response.status_code, response.json()) == (200, {"service": "reached"})
    assert requests.get(f"{gateway}/service/things", headers=forged, timeout=10).status_code == 200  # a read


def test_the_portals_cache_outage_is_a_503_at_the_gateway(gateway, upstream, user1):
    token = sign_in(gateway, user1.email)["accessToken"]
    with override_settings(CACHES=DEAD_REDIS):
        response = requests.get(
            f"{gateway}/service/things", headers=token_headers(token, "bearer"), timeout=10
        )
        caches["default"].close()
    assert_refused(response, 503, "auth_unavailable")
    assert upstream.received == []
    assert requests.get(f"{gateway}/service/things", headers=token_headers(token, "bearer"), timeout=10).ok


def test_an_unreachable_portal_is_a_503_and_the_service_sees_nothing(start_gateway, upstream):
    gateway = start_gateway(portal=f"127.0.0.1:{free_port()}", service=upstream.address)
    response = requests.get(f"{gateway}/service/things", headers=token_headers("x.y.z", "bearer"), timeout=10)
    assert_refused(response, 503, "auth_unavailable")
    assert upstream.received == []


# --- cross-origin browser apps: CORS preflights -----------------------------------------------

# deploy/gateway/README.md's pattern, word for word: a preflight (OPTIONS, no credentials) goes to
# the service unchecked, nothing else does.
PREFLIGHT_IN_THE_LOCATION = """\
            error_page 418 = @service_preflight;
            if ($request_method = OPTIONS) {
                return 418;
            }
"""
PREFLIGHT_LOCATION = """\
        location @service_preflight {
            rewrite ^/service/(.*)$ /$1 break;
            proxy_pass http://protected_service;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header Authorization "";
            proxy_set_header X-Auth-Token "";
            proxy_set_header Cookie "";
            proxy_set_header X-Auth-User-Id "";
            proxy_set_header X-Auth-Email "";
            proxy_set_header X-Auth-Scope "";
            proxy_set_header X-Auth-Permissions "";
        }
"""
PREFLIGHT = {
    "Origin": "https://app.example.com",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


def test_a_cors_preflight_is_refused_by_the_check_unless_the_readmes_pattern_lets_it_through(
    start_gateway, live_server, upstream, user1
):
    readme = (PROJECT_ROOT / "deploy" / "gateway" / "README.md").read_text()
    assert PREFLIGHT_IN_THE_LOCATION in readme and PREFLIGHT_LOCATION in readme
    portal = _portal_address(live_server)
    plain = start_gateway(portal=portal, service=upstream.address)
    assert_refused(
        requests.options(f"{plain}/service/things", headers=PREFLIGHT, timeout=10), 403, "not_authenticated"
    )
    assert upstream.received == []

    gateway = start_gateway(
        portal=portal,
        service=upstream.address,
        insertions={
            "        location /service/ {\n": PREFLIGHT_IN_THE_LOCATION,
            "# /service/things -> /things\n        }\n\n": PREFLIGHT_LOCATION + "\n",
        },
    )
    token = sign_in(gateway, user1.email)["accessToken"]
    forged = {
        "Authorization": f"Bearer {token}",
        "X-Auth-Token": token,
        "Cookie": f"{access_cookie_name()}={token}",
        "X-Auth-User-Id": "1",
        "X-Auth-Scope": "*",
        "X-Auth-Permissions": "*",
    }
    preflight = requests.options(f"{gateway}/service/things?page=2", headers=PREFLIGHT | forged, timeout=10)

    assert preflight.status_code == 200  # the service's own answer (its CORS headers, in real life)
    (received,) = upstream.received
    assert (received["method"], received["path"]) == ("OPTIONS", "/things?page=2")
    headers = upstream.headers()
    assert headers["origin"] == ["https://app.example.com"]
    assert headers["access-control-request-method"] == ["POST"]
    # Unchecked, so with no identity and no credentials, whatever the client adds.
    assert not {"authorization", "x-auth-token", "cookie", *IDENTITY_HEADERS} & set(headers)
    # Every other request is still checked first, a preflight's headers on a GET included.
    for method in ("GET", "POST"):
        refused = requests.request(method, f"{gateway}/service/things", headers=PREFLIGHT, timeout=10)
        assert_refused(refused, 403, "not_authenticated")
    assert len(upstream.received) == 1
    checked = requests.get(f"{gateway}/service/things", headers=token_headers(token, "bearer"), timeout=10)
    assert checked.status_code == 200 and upstream.headers(1)["x-auth-user-id"] == [str(user1.pk)]


# --- the portal's own paths go straight to the portal ----------------------------------------


def test_sign_in_refresh_jwks_and_the_app_go_straight_to_the_portal(gateway, upstream, live_server, user1):
    tokens = sign_in(gateway, user1.email)
    refreshed = requests.post(
        f"{gateway}/api/auth/refresh", headers=token_headers(tokens["refreshToken"], "bearer"), timeout=10
    )
    assert refreshed.status_code == 200 and refreshed.json()["accessToken"] != tokens["accessToken"]
    jwks = requests.get(f"{gateway}/.well-known/jwks.json", timeout=10)
    assert jwks.json() == requests.get(f"{live_server.url}/.well-known/jwks.json", timeout=10).json()
    app = requests.get(f"{gateway}/", timeout=10)
    assert app.status_code == 200 and app.headers["Content-Type"].startswith("text/html")
    access = refreshed.json()["accessToken"]
    me = requests.get(f"{gateway}/api/auth/me", headers=token_headers(access, "bearer"), timeout=10)
    assert me.json()["email"] == user1.email
    assert upstream.received == []


# --- personal access tokens ------------------------------------------------------------------


def _pat_create(gateway: str, access: str) -> dict:
    """A personal access token for client1 (view): the API's answer, ``token`` and ``id``."""
    created = requests.post(
        f"{gateway}/api/auth/tokens",
        json={"name": "CI", "clients": {"client1": ["view"]}},
        headers=token_headers(access, "bearer"),
        timeout=10,
    )
    assert created.status_code == 201, created.text
    return created.json()


def test_a_personal_access_token_passes_with_its_own_scope_until_revoked(gateway, upstream, user1, cluster1):
    access = sign_in(gateway, user1.email)["accessToken"]
    created = _pat_create(gateway, access)
    pat = created["token"]

    response = requests.get(f"{gateway}/service/things", headers=token_headers(pat, "bearer"), timeout=10)

    assert (response.status_code, response.json()) == (200, {"service": "reached"})
    headers = upstream.headers()
    # Its own permissions, not its user's: the service can refuse a view-only token's writes.
    assert [headers[name] for name in IDENTITY_HEADERS] == [
        [str(user1.pk)],
        [user1.email],
        ["client1"],
        ["client1=view"],
    ]
    as_cookie = requests.get(f"{gateway}/service/things", headers=token_headers(pat, "cookie"), timeout=10)
    assert_refused(as_cookie, 403, "token_not_valid")
    revoked = requests.delete(
        f"{gateway}/api/auth/tokens/{created['id']}",
        headers=token_headers(access, "bearer"),
        timeout=10,
    )
    assert revoked.status_code == 204
    assert_refused(
        requests.get(f"{gateway}/service/things", headers=token_headers(pat, "bearer"), timeout=10),
        403,
        "token_not_valid",
    )
    assert len(upstream.received) == 1


# --- the caller's credentials stop at the gateway --------------------------------------------
# An access token or a personal access token is valid at the portal itself (same audience): a
# service handed one could replay it there. The check gets them, the service never does.

SERVICE_COOKIE = "theme=dark"  # a cookie of the service's own, sent along with the portal's


def _portal_cookies(gateway: str, email: str, path: str) -> dict[str, str]:
    """The cookies the portal sets on a browser (the app's csrftoken, the sign-in's) that the
    browser sends back to ``path``: the refresh and device cookies are only sent to /api/auth/."""
    app = requests.get(f"{gateway}/", timeout=10)
    login = requests.post(  # as the browser app signs in: from the gateway's own origin
        f"{gateway}/api/auth/login",
        json={"email": email, "password": b64(PASSWORD)},
        headers={"Origin": gateway},
        timeout=10,
    )
    assert login.status_code == 200, login.text
    cookies = {
        cookie.name: cookie.value for cookie in [*app.cookies, *login.cookies] if path.startswith(cookie.path)
    }
    assert {access_cookie_name(), "csrftoken"} <= set(cookies), cookies
    # The admin's Django session (Path=/), bound to a portal session: a credential too.
    return cookies | {"sessionid": "admin-session-" + "s" * 24}


@pytest.mark.parametrize("via", ["cookie", "bearer", "x-auth-token", "personal-access-token"])
def test_the_service_gets_the_identity_but_none_of_the_callers_credentials(gateway, upstream, user1, via):
    tokens = sign_in(gateway, user1.email)
    if via == "cookie":
        portal_cookies = _portal_cookies(gateway, user1.email, "/service/things")
        credentials = [*portal_cookies.values()]
        cookie = "; ".join([*(f"{name}={value}" for name, value in portal_cookies.items()), SERVICE_COOKIE])
        headers = {"Cookie": cookie}
    else:
        token = (
            _pat_create(gateway, tokens["accessToken"])["token"] if via == "personal-access-token" else None
        )
        token = token or tokens["accessToken"]
        credentials = [token]
        headers = token_headers(token, "bearer" if via == "personal-access-token" else via)
        headers |= {"Cookie": SERVICE_COOKIE}

    response = requests.get(f"{gateway}/service/things", headers=headers, timeout=10)

    assert (response.status_code, response.json()) == (200, {"service": "reached"})
    (request,) = upstream.received
    received = upstream.headers()
    permissions = "client1=view" if via == "personal-access-token" else OPERATOR_ROLE_PERMISSIONS
    assert [received[name] for name in IDENTITY_HEADERS] == [
        [str(user1.pk)],
        [user1.email],
        ["client1"],
        [permissions],
    ]
    assert "authorization" not in received
    assert "x-auth-token" not in received
    assert "cookie" not in received
    leaked = [secret for secret in credentials for _, value in request["headers"] if secret in value]
    assert leaked == []


def test_no_cookie_reaches_the_service_in_one_header_or_several(gateway, upstream, user1):
    """The portal's cookies hold its tokens: the service gets no Cookie header at all."""
    token = sign_in(gateway, user1.email)["accessToken"]
    connection = http.client.HTTPConnection(urlsplit(gateway).netloc, timeout=10)
    try:
        connection.putrequest("GET", "/service/things")
        connection.putheader("X-Auth-Token", token)
        connection.putheader("Cookie", f"{SERVICE_COOKIE}; {access_cookie_name()}={token}")
        connection.putheader("Cookie", "csrftoken=C; lang=en")
        connection.endheaders()
        status = connection.getresponse().status
    finally:
        connection.close()

    assert status == 200
    received = upstream.headers()
    assert "cookie" not in received and "x-auth-token" not in received
    assert received["x-auth-user-id"] == [str(user1.pk)]


# --- with the ConfigMap's HTTPS redirect and proxy trust --------------------------------------
# deploy/k8s/configmap.yaml turns on DJANGO_SECURE_SSL_REDIRECT and DJANGO_BEHIND_PROXY (which
# tests/environment.py turns off): the portal then redirects every request whose
# X-Forwarded-Proto is not https, /api/auth/validate included. The portal runs under gunicorn
# with those settings, since the live server's middleware is built once with the test settings.

CONFIGMAP_PROXY_SETTINGS = (
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_BEHIND_PROXY",
    "TRUSTED_PROXY_HOPS",
    "DJANGO_SECURE_SSL_REDIRECT",
    "DJANGO_HSTS_SECONDS",
    "CSRF_TRUSTED_ORIGINS",
    "PUBLIC_URL",
    "JWT_ISSUER",
)
CONFIGMAP_USER = "gateway@example.com"


@dataclass(frozen=True)
class ConfigMapPortal:
    server: GunicornServer
    address: str
    host: str  # the public host name, the one the ConfigMap allows


@pytest.fixture(scope="module")
def configmap_portal(tmp_path_factory) -> Iterator[ConfigMapPortal]:
    data = yaml.safe_load(CONFIGMAP.read_text())["data"]
    settings = {name: data[name] for name in CONFIGMAP_PROXY_SETTINGS}
    assert settings["DJANGO_SECURE_SSL_REDIRECT"] == settings["DJANGO_BEHIND_PROXY"] == "1"
    work = tmp_path_factory.mktemp("configmap-portal")
    env = production_env(
        work=work,
        name="gateway-configmap",
        AUTH_COOKIE_SECURE="1",  # the production default the ConfigMap keeps
        POD_IP="127.0.0.1",  # as the Deployment sets it: the readiness check's Host
        **settings,
    )
    manage(
        env,
        "shell",
        "-c",
        "from django.core.management import call_command\n"
        "from accounts.models import User\n"
        "call_command('migrate', interactive=False, verbosity=0)\n"
        f"User.objects.create_user(email={CONFIGMAP_USER!r}, password={PASSWORD!r})\n",
    )
    server = gunicorn_start(env=env, log=work / "gunicorn.log", workers=1)
    try:
        server.ready_wait()
        host = settings["DJANGO_ALLOWED_HOSTS"].split(",")[0]
        yield ConfigMapPortal(server=server, address=urlsplit(server.url).netloc, host=host)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> Certificate:
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(cert=directory / "cert.pem", key=directory / "key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def _configmap_sign_in(url: str, headers: dict[str, str], verify: bool | str = True) -> str:
    """The access token from the cookie a browser gets on signing in."""
    body = {"email": CONFIGMAP_USER, "password": b64(PASSWORD)}
    response = requests.post(
        f"{url}/api/auth/login", json=body, headers=headers, verify=verify, allow_redirects=False, timeout=30
    )
    assert response.status_code == 200, (
        response.status_code,
        response.headers.get("Location"),
        response.text,
    )
    return response.cookies["__Host-accessToken"]


@pytest.mark.parametrize("tls_ends", ["at-a-load-balancer", "at-the-gateway"])
def test_with_the_configmaps_https_redirect_and_proxy_trust_protected_requests_pass(
    configmap_portal, start_gateway, upstream, certificate, tls_ends
):
    portal = configmap_portal
    # The redirect is on: plain HTTP that no proxy vouches for is sent to https.
    direct = requests.get(
        f"{portal.server.url}/api/auth/validate",
        headers={"Host": portal.host},
        allow_redirects=False,
        timeout=10,
    )
    assert (direct.status_code, direct.headers["Location"]) == (
        301,
        f"https://{portal.host}/api/auth/validate",
    )
    if tls_ends == "at-a-load-balancer":
        gateway = start_gateway(portal=portal.address, service=upstream.address)
        # What a TLS-terminating load balancer adds to each request it forwards over plain HTTP.
        client = {"Host": portal.host, "X-Forwarded-Proto": "https"}
        verify: bool | str = True
    else:
        gateway = start_gateway(portal=portal.address, service=upstream.address, tls=certificate)
        # TLS ends at nginx: https, whatever the client's own header says.
        client = {"Host": portal.host, "X-Forwarded-Proto": "http"}
        verify = str(certificate.cert)
    # Signed in at the portal as the Ingress reaches it.
    token = _configmap_sign_in(portal.server.url, {"Host": portal.host, "X-Forwarded-Proto": "https"})

    answers = [
        requests.get(
            f"{gateway}/service/things",
            headers=client | headers,
            verify=verify,
            allow_redirects=False,
            timeout=30,
        )
        for headers in (token_headers(token, "bearer"), token_headers(token, "cookie"))
    ]

    assert [(answer.status_code, answer.text) for answer in answers] == [(200, '{"service": "reached"}')] * 2
    for index in range(2):
        received = upstream.headers(index)
        assert received["x-auth-email"] == [CONFIGMAP_USER]
        assert received["x-forwarded-proto"] == ["https"]
    # The portal's own paths through the gateway are not redirected either.
    token = _configmap_sign_in(gateway, client, verify)
    me = requests.get(
        f"{gateway}/api/auth/me", headers=client | token_headers(token, "cookie"), verify=verify, timeout=30
    )
    assert (me.status_code, me.json()["email"]) == (200, CONFIGMAP_USER)
    if tls_ends == "at-a-load-balancer":
        # A request that did not come through the load balancer is still sent to https.
        plain = requests.get(
            f"{gateway}/api/auth/me", headers={"Host": portal.host}, allow_redirects=False, timeout=10
        )
        assert (plain.status_code, plain.headers["Location"]) == (301, f"https://{portal.host}/api/auth/me")
