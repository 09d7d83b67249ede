"""The operators' admin writes through the services: validation, history and re-issue apply."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from django.contrib import admin as django_admin
from django.contrib.admin.sites import AdminSite
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from accounts.admin import UserAdmin
from accounts.models import User
from clusters.grant_admin import GrantInline
from clusters.models import Client, ClientAuditEvent, Cluster, ClusterChange, Grant, StorageExpansion
from clusters.selectors import cluster_credentials
from clusters.services import client_create, cluster_update, grant_set
from gitops.repository import (
    GitIdentity,
    branch_tip,
    commits_list,
    file_read,
)
from tests.conftest import portal_repository
from tests.helpers import admin_action_confirmed, form_as_submitted, hand_commit


def _inline_management(prefix: str, total: int, initial: int = 0) -> dict[str, str]:
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def test_the_cluster_form_offers_only_what_the_service_accepts(admin_browser, settings):
    """The browser's number inputs carry the service's bounds: 0 replicas is not offered."""
    settings.REPLICAS_MAX, settings.STORAGE_GI_MAX = 7, 500
    page = admin_browser.get("/admin/clusters/cluster/add/").content.decode()
    replicas = re.search(r'<input[^>]*name="replicas"[^>]*>', page).group(0)
    storage = re.search(r'<input[^>]*name="storage_gi"[^>]*>', page).group(0)
    assert 'min="1"' in replicas and 'max="7"' in replicas
    assert 'min="1"' in storage and 'max="500"' in storage


def test_creating_a_cluster_in_the_admin_goes_through_the_service(admin_browser, operator, client1, settings):
    response = admin_browser.post(
        "/admin/clusters/cluster/add/",
        {
            "client": client1.pk,
            "slug": "analytics",
            "replicas": "3",
            "version": settings.QDRANT_VERSIONS[0],
            "storage_gi": "20",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    cluster = Cluster.objects.get(client=client1, slug="analytics")
    assert (cluster.replicas, cluster.version, cluster.storage_gi) == (3, settings.QDRANT_VERSIONS[0], 20)
    change = cluster.changes.get()
    assert (change.action, change.actor) == ("create", operator)
    assert change.changes["replicas"] == [None, 3]
    assert cluster_credentials(cluster=cluster).api_key  # keys generated and decryptable


@pytest.mark.parametrize(
    ("field", "value"),
    [("replicas", "11"), ("replicas", "0"), ("version", "v0.0.1"), ("storage_gi", "100000")],
)
def test_admin_create_refuses_what_the_api_refuses(admin_browser, client1, field, value, settings):
    data = {"client": client1.pk, "slug": "bad", "replicas": "1", "version": settings.QDRANT_VERSIONS[0]}
    data["storage_gi"] = "10"
    data[field] = value
    response = admin_browser.post("/admin/clusters/cluster/add/", data)
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    assert not Cluster.objects.filter(slug="bad").exists()


def test_editing_a_cluster_in_the_admin_records_only_what_changed(admin_browser, operator, cluster1):
    response = admin_browser.post(
        f"/admin/clusters/cluster/{cluster1.pk}/change/",
        {"replicas": "4", "version": cluster1.version, "storage_gi": str(cluster1.storage_gi)},
    )
    assert response.status_code == 302
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 4
    change = ClusterChange.objects.get(action="update")
    assert change.changes == {"replicas": [2, 4]}
    assert change.actor == operator
    assert change.message == "client1/main: replicas 2 -> 4 (scale up)"


def test_admin_refuses_shrinking_storage(admin_browser, cluster1):
    response = admin_browser.post(
        f"/admin/clusters/cluster/{cluster1.pk}/change/",
        {"replicas": "2", "version": cluster1.version, "storage_gi": "5"},
    )
    assert response.status_code == 200
    assert "only grow" in str(response.context["adminform"].form.errors["storage_gi"])
    assert Cluster.objects.get(pk=cluster1.pk).storage_gi == 10
    assert not ClusterChange.objects.filter(action="update").exists()


@pytest.mark.parametrize("slug", ["Prod", "prod_eu", "prod-", "-prod", "a" * 41])
def test_admin_refuses_a_cluster_name_that_is_no_slug_on_the_form(admin_browser, client1, settings, slug):
    data = {"client": client1.pk, "slug": slug, "replicas": "1", "version": settings.QDRANT_VERSIONS[0]}
    response = admin_browser.post("/admin/clusters/cluster/add/", {**data, "storage_gi": "10"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["slug"]
    assert not Cluster.objects.filter(client=client1).exists()


def test_admin_refuses_a_name_too_long_for_kubernetes_on_the_form(admin_browser, settings):
    client = client_create(slug="c" * 30, name="Long names")
    data = {"client": client.pk, "slug": "s" * 30, "replicas": "1", "version": settings.QDRANT_VERSIONS[0]}
    response = admin_browser.post("/admin/clusters/cluster/add/", {**data, "storage_gi": "10"})
    assert response.status_code == 200
    assert "too long" in str(response.context["adminform"].form.errors["slug"])
    assert not Cluster.objects.filter(client=client).exists()


def test_admin_refuses_a_second_storage_size_while_one_waits(admin_browser, cluster1, user1):
    cluster_update(cluster=cluster1, actor=user1, storage_gi=20)
    response = admin_browser.post(
        f"/admin/clusters/cluster/{cluster1.pk}/change/",
        {"replicas": "2", "version": cluster1.version, "storage_gi": "30"},
    )
    assert response.status_code == 200
    assert "waiting" in str(response.context["adminform"].form.errors["storage_gi"])
    assert list(StorageExpansion.objects.values_list("requested_gi", flat=True)) == [20]


def test_a_refusal_the_form_could_not_foresee_is_a_message_and_saves_nothing(
    admin_browser, cluster1, user1, monkeypatch
):
    """Another request asks for storage between the form's check and the save (a race)."""
    import clusters.admin

    def racing_update(*, cluster, **changes):
        cluster_update(cluster=cluster, actor=user1, storage_gi=20)  # the other request
        return cluster_update(cluster=cluster, **changes)

    monkeypatch.setattr(clusters.admin, "cluster_update", racing_update)
    response = admin_browser.post(
        f"/admin/clusters/cluster/{cluster1.pk}/change/",
        {"replicas": "3", "version": cluster1.version, "storage_gi": "30"},
    )
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.non_field_errors()[0].startswith("Nothing was saved: ")
    assert (form.data["replicas"], form.data["storage_gi"]) == ("3", "30")  # the input is kept
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 2  # the operator's change: nothing of it
    assert list(StorageExpansion.objects.values_list("requested_gi", flat=True)) == [20]  # the other's


def test_cluster_list_and_change_pages_never_show_keys(admin_browser, cluster1):
    credentials = cluster_credentials(cluster=cluster1)
    secrets = [
        credentials.api_key,
        credentials.read_only_api_key,
        cluster1.api_key_encrypted,
        cluster1.read_only_api_key_encrypted,
    ]
    for url in ["/admin/clusters/cluster/", f"/admin/clusters/cluster/{cluster1.pk}/change/"]:
        page = admin_browser.get(url)
        assert page.status_code == 200
        for secret in secrets:
            assert secret not in page.content.decode()


def test_rotate_action_shows_the_new_keys_once_uncached_and_records_the_change(
    admin_browser, operator, cluster1
):
    old = cluster_credentials(cluster=cluster1)
    response = admin_action_confirmed(
        admin_browser, "/admin/clusters/cluster/", "rotate_credentials", [cluster1.pk], follow=True
    )

    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    new = cluster_credentials(cluster=Cluster.objects.get(pk=cluster1.pk))
    assert new.api_key != old.api_key and new.read_only_api_key != old.read_only_api_key
    page = response.content.decode()
    assert new.api_key in page and new.read_only_api_key in page
    assert old.api_key not in page
    change = ClusterChange.objects.get(action="credentials_rotate")
    assert change.actor == operator


def test_rotating_keys_from_the_list_asks_first_naming_every_cluster_and_does_nothing_until_confirmed(
    admin_browser, cluster1, cluster2
):
    """One click with "select all" rotated every cluster's keys; a one-key Qdrant's clients then fail."""
    before = {cluster.pk: cluster_credentials(cluster=cluster).api_key for cluster in (cluster1, cluster2)}
    chosen = {"action": "rotate_credentials", "_selected_action": [cluster1.pk, cluster2.pk]}
    asked = admin_browser.post("/admin/clusters/cluster/", chosen)
    page = asked.content.decode()
    assert asked.status_code == 200 and "every application using the old keys fails" in page
    assert str(cluster1) in page and str(cluster2) in page
    assert 'name="post" value="yes"' in page and page.count('name="_selected_action"') == 2
    assert not ClusterChange.objects.filter(action="credentials_rotate").exists()
    assert all(
        cluster_credentials(cluster=Cluster.objects.get(pk=pk)).api_key == key for pk, key in before.items()
    )

    answer = form_as_submitted(page, form_id="action-confirmation")  # "Yes, rotate their keys"
    done = admin_browser.post("/admin/clusters/cluster/", answer, follow=True)
    assert done.status_code == 200 and "New API keys" in done.content.decode()
    assert ClusterChange.objects.filter(action="credentials_rotate").count() == 2


def test_clusters_cannot_be_deleted_from_the_admin(admin_browser, cluster1):
    assert admin_browser.get(f"/admin/clusters/cluster/{cluster1.pk}/delete/").status_code == 403
    assert Cluster.objects.filter(pk=cluster1.pk).exists()


def test_change_history_is_read_only_in_the_admin(admin_browser, cluster1):
    change = cluster1.changes.get()
    assert admin_browser.get("/admin/clusters/clusterchange/").status_code == 200
    assert admin_browser.get("/admin/clusters/clusterchange/add/").status_code == 403
    assert admin_browser.get(f"/admin/clusters/clusterchange/{change.pk}/delete/").status_code == 403
    response = admin_browser.post(
        f"/admin/clusters/clusterchange/{change.pk}/change/", {"message": "rewritten"}
    )
    assert response.status_code == 403
    assert ClusterChange.objects.get(pk=change.pk).message == change.message


def test_the_change_history_filters_by_client(admin_browser, cluster1, cluster2):
    page = admin_browser.get(f"/admin/clusters/clusterchange/?client={cluster2.client.slug}")
    assert [change.cluster for change in page.context["cl"].result_list] == [cluster2]


def test_the_change_history_filters_by_delivery_and_a_storage_request_is_not_waiting(
    admin_browser, as_user1, cluster1, settings, tmp_path
):
    settings.GITOPS_REMOTE_URL = str(tmp_path / "no-such-remote.git")  # the scale waits for the remote
    as_user1.patch("/api/clients/client1/clusters/main", {"replicas": 3}, format="json")
    as_user1.patch("/api/clients/client1/clusters/main", {"storageGi": 20}, format="json")

    def listed(delivery: str) -> list[str]:
        page = admin_browser.get(f"/admin/clusters/clusterchange/?delivery={delivery}")
        return sorted(change.action for change in page.context["cl"].result_list)

    assert listed("waiting") == ["create", "update"]  # what the status page counts as pending
    assert listed("record") == ["storage_request"]
    assert listed("pushed") == []


def test_an_operator_adds_a_member_in_the_members_list_and_their_tokens_are_reissued(
    admin_browser, client1, user_factory
):
    user = user_factory()
    response = admin_browser.post(
        "/admin/clusters/grant/add/", {"user": user.pk, "client": client1.pk, "role": "viewer"}
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    assert Grant.objects.get(user=user, client=client1).role == "viewer"
    assert User.objects.get(pk=user.pk).claims_version == user.claims_version + 1


def test_creating_a_client_in_the_admin_commits_its_file_once_the_transaction_commits(
    admin_browser, operator, settings, django_capture_on_commit_callbacks
):
    path = "clients/acme/client.yaml"
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_browser.post(
            "/admin/clusters/client/add/",
            {
                "slug": "acme",
                "name": "Acme",
                "active": "on",
                **_inline_management("grants", 0),
                **_inline_management("sign_in_policy", 0),
                **_inline_management("clusters", 0),
            },
        )
        assert response.status_code == 302, response.content.decode()[:3000]
        assert not (Path(settings.GITOPS_REPO_PATH) / "HEAD").exists()  # nothing in git before the commit

    local = portal_repository(settings)
    assert yaml.safe_load(file_read(repository=local, file_path=path)) == {
        "slug": "acme",
        "name": "Acme",
        "namespace": "qdrant-acme",
        "active": True,
    }
    head = commits_list(repository=local)[0]
    assert head.message.splitlines()[0] == "acme: client created"
    assert head.author == GitIdentity(name=operator.name or operator.email, email="root@example.com")


@pytest.mark.django_db(transaction=True)
def test_creating_a_cluster_in_the_admin_commits_and_pushes_its_values_after_the_transaction(
    git_server, admin_browser, operator, client1, settings
):
    response = admin_browser.post(
        "/admin/clusters/cluster/add/",
        {
            "client": client1.pk,
            "slug": "analytics",
            "replicas": "3",
            "version": settings.QDRANT_VERSIONS[0],
            "storage_gi": "20",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    change = ClusterChange.objects.get(cluster__slug="analytics")
    assert change.pushed and change.commit == branch_tip(repository=git_server)
    values = yaml.safe_load(
        file_read(repository=git_server, file_path="clients/client1/analytics/values.yaml")
    )
    assert (values["replicaCount"], values["image"]["tag"], values["persistence"]["size"]) == (
        3,
        settings.QDRANT_VERSIONS[0],
        "20Gi",
    )
    head = commits_list(repository=git_server)[0]
    assert head.author == GitIdentity(name=operator.name or operator.email, email="root@example.com")


def _cluster_form(cluster: Cluster, **fields) -> dict[str, str]:
    return {
        "replicas": str(cluster.replicas),
        "version": cluster.version,
        "storage_gi": str(cluster.storage_gi),
    } | {name: str(value) for name, value in fields.items()}


@pytest.mark.django_db(transaction=True)
def test_an_admin_change_git_cannot_apply_is_refused_on_the_page_and_nothing_is_kept(
    git_server, admin_browser, cluster1, settings
):
    """As the API's 409: a values file edited by hand so that the change cannot be applied."""
    hand_commit(
        portal_repository(settings), "clients/client1/main/values.yaml", b"replicaCount: 2\nimage: nginx\n"
    )
    changes_before = ClusterChange.objects.count()

    response = admin_browser.post(
        f"/admin/clusters/cluster/{cluster1.pk}/change/", _cluster_form(cluster1, replicas=3)
    )

    assert response.status_code == 200
    error = response.context["adminform"].form.non_field_errors()[0]
    assert error.startswith("Nothing was saved: ") and "clients/client1/main/values.yaml" in error
    assert Cluster.objects.get(pk=cluster1.pk).replicas == 2
    assert ClusterChange.objects.count() == changes_before


@pytest.mark.django_db(transaction=True)
def test_an_admin_change_the_remote_did_not_take_is_saved_with_a_warning(
    admin_browser, cluster1, settings, tmp_path
):
    settings.GITOPS_REMOTE_URL = str(tmp_path / "not-there.git")

    response = admin_browser.post(
        f"/admin/clusters/cluster/{cluster1.pk}/change/", _cluster_form(cluster1, replicas=3), follow=True
    )

    assert Cluster.objects.get(pk=cluster1.pk).replicas == 3
    change = ClusterChange.objects.filter(cluster=cluster1).latest("id")
    assert change.commit and not change.pushed
    shown = [(message.level_tag, str(message)) for message in response.context["messages"]]
    assert any(level == "warning" and "not pushed yet" in text for level, text in shown), shown


@pytest.mark.django_db(transaction=True)
def test_a_cluster_added_while_the_local_repository_fails_is_not_said_to_be_committed(
    admin_browser, client1, settings, tmp_path
):
    broken = tmp_path / "a-file-not-a-repository"
    broken.write_text("")
    settings.GITOPS_REPO_PATH = str(broken)
    data = {"client": client1.pk, "slug": "analytics", "replicas": "1", "storage_gi": "10"}
    response = admin_browser.post(
        "/admin/clusters/cluster/add/", {**data, "version": settings.QDRANT_VERSIONS[0]}, follow=True
    )
    assert not Cluster.objects.get(slug="analytics").changes.get().commit
    shown = [(message.level_tag, str(message)) for message in response.context["messages"]]
    warnings = [text for level, text in shown if level == "warning"]
    assert len(warnings) == 1 and "not committed to git yet" in warnings[0], shown
    assert "not pushed yet" not in warnings[0]


@pytest.mark.django_db(transaction=True)
def test_saving_a_client_unchanged_in_the_admin_makes_no_commit(
    admin_browser, client1, user_factory, settings
):
    local = portal_repository(settings)
    tip = branch_tip(repository=local)
    response = admin_browser.post(
        f"/admin/clusters/client/{client1.pk}/change/",
        {
            "name": "Client One",
            "active": "on",
            **_inline_management("sign_in_policy", 0),
            **_inline_management("clusters", 0),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert branch_tip(repository=local) == tip


def test_a_client_renamed_with_a_text_direction_override_is_refused_on_the_form(admin_browser, client1):
    response = admin_browser.post(
        f"/admin/clusters/client/{client1.pk}/change/",
        {
            "name": "Client\u202eenO",
            "active": "on",
            **_inline_management("grants", 0),
            **_inline_management("sign_in_policy", 0),
            **_inline_management("clusters", 0),
        },
    )

    assert response.status_code == 200
    assert "Use visible characters only" in response.content.decode()
    client1.refresh_from_db()
    assert client1.name == "Client One"


def test_the_members_list_changes_and_removes_grants_through_the_services(
    admin_browser, client1, user_factory
):
    keep, drop, also = user_factory(), user_factory(), user_factory()
    keep_grant = grant_set(user=keep, client=client1, role="viewer")
    drop_grant = grant_set(user=drop, client=client1, role="operator")
    also_grant = grant_set(user=also, client=client1, role="viewer")
    versions = {u.pk: User.objects.get(pk=u.pk).claims_version for u in (keep, drop, also)}

    changed = admin_browser.post(f"/admin/clusters/grant/{keep_grant.pk}/change/", {"role": "operator"})
    removed = admin_browser.post(f"/admin/clusters/grant/{drop_grant.pk}/delete/", {"post": "yes"})
    bulk = admin_browser.post(
        "/admin/clusters/grant/",
        {"action": "delete_selected", "_selected_action": [also_grant.pk], "post": "yes"},
    )

    assert (changed.status_code, removed.status_code, bulk.status_code) == (302, 302, 302)
    assert Grant.objects.get(user=keep, client=client1).role == "operator"
    assert not Grant.objects.filter(user__in=[drop, also], client=client1).exists()
    for user in (keep, drop, also):
        assert User.objects.get(pk=user.pk).claims_version == versions[user.pk] + 1
    assert ClientAuditEvent.objects.filter(type="member_removed").count() == 2


def test_deactivating_a_client_in_the_admin_reissues_its_users_tokens(admin_browser, client1, user1):
    before = User.objects.get(pk=user1.pk).claims_version
    response = admin_browser.post(
        f"/admin/clusters/client/{client1.pk}/change/",
        {
            "name": "Client One",
            **_inline_management("grants", 0),
            **_inline_management("sign_in_policy", 0),
            **_inline_management("clusters", 0),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Client.objects.get(pk=client1.pk).active is False
    assert User.objects.get(pk=user1.pk).claims_version == before + 1


def test_grant_inline_works_on_the_user_admin(operator, user_factory):
    # accounts.admin owns UserAdmin; it adds GrantInline. Check the inline on a site of our own.
    site = AdminSite(name="grant-inline-test")
    site.register(Client, django_admin.site._registry[Client].__class__)
    user_admin = type("UserAdminWithGrants", (UserAdmin,), {"inlines": [GrantInline]})(User, site)
    client = client_create(slug="acme", name="Acme")
    user = user_factory()
    request = RequestFactory().get("/")
    request.user = operator

    [formset_class] = [formset for formset, _ in user_admin.get_formsets_with_inlines(request, user)]
    formset = formset_class(
        data={
            **_inline_management("grants", 1),
            "grants-0-client": client.pk,
            "grants-0-role": "operator",
        },
        instance=user,
        prefix="grants",
    )
    assert list(formset.forms[0].fields) >= ["client", "role"]
    assert formset.is_valid(), formset.errors
    formset.save()

    assert Grant.objects.get(user=user, client=client).role == "operator"
    assert User.objects.get(pk=user.pk).claims_version == user.claims_version + 1


def test_the_client_page_asks_for_no_more_than_one_query_per_member(admin_browser, client1, user_factory):
    """Each member's autocomplete widget looks up its user once; nothing else grows with the team."""

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_browser.get(f"/admin/clusters/client/{client1.pk}/change/").status_code == 200
        return len(captured.captured_queries)

    grant_set(user=user_factory(email="m0@example.com"), client=client1, role=Grant.Role.VIEWER)
    one_member = queries()
    for number in range(1, 11):
        grant_set(user=user_factory(email=f"m{number}@example.com"), client=client1, role=Grant.Role.VIEWER)

    assert queries() - one_member <= 10


def test_the_cluster_list_without_argo_cd_asks_nothing_per_row(admin_browser, client1, settings):
    from clusters.services import cluster_create

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_browser.get("/admin/clusters/cluster/").status_code == 200
        return len(captured.captured_queries)

    assert not settings.ARGOCD_URL
    cluster_create(client=client1, slug="first", actor=None)
    one_cluster = queries()
    for number in range(5):
        cluster_create(client=client1, slug=f"more{number}", actor=None)

    assert queries() == one_cluster


def test_the_client_page_asks_nothing_per_cluster(admin_browser, client1):
    from clusters.services import cluster_create

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_browser.get(f"/admin/clusters/client/{client1.pk}/change/").status_code == 200
        return len(captured.captured_queries)

    cluster_create(client=client1, slug="first", actor=None)
    one_cluster = queries()
    for number in range(5):
        cluster_create(client=client1, slug=f"more{number}", actor=None)

    assert queries() <= one_cluster
