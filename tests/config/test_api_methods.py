"""The methods an API resource answers are the methods its ``Allow`` header offers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.views import APIView as DRFAPIView


def _api_views(patterns=None, prefix: str = "") -> Iterator[tuple[str, type[DRFAPIView], dict]]:
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from _api_views(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and isinstance(getattr(pattern.callback, "cls", None), type):
            if issubclass(pattern.callback.cls, DRFAPIView):
                yield prefix + str(pattern.pattern), pattern.callback.cls, pattern.callback.initkwargs


def test_no_api_resource_offers_options_in_its_allow_header():
    offered = {
        route: view_class(**initkwargs).allowed_methods for route, view_class, initkwargs in _api_views()
    }
    assert len(offered) > 40  # every API route, the OpenAPI document and its page included
    assert [route for route, methods in offered.items() if "OPTIONS" in methods] == []


def test_options_is_refused_with_an_allow_header_that_does_not_offer_it(client_for, user1, cluster1, client):
    for api, path in (
        (client_for(user1), "/api/clients/client1/clusters/main"),
        (client_for(user1), "/api/auth/me"),
        (client, "/api/auth/login"),
        (client, "/api/schema/"),
    ):
        response = api.options(path, HTTP_ACCEPT="application/json")
        assert (response.status_code, response.json()["code"]) == (405, "method_not_allowed"), path
        assert "OPTIONS" not in response["Allow"] and response["Allow"], path


@pytest.mark.parametrize("path", ["/api/schema/", "/api/docs/"])
@pytest.mark.parametrize(
    ("method", "headers", "status", "code"),
    [
        ("post", {}, 405, "method_not_allowed"),
        ("delete", {}, 405, "method_not_allowed"),
        ("get", {"HTTP_ACCEPT": "text/csv"}, 406, "not_acceptable"),
    ],
)
def test_the_documents_errors_are_the_apis_json_not_yaml_or_an_html_page(
    client, db, path, method, headers, status, code
):
    response = getattr(client, method)(path, **headers)

    assert (response.status_code, response["Content-Type"]) == (status, "application/json")
    assert response.json()["code"] == code and response.json()["detail"]


def test_the_documents_themselves_keep_their_formats(client, db):
    assert client.get("/api/schema/")["Content-Type"].startswith("application/vnd.oai.openapi")
    assert client.get("/api/docs/")["Content-Type"].startswith("text/html")
