"""Shared fixtures: users, clients, an API client, and a fast password hasher."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from rest_framework.test import APIClient

from accounts.models import User
from clusters.models import Client, Cluster, Grant
from clusters.services import client_create, cluster_create, grant_set
from gitops.repository import GitopsRepository, repository_open


@pytest.fixture(autouse=True)
def _fast_password_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _isolated_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _force_login_binds_a_portal_session(monkeypatch):
    """``Client.force_login`` (and pytest-django's ``admin_client``) stands for the portal's
    ``POST /api/auth/admin-session``: the admin takes only a session bound to a live portal
    session (accounts/admin_site.py), so the test's login starts one, as a sign-in would."""
    from django.test import Client as DjangoClient

    from accounts.admin_site import PORTAL_SESSION_KEY
    from accounts.audit import RequestOrigin
    from accounts.models import AuthMethod
    from accounts.selectors import user_second_factors
    from accounts.services import session_start

    django_force_login = DjangoClient.force_login

    def force_login(self, user, backend=None):
        django_force_login(self, user, backend)
        issued = session_start(
            user=user,
            method=AuthMethod.PASSWORD,
            origin=RequestOrigin(ip="127.0.0.1", user_agent="test"),
            # as the sign-in would have asked for it
            second_factor=next(iter(user_second_factors(user=user)), None),
        )
        session = self.session
        session[PORTAL_SESSION_KEY] = str(issued.session_id)
        session.save()

    monkeypatch.setattr(DjangoClient, "force_login", force_login)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


@pytest.fixture
def user_factory(db):
    counter = iter(range(1, 1_000_000))

    def make(email: str | None = None, password: str = "correct horse battery", **fields) -> User:
        email = email or f"user{next(counter)}@example.com"
        return User.objects.create_user(email=email, password=password, **fields)

    return make


@pytest.fixture
def user(user_factory) -> User:
    return user_factory(email="alice@example.com", name="Alice")


# --- authentication (see accounts/): real logins, real cookies, real tokens --------------------

DEFAULT_PASSWORD = "correct horse battery"


def b64(password: str) -> str:
    """The login API's password encoding: base64 of the UTF-8 bytes."""
    import base64

    return base64.b64encode(password.encode()).decode()


def login(client, user_or_email, password: str = DEFAULT_PASSWORD, **extra):
    """POST /api/auth/login like the browser app (or with tokenDelivery="body"); returns the response."""
    email = user_or_email if isinstance(user_or_email, str) else user_or_email.email
    return client.post("/api/auth/login", {"email": email, "password": b64(password), **extra}, format="json")


@pytest.fixture
def auth_client(db):
    """``auth_client(user)``: an APIClient holding the cookies of a real login (and the CSRF token).

    Unsafe requests need the CSRF header, as in the browser (the check is enforced, unlike
    Django's test default): the client sends it by default.
    """

    def make(user: User, password: str = DEFAULT_PASSWORD) -> APIClient:
        client = APIClient(enforce_csrf_checks=True)
        response = login(client, user, password)
        assert response.status_code == 200, response.content
        csrf = client.get("/api/auth/csrf").json()["csrfToken"]
        client.credentials(HTTP_X_CSRFTOKEN=csrf)
        client.login_response = response
        return client

    return make


@pytest.fixture
def bearer_client(db):
    """``bearer_client(user)``: an APIClient sending ``Authorization: Bearer`` from a body-delivery login."""

    def make(user: User, password: str = DEFAULT_PASSWORD) -> APIClient:
        client = APIClient()
        response = login(client, user, password, tokenDelivery="body")
        assert response.status_code == 200, response.content
        client.cookies.clear()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['accessToken']}")
        client.login_response = response
        client.tokens = response.json()
        return client

    return make


@pytest.fixture(autouse=True)
def _isolated_gitops_repository(settings, tmp_path):
    """Each test gets its own GitOps repository (and no remote unless it sets one)."""
    settings.GITOPS_REPO_PATH = tmp_path / "gitops-local.git"
    settings.GITOPS_REMOTE_URL = ""
    settings.GITOPS_SEALING_CERT = ""


# --- Clients, clusters and users with grants ------------------------------------------------


@pytest.fixture
def client_for(bearer_client) -> Callable[[User], APIClient]:
    """An API client signed in as ``user`` for real: password login, then ``Authorization: Bearer``.

    Grants are read from the database on every request, so a client made before a grant
    change sees the change at once.
    """
    return bearer_client


@pytest.fixture
def client1(db) -> Client:
    return client_create(slug="client1", name="Client One")


@pytest.fixture
def client2(db) -> Client:
    return client_create(slug="client2", name="Client Two")


@pytest.fixture
def cluster1(client1) -> Cluster:
    return cluster_create(client=client1, slug="main", actor=None, replicas=2).cluster


@pytest.fixture
def cluster2(client2) -> Cluster:
    return cluster_create(client=client2, slug="main", actor=None, replicas=1).cluster


@pytest.fixture
def user1(user_factory, client1) -> User:
    """client1's operator (the seed's client1 user)."""
    user = user_factory(email="client1@example.com", name="Client One User")
    grant_set(user=user, client=client1, role=Grant.Role.OPERATOR)
    return user


@pytest.fixture
def user2(user_factory, client2) -> User:
    user = user_factory(email="client2@example.com", name="Client Two User")
    grant_set(user=user, client=client2, role=Grant.Role.OPERATOR)
    return user


@pytest.fixture
def viewer1(user_factory, client1) -> User:
    user = user_factory(email="viewer1@example.com", name="Viewer One")
    grant_set(user=user, client=client1, role=Grant.Role.VIEWER)
    return user


@pytest.fixture
def admin1(user_factory, client1) -> User:
    """client1's admin: runs its team and its sign-in policy."""
    user = user_factory(email="admin1@example.com", name="Admin One")
    grant_set(user=user, client=client1, role=Grant.Role.ADMIN)
    return user


@pytest.fixture
def operator_staff(user_factory) -> User:
    return user_factory(email="ops@example.com", name="Ops", is_staff=True, is_operator=True)


@pytest.fixture
def as_user1(client_for, user1) -> APIClient:
    return client_for(user1)


@pytest.fixture
def as_admin1(auth_client, admin1) -> APIClient:
    return auth_client(admin1)


@pytest.fixture
def git_server(tmp_path, settings) -> GitopsRepository:
    """A bare repository playing the team's git server, set as ``GITOPS_REMOTE_URL``."""
    settings.GITOPS_REMOTE_URL = str(tmp_path / "remote.git")
    return repository_open(path=tmp_path / "remote.git", branch="main", bootstrap_files={})


def portal_repository(settings) -> GitopsRepository:
    """The portal's own local repository (``GITOPS_REPO_PATH``)."""
    return GitopsRepository(path=Path(settings.GITOPS_REPO_PATH), branch=settings.GITOPS_BRANCH)


ARGOCD_TEST_TOKEN = "argocd-read-only-token-for-tests-7f3a9c"


@pytest.fixture
def argocd(settings):
    """A fake Argo CD API server (tests/support/fake_argocd.py), configured as ``ARGOCD_URL``.

    Skipped when ``../shared`` (Argo CD's API description, which every answer is checked
    against) is absent. Refreshes started by a push are waited for at the end, so none
    writes into the next test's cache.
    """
    import threading
    from datetime import timedelta

    from tests.support.fake_argocd import SWAGGER, FakeArgoCD

    if not SWAGGER.exists():
        pytest.skip(f"{SWAGGER} is absent: Argo CD's API description comes with ../shared/reference")
    with FakeArgoCD(token=ARGOCD_TEST_TOKEN, project=settings.ARGOCD_PROJECT) as fake:
        settings.ARGOCD_URL = fake.url
        settings.ARGOCD_TOKEN = ARGOCD_TEST_TOKEN
        # Roomy, so a loaded CI machine never turns a prompt answer into a timeout; the tests
        # of a hanging Argo CD set their own short one (argocd_short_timeout).
        settings.ARGOCD_TIMEOUT = timedelta(seconds=5)
        settings.ARGOCD_CACHE_TTL = timedelta(seconds=5)
        yield fake
        fake.hang_seconds = 0
        for thread in threading.enumerate():  # and the fetches a read asked for
            if thread.name.startswith("argocd-refresh") or thread.name == "gitops-fetch":
                thread.join(timeout=5)
        assert fake.problems == [], "the fake served a document Argo CD's API does not describe"


@pytest.fixture
def argocd_short_timeout(settings):
    """``ARGOCD_TIMEOUT`` of 1 s, for the tests of an Argo CD that hangs."""
    from datetime import timedelta

    settings.ARGOCD_TIMEOUT = timedelta(seconds=1)


# --- The closing summary says what did not run -----------------------------------------------

# Tests that need something outside Python; when it is missing they skip, and a green run
# must not hide that. Matched on the test's node id.
_NEEDS = {
    "browser tests (Chromium)": "tests/frontend/test_browser",
    "gateway tests (nginx)": "tests/deploy/test_gateway",
    "PostgreSQL and Redis tests": "tests/deploy/test_multi_replica",
    "fault suite (PostgreSQL and Redis)": "tests/faults/test_faults",
    "status outage test (PostgreSQL and Redis)": "tests/operations/test_status_outages",
    "MariaDB status probe test (MariaDB on 127.0.0.1:3306)": "tests/operations/test_status.py::test_a_live_mariadb",
    "MariaDB-only tests (the suite on DATABASE_URL=mysql://...)": (
        "tests/config/test_mysql.py::test_on_mariadb",
        "tests/gitops/test_locks.py::test_on_mariadb",
    ),
}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = terminalreporter.stats.get("skipped", [])
    for what, prefix in _NEEDS.items():
        by_reason: dict[str, int] = {}
        for report in skipped:
            if report.nodeid.startswith(prefix):
                reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
                reason = reason.removeprefix("Skipped: ")
                by_reason[reason] = by_reason.get(reason, 0) + 1
        for (
            reason,
            count,
        ) in by_reason.items():  # one line per reason: a missing file is not a missing browser
            terminalreporter.write_sep("!", f"NOT RUN: {count} {what}", yellow=True, bold=True)
            terminalreporter.write_line(reason)


@pytest.fixture
def migrated_back_afterwards():
    """Leave the schema at the latest migration for the tests that follow, whatever a test that
    migrates backwards did."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.fixture(scope="session")
def openapi_document(django_db_setup, django_db_blocker) -> dict:
    """The API's OpenAPI document, as a client downloads it (JSON), made once per run."""
    from django.test import Client as HttpClient

    with django_db_blocker.unblock():
        return HttpClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
