"""One URL style for the API: every route under /api/ ends with a slash, and any other spelling answers a JSON 404
in the API's error shape, for every method alike (never a redirect that would drop a POST's body)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver


def _routes(patterns, prefix: str = ""):
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            yield route


def test_every_api_route_ends_with_a_slash():
    api = [r for r in _routes(get_resolver().url_patterns) if r.startswith("api/") and r != "^api/"]
    assert len(api) >= 35
    assert [r for r in api if not r.endswith("/")] == []


@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
@pytest.mark.django_db
def test_the_unslashed_spelling_is_a_json_404_naming_the_right_url_for_every_method(method):
    response = getattr(Client(enforce_csrf_checks=True), method)(
        "/api/check", content_type="application/json"
    )
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["extra"] == {"url": "/api/check/"}
    assert "/api/check/" in response.json()["message"]


@pytest.mark.django_db
def test_an_unknown_api_path_is_a_json_404_without_a_suggestion():
    response = Client().get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"message": "No API endpoint at /api/no-such-thing/.", "extra": {}}


@pytest.mark.django_db
def test_pages_still_redirect_to_their_slashed_address():
    response = Client().get("/accounts/login")
    assert response.status_code == 301
    assert response["Location"] == "/accounts/login/"


@pytest.mark.django_db
def test_the_slashed_spelling_reaches_the_endpoint():
    assert Client().get("/api/signals/", {"host": "art.example.test"}).status_code == 200
