"""Who may do what: grants, roles, operator staff; 403 outside the grants, 404 inside."""

from __future__ import annotations

import base64
import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient, APIRequestFactory

from accounts.models import User
from accounts.selectors import user_scope_claim
from clusters.models import Cluster, ClusterChange, Grant
from clusters.permissions import HasClientPermission
from clusters.selectors import user_client_permissions
from clusters.services import client_update, grant_remove, grant_set

# Each request's change is delivered to git once its transaction commits, as in production:
# the test database must really commit.
pytestmark = pytest.mark.django_db(transaction=True)

C1 = "/api/clients/client1/clusters"
CLUSTER_REQUESTS = [
    ("get", "/main"),
    ("patch", "/main"),
    ("get", "/main/credentials"),
    ("post", "/main/credentials/rotate"),
    ("get", "/main/history"),
]
EVERY_CLIENT1_REQUEST = [("get", ""), *CLUSTER_REQUESTS]
DENIED = {"code": "permission_denied", "detail": "Insufficient permissions"}


def _call(api, method: str, url: str):
    if method == "patch":
        return api.patch(url, {"replicas": 3}, format="json")
    return getattr(api, method)(url)


@pytest.mark.parametrize(("method", "suffix"), EVERY_CLIENT1_REQUEST)
def test_other_clients_user_gets_403_on_every_client1_url(client_for, user2, cluster1, method, suffix):
    response = _call(client_for(user2), method, C1 + suffix)
    assert response.status_code == 403
    assert response.json() == DENIED
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 2
    assert ClusterChange.objects.filter(cluster=cluster1).count() == 1  # only the creation


@pytest.mark.parametrize(("method", "suffix"), EVERY_CLIENT1_REQUEST)
def test_unknown_client_answers_403_like_a_foreign_one(as_user1, method, suffix):
    response = _call(as_user1, method, "/api/clients/no-such-client/clusters" + suffix)
    assert response.status_code == 403
    assert response.json() == DENIED


@pytest.mark.parametrize(("method", "suffix"), CLUSTER_REQUESTS)
def test_unknown_cluster_within_scope_answers_404(as_user1, cluster1, method, suffix):
    response = _call(as_user1, method, C1 + suffix.replace("/main", "/nope"))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(("method", "suffix"), [("get", ""), ("get", "/main"), ("get", "/main/history")])
def test_viewer_can_view(client_for, viewer1, cluster1, method, suffix):
    assert _call(client_for(viewer1), method, C1 + suffix).status_code == 200


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("patch", "/main"), ("get", "/main/credentials"), ("post", "/main/credentials/rotate")],
)
def test_viewer_cannot_configure_or_read_credentials(client_for, viewer1, cluster1, method, suffix):
    before = Cluster.objects.get(pk=cluster1.pk).api_key_encrypted
    response = _call(client_for(viewer1), method, C1 + suffix)
    assert response.status_code == 403
    assert response.json() == DENIED
    assert "apiKey" not in response.json()
    cluster = Cluster.objects.get(pk=cluster1.pk)
    assert (cluster.replicas, cluster.api_key_encrypted) == (2, before)


@pytest.mark.parametrize(("method", "suffix"), EVERY_CLIENT1_REQUEST)
def test_operator_staff_may_act_on_every_client(
    client_for, operator_staff, cluster1, cluster2, method, suffix
):
    api = client_for(operator_staff)
    assert _call(api, method, C1 + suffix).status_code == 200
    assert _call(api, method, "/api/clients/client2/clusters" + suffix).status_code == 200


def test_staff_without_operator_flag_acts_only_through_grants(client_for, user_factory, cluster1, cluster2):
    staff = user_factory(is_staff=True)
    grant_set(user=staff, client=cluster2.client, role=Grant.Role.VIEWER)
    api = client_for(staff)
    assert [c["slug"] for c in api.get("/api/clients").json()] == ["client2"]
    assert api.get(f"{C1}/main").status_code == 403


def test_deactivated_client_is_out_of_scope_even_with_a_grant(as_user1, user1, cluster1):
    client_update(client=cluster1.client, name="Client One", active=False)
    assert as_user1.get(f"{C1}/main").status_code == 403
    assert as_user1.get("/api/clients").json() == []
    assert user_client_permissions(user=user1) == {}


def test_user_deactivated_after_login_is_refused(client_for, user1, cluster1):
    api = client_for(user1)
    assert api.get(f"{C1}/main").status_code == 200
    user1.is_active = False
    user1.save()
    response = api.get(f"{C1}/main")
    assert response.status_code == 403
    assert response.json()["code"] in {"account_disabled", "token_not_valid"}


def test_grant_changes_apply_to_the_next_request(client_for, user_factory, cluster1, client1):
    user = user_factory()
    api = client_for(user)
    assert api.get(f"{C1}/main").status_code == 403

    grant_set(user=user, client=client1, role=Grant.Role.VIEWER)
    assert api.get(f"{C1}/main").status_code == 200
    assert api.patch(f"{C1}/main", {"replicas": 3}, format="json").status_code == 403

    grant_set(user=user, client=client1, role=Grant.Role.OPERATOR)
    assert api.patch(f"{C1}/main", {"replicas": 3}, format="json").status_code == 200

    grant_remove(user=user, client=client1)
    assert api.get(f"{C1}/main").status_code == 403


def _claims(access_token: str) -> dict:
    payload = access_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_grant_changes_show_in_auth_permissions_at_once_and_in_the_scope_after_refresh(
    client_for, user_factory, client1, client2
):
    user = user_factory()
    grant_set(user=user, client=client1, role=Grant.Role.VIEWER)
    api = client_for(user)
    assert _claims(api.tokens["accessToken"])["scope"] == "client1"

    grant_set(user=user, client=client2, role=Grant.Role.OPERATOR)
    grant_remove(user=user, client=client1)

    permissions = api.get("/api/auth/permissions")
    assert permissions.status_code == 200
    assert permissions.json()["clients"] == {"client2": ["view", "configure", "credentials"]}

    refresh = APIClient().post("/api/auth/refresh", HTTP_AUTHORIZATION=f"Bearer {api.tokens['refreshToken']}")
    assert refresh.status_code == 200, refresh.content
    assert _claims(refresh.json()["accessToken"])["scope"] == "client2"


def test_operator_staff_token_scope_is_a_star(client_for, operator_staff, client1):
    assert _claims(client_for(operator_staff).tokens["accessToken"])["scope"] == "*"


def test_grant_changes_show_in_permissions_and_scope_at_once(user_factory, client1, client2):
    # /api/auth/permissions and the token's scope are built from these two selectors.
    user = user_factory()
    assert user_client_permissions(user=user) == {}
    assert user_scope_claim(user=user) == ""

    grant_set(user=user, client=client2, role=Grant.Role.VIEWER)
    grant_set(user=user, client=client1, role=Grant.Role.OPERATOR)
    assert user_client_permissions(user=user) == {
        "client1": ["view", "configure", "credentials"],
        "client2": ["view"],
    }
    assert user_scope_claim(user=user) == "client1 client2"

    grant_remove(user=user, client=client1)
    assert user_client_permissions(user=user) == {"client2": ["view"]}
    assert user_scope_claim(user=user) == "client2"


def test_grant_changes_bump_the_users_claims_version(user_factory, client1):
    user = user_factory()
    version = lambda: User.objects.get(pk=user.pk).claims_version  # noqa: E731

    start = version()
    grant_set(user=user, client=client1, role=Grant.Role.VIEWER)
    assert version() == start + 1
    grant_set(user=user, client=client1, role=Grant.Role.VIEWER)  # no change, no re-issue
    assert version() == start + 1
    grant_set(user=user, client=client1, role=Grant.Role.OPERATOR)
    assert version() == start + 2
    grant_remove(user=user, client=client1)
    assert version() == start + 3


def test_operator_staff_scope_is_a_star(operator_staff, client1, client2):
    assert user_scope_claim(user=operator_staff) == "*"
    assert set(user_client_permissions(user=operator_staff)) == {"client1", "client2"}


def test_method_the_view_does_not_implement_answers_405(as_user1, cluster1):
    assert as_user1.delete(f"{C1}/main").status_code == 405
    assert as_user1.get(f"{C1}/main/credentials/rotate").status_code == 405
    assert Cluster.objects.filter(pk=cluster1.pk).exists()


def test_view_without_required_permission_is_a_configuration_error(user):
    class UndeclaredView:
        kwargs: dict = {}

    request = APIRequestFactory().get("/")
    request.user = user
    with pytest.raises(ImproperlyConfigured):
        HasClientPermission().has_permission(request, UndeclaredView())


def test_head_needs_what_get_needs_and_options_describes_nothing(client_for, user1, user2, cluster1):
    assert client_for(user1).head(f"{C1}/main").status_code == 200
    assert client_for(user2).head(f"{C1}/main").status_code == 403
    for user in (user1, user2):
        response = client_for(user).options(f"{C1}/main")
        assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed")
