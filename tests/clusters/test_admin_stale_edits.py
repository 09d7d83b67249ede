"""Two operators on the same admin page: a save from a page opened before the other's save undoes
nothing of it. The page carries what it showed; a field stored differently since refuses the
save, with nothing written, and says to reload (config/admin_stale_edits.py)."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client as BrowserClient

from accounts.models import User
from clusters.models import Client, Cluster, ClusterChange, Grant, SignInPolicy
from clusters.services import cluster_update, grant_set
from gitops.repository import branch_tip
from tests.conftest import portal_repository
from tests.helpers import change_page_form, concurrent_writers_required, race

STALE = "was changed by someone else while you edited: reload the page to see it."


@pytest.fixture
def second_browser(user_factory) -> BrowserClient:
    """Another operator's browser, signed in to the admin next to ``admin_browser``."""
    pavel = user_factory(email="pavel@example.com", is_staff=True, is_superuser=True, is_operator=True)
    browser = BrowserClient()
    browser.force_login(pavel)
    return browser


def _errors(response) -> str:
    assert response.status_code == 200, response.get("Location")
    form = response.context["adminform"].form
    inline_errors = [str(inline.formset.errors) for inline in response.context["inline_admin_formsets"]]
    return " ".join([str(form.errors), *inline_errors])


@pytest.fixture
def cluster(cluster1) -> Cluster:
    """client1/main at 3 replicas, on a version with an upgrade to offer."""
    return _running(cluster1, replicas=3, version="v1.18.3")


def _running(cluster: Cluster, **spec) -> Cluster:
    """``cluster`` at ``spec`` in the database and in git alike (a change is refused over a value
    git holds otherwise: edited by hand)."""
    Cluster.objects.filter(pk=cluster.pk).update(**spec)
    call_command("gitops_sync", stdout=StringIO())
    return Cluster.objects.get(pk=cluster.pk)


def _cluster_url(cluster: Cluster) -> str:
    return f"/admin/clusters/cluster/{cluster.pk}/change/"


def test_a_stale_cluster_page_cannot_undo_a_scale_down_made_meanwhile(admin_browser, second_browser, cluster):
    """Olga removed a Qdrant peer and scaled down; Pavel's page still showed 3 replicas, and he
    changed only the version: his save used to re-add the pod, unconfirmed ("scale up")."""
    url = _cluster_url(cluster)
    olga, pavel = (
        change_page_form(admin_browser, url, "cluster_form"),
        change_page_form(second_browser, url, "cluster_form"),
    )
    olga.update(replicas=["2"], confirm_scale_down=["on"])
    assert admin_browser.post(url, olga).status_code == 302

    pavel["version"] = ["v1.19.0"]
    refused = second_browser.post(url, pavel)

    assert f"“Replicas” {STALE}" in _errors(refused)
    stored = Cluster.objects.get(pk=cluster.pk)
    assert (stored.replicas, stored.version) == (2, "v1.18.3")
    assert ClusterChange.objects.filter(cluster=cluster, action="update").count() == 1  # Olga's alone

    # Reloaded, the page shows 2 replicas: the same edit now changes the version and nothing else.
    again = change_page_form(second_browser, url, "cluster_form")
    again["version"] = ["v1.19.0"]
    assert second_browser.post(url, again).status_code == 302
    stored = Cluster.objects.get(pk=cluster.pk)
    assert (stored.replicas, stored.version) == (2, "v1.19.0")
    assert ClusterChange.objects.filter(cluster=cluster).latest("id").changes == {
        "version": ["v1.18.3", "v1.19.0"]
    }


def test_a_cluster_page_is_checked_against_the_row_the_save_locks(
    admin_browser, cluster, user_factory, monkeypatch
):
    """Another operator's change lands after the form was checked, before the save: the save's
    own look at the row refuses it, and the page says why."""
    import clusters.admin

    olga = user_factory(email="olga@example.com", is_staff=True, is_operator=True)
    real_update = clusters.admin.cluster_update

    def another_save_first(*, cluster, **changes):
        cluster_update(cluster=cluster, actor=olga, replicas=2, confirm=True)
        return real_update(cluster=cluster, **changes)

    monkeypatch.setattr(clusters.admin, "cluster_update", another_save_first)
    url = _cluster_url(cluster)
    form = change_page_form(admin_browser, url, "cluster_form")
    form["version"] = ["v1.19.0"]

    response = admin_browser.post(url, form)

    assert response.status_code == 200
    assert f"Nothing was saved: “Replicas” {STALE}" in response.context["adminform"].form.non_field_errors()
    stored = Cluster.objects.get(pk=cluster.pk)
    assert (stored.replicas, stored.version) == (2, "v1.18.3")


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_operators_saving_the_same_cluster_at_once_never_both_win(
    admin_browser, second_browser, cluster1
):
    """Both pages show the same cluster; one scales it, the other changes its version. Whichever
    save takes the row first is kept; the other is refused, never written over it."""
    concurrent_writers_required()
    url = _cluster_url(cluster1)
    for attempt in range(4):
        before = _running(cluster1, replicas=3, version="v1.18.3")
        olga, pavel = (
            change_page_form(admin_browser, url, "cluster_form"),
            change_page_form(second_browser, url, "cluster_form"),
        )
        olga.update(replicas=["4"])
        pavel.update(version=["v1.19.0"])

        saved = race(
            lambda olga=olga: admin_browser.post(url, olga),
            lambda pavel=pavel: second_browser.post(url, pavel),
        )

        codes = sorted(response.status_code for response in saved)
        assert codes == [200, 302], (attempt, codes, [_errors(r) for r in saved if r.status_code == 200])
        after = Cluster.objects.get(pk=cluster1.pk)
        olga_won = saved[0].status_code == 302
        assert (after.replicas, after.version) == ((4, before.version) if olga_won else (3, "v1.19.0"))
        assert STALE in _errors(saved[1] if olga_won else saved[0])


@pytest.mark.django_db(transaction=True)  # the client's file is committed once its row is
def test_a_stale_client_page_cannot_reactivate_a_client_deactivated_meanwhile(
    admin_browser, second_browser, client1, settings
):
    url = f"/admin/clusters/client/{client1.pk}/change/"
    olga, pavel = (
        change_page_form(admin_browser, url, "client_form"),
        change_page_form(second_browser, url, "client_form"),
    )
    del olga["active"]  # unticked
    assert admin_browser.post(url, olga).status_code == 302
    tip = branch_tip(repository=portal_repository(settings))

    pavel["name"] = ["Client One Corporation"]
    refused = second_browser.post(url, pavel)

    assert f"“Active” {STALE}" in _errors(refused)
    client1.refresh_from_db()
    assert (client1.active, client1.name) == (False, "Client One")
    assert branch_tip(repository=portal_repository(settings)) == tip  # nothing committed either


def test_a_stale_client_page_cannot_loosen_a_sign_in_policy_tightened_meanwhile(
    admin_browser, second_browser, client1
):
    SignInPolicy.objects.create(client=client1, allowed_methods=["password", "google", "passkey"])
    url = f"/admin/clusters/client/{client1.pk}/change/"
    olga, pavel = (
        change_page_form(admin_browser, url, "client_form"),
        change_page_form(second_browser, url, "client_form"),
    )
    olga["sign_in_policy-0-mfa_required"] = ["on"]
    assert admin_browser.post(url, olga).status_code == 302

    pavel["sign_in_policy-0-max_session_length"] = ["8:00:00"]
    refused = second_browser.post(url, pavel)

    assert f"“Second factor required” {STALE}" in _errors(refused)
    policy = SignInPolicy.objects.get(client=client1)
    assert (policy.mfa_required, policy.max_session_length) == (True, None)

    # A stale page whose policy the operator left alone saves the client, and writes no policy.
    untouched = change_page_form(second_browser, url, "client_form")
    SignInPolicy.objects.filter(client=client1).update(max_session_length=timedelta(hours=12))
    untouched["name"] = ["Client One Corporation"]
    assert second_browser.post(url, untouched).status_code == 302
    policy.refresh_from_db()
    assert (policy.mfa_required, str(policy.max_session_length)) == (True, "12:00:00")
    assert Client.objects.get(pk=client1.pk).name == "Client One Corporation"


def test_a_stale_grant_page_cannot_undo_a_role_change_made_meanwhile(
    admin_browser, second_browser, client1, user1, operator
):
    grant = Grant.objects.get(user=user1, client=client1)
    url = f"/admin/clusters/grant/{grant.pk}/change/"
    pavel = change_page_form(second_browser, url, "grant_form")
    grant_set(user=user1, client=client1, role="viewer", actor=operator)  # Olga demotes them

    pavel["role"] = ["admin"]
    refused = second_browser.post(url, pavel)

    assert f"“Role” {STALE}" in _errors(refused)
    assert Grant.objects.get(pk=grant.pk).role == "viewer"


def test_a_stale_grant_row_on_a_users_page_cannot_undo_a_role_change_made_meanwhile(
    second_browser, client1, user1, operator
):
    url = f"/admin/accounts/user/{user1.pk}/change/"
    pavel = change_page_form(second_browser, url, "user_form")
    grant_set(user=user1, client=client1, role="viewer", actor=operator)
    prefix = next(name for name in pavel if name.endswith("-0-role") and not name.startswith("initial-"))

    pavel[prefix] = ["admin"]
    refused = second_browser.post(url, pavel)

    assert f"“Role” {STALE}" in _errors(refused)
    assert Grant.objects.get(user=user1, client=client1).role == "viewer"
    assert User.objects.get(pk=user1.pk).is_active


# --- A cluster decommissioned meanwhile ----------------------------------------------------------


def _decommissioned_said(response, cluster: Cluster) -> str:
    assert response.redirect_chain[-1] == (_cluster_url(cluster), 302), response.redirect_chain
    [said] = [str(message) for message in response.context["messages"]]
    return said


def test_saving_a_cluster_decommissioned_meanwhile_says_so(second_browser, cluster, user_factory):
    """Not "Not allowed … ask for permissions": the operator may change clusters, this one is stopped."""
    from clusters.services import cluster_decommission

    olga = user_factory(email="olga@example.com", is_staff=True, is_operator=True)
    url = _cluster_url(cluster)
    pavel = change_page_form(second_browser, url, "cluster_form")
    cluster_decommission(cluster=cluster, actor=olga)

    pavel["replicas"] = ["4"]
    response = second_browser.post(url, pavel, follow=True)

    said = _decommissioned_said(response, cluster)
    assert said.startswith(f"Cluster {cluster} was decommissioned at ") and said.endswith(
        " UTC by olga@example.com: nothing was saved."
    )
    assert Cluster.objects.get(pk=cluster.pk).replicas == 3


def test_a_cluster_decommissioned_between_the_check_and_the_save_says_so_too(
    admin_browser, cluster, user_factory, monkeypatch
):
    import clusters.admin
    from clusters.services import cluster_decommission

    olga = user_factory(email="olga@example.com", is_staff=True, is_operator=True)
    real_update = clusters.admin.cluster_update

    def decommissioned_first(*, cluster, **changes):
        cluster_decommission(cluster=cluster, actor=olga)
        return real_update(cluster=cluster, **changes)

    monkeypatch.setattr(clusters.admin, "cluster_update", decommissioned_first)
    url = _cluster_url(cluster)
    form = change_page_form(admin_browser, url, "cluster_form")
    form["replicas"] = ["4"]

    response = admin_browser.post(url, form, follow=True)

    assert "by olga@example.com: nothing was saved." in _decommissioned_said(response, cluster)
    assert ClusterChange.objects.filter(cluster=cluster, action="update").count() == 0


# --- A grant removed meanwhile -------------------------------------------------------------------

GRANT_GONE = "was removed by someone else while you edited: reload the page to see their grants."


def _grant_row(form: dict[str, list[str]]) -> str:
    return next(name for name in form if name.endswith("-0-role") and not name.startswith("initial-"))


def test_changing_a_grant_removed_meanwhile_says_so_on_the_page(second_browser, client2, user2, operator):
    from clusters.services import grant_remove

    url = f"/admin/accounts/user/{user2.pk}/change/"
    pavel = change_page_form(second_browser, url, "user_form")
    grant_remove(user=user2, client=client2, actor=operator)  # Olga ticked Delete and saved

    pavel[_grant_row(pavel)] = ["viewer"]
    refused = second_browser.post(url, pavel)

    assert refused.status_code == 200
    page = refused.content.decode()
    assert (
        f"Nothing was saved: client2@example.com’s grant in row 1 {GRANT_GONE}" in page
    )  # shown, not only "correct the errors"
    assert not Grant.objects.filter(user=user2).exists()


def test_a_grant_removed_between_the_check_and_the_save_is_not_brought_back(
    admin_browser, client2, user2, operator, monkeypatch
):
    import clusters.grant_admin
    from clusters.services import grant_remove

    checked = clusters.grant_admin.grant_edit_check

    def removed_after_the_check(**kwargs):
        checked(**kwargs)
        grant_remove(user=user2, client=client2, actor=operator)

    monkeypatch.setattr(clusters.grant_admin, "grant_edit_check", removed_after_the_check)
    url = f"/admin/accounts/user/{user2.pk}/change/"
    form = change_page_form(admin_browser, url, "user_form")
    form[_grant_row(form)] = ["viewer"]

    response = admin_browser.post(url, form)

    assert response.status_code == 200
    assert f"Nothing was saved: client2@example.com’s grant on client2 {GRANT_GONE}" in (
        response.context["adminform"].form.non_field_errors()
    )
    assert not Grant.objects.filter(user=user2).exists()  # grant_set would have made it anew
