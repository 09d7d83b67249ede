"""The admin answers filters and selections no page offers as Django answers an unknown filter
(the list again, with ?e=1) or with a message: never a 500, on every portal model admin."""

from __future__ import annotations

import pytest
from django.contrib import admin

from accounts.models import User


def _changelists() -> list[str]:
    return sorted(
        f"/admin/{model._meta.app_label}/{model._meta.model_name}/" for model in admin.site._registry
    )


@pytest.fixture
def superuser_browser(client, user_factory):
    client.force_login(user_factory(email="root@example.com", is_staff=True, is_superuser=True))
    return client


def _date_fields(path: str) -> list[str]:
    model = next(
        m for m in admin.site._registry if path.endswith(f"/{m._meta.app_label}/{m._meta.model_name}/")
    )
    return [f.name for f in model._meta.fields if f.get_internal_type() in {"DateTimeField", "DateField"}]


@pytest.mark.parametrize("path", _changelists())
def test_a_year_no_calendar_has_is_an_unknown_filter(superuser_browser, path):
    fields = _date_fields(path)
    if not fields:
        pytest.skip("no date on this model")
    response = superuser_browser.get(f"{path}?{fields[0]}__year=99999")
    assert response.status_code == 302 and response["Location"].endswith("?e=1"), response.status_code


@pytest.mark.parametrize("path", _changelists())
@pytest.mark.parametrize("selected", ["abc", "9" * 30], ids=["not-a-number", "past-any-column"])
def test_an_action_on_ids_no_page_offered_does_nothing(superuser_browser, path, selected):
    if path.endswith("/systemstatus/"):
        pytest.skip("a page, not a list of rows")
    model = next(
        m for m in admin.site._registry if path.endswith(f"/{m._meta.app_label}/{m._meta.model_name}/")
    )
    before = model._default_manager.count()
    response = superuser_browser.post(
        path, {"action": "delete_selected", "_selected_action": [selected], "index": "0"}, follow=True
    )
    assert response.status_code == 200
    assert model._default_manager.count() == before


def test_the_operator_is_told_the_selection_was_not_offered(superuser_browser):
    response = superuser_browser.post(
        "/admin/accounts/user/", {"action": "delete_selected", "_selected_action": ["abc"]}, follow=True
    )
    assert "The selection is not one this page offered: nothing was done." in response.content.decode()
    assert User.objects.filter(email="root@example.com").exists()


def test_a_list_without_filters_keeps_its_own_bugs_visible(superuser_browser, monkeypatch):
    """Only hand-made filters are taken for bad input: a bug on a plain list still fails loudly."""
    from accounts.admin import SessionAdmin

    def broken(self, request):
        raise ValueError("a bug in the admin")

    monkeypatch.setattr(SessionAdmin, "get_queryset", broken)
    with pytest.raises(ValueError, match="a bug in the admin"):
        superuser_browser.get("/admin/accounts/session/")


def test_a_refused_filter_is_logged_with_its_reason(superuser_browser, caplog):
    with caplog.at_level("WARNING", logger="config.admin_errors"):
        superuser_browser.get("/admin/accounts/personalaccesstoken/?created_at__year=99999")
    (record,) = [r for r in caplog.records if r.name == "config.admin_errors"]
    assert "year 99999 is out of range" in record.getMessage()


@pytest.mark.parametrize(
    ("selected", "told"),
    [("abc", "is not a valid value."), ("9" * 30, "Select a valid choice.")],
    ids=["not-a-number", "past-any-column"],
)
def test_a_group_no_page_offered_is_a_form_error_and_changes_nothing(
    superuser_browser, user_factory, selected, told
):
    member = user_factory(email="member@example.com")
    form = {"email": member.email, "name": "Renamed", "is_active": "on", "groups": [selected]}

    response = superuser_browser.post(f"/admin/accounts/user/{member.pk}/change/", form)

    assert response.status_code == 200
    assert told in response.content.decode()
    member.refresh_from_db()
    assert member.name != "Renamed" and not member.groups.exists()


def test_a_permission_no_page_offered_is_a_form_error_on_a_group(superuser_browser):
    response = superuser_browser.post("/admin/auth/group/add/", {"name": "ops", "permissions": ["9" * 30]})

    assert response.status_code == 200
    assert "Select a valid choice." in response.content.decode()


def _add_pages_with_a_search_box() -> list[tuple[str, str]]:
    """(add page, field) for every foreign key the admin offers as a search box (autocomplete)."""
    return sorted(
        (f"/admin/{model._meta.app_label}/{model._meta.model_name}/add/", field)
        for model, model_admin in admin.site._registry.items()
        for field in model_admin.autocomplete_fields
    )


@pytest.mark.parametrize(("path", "field"), _add_pages_with_a_search_box())
@pytest.mark.parametrize(
    "value", ["abc", "1.5", "9" * 30], ids=["not-a-number", "a-fraction", "past-any-column"]
)
def test_a_search_box_given_a_value_no_page_offers_is_a_form_error(superuser_browser, path, field, value):
    """The page is shown again with "select a valid choice", not a 500 from asking the database."""
    response = superuser_browser.post(path, {field: value})
    if response.status_code == 403:
        pytest.skip("no add page")
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
