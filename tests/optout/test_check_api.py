"""POST /api/check/: set-based lookups answering per item, immediately after state changes."""

import time

import pytest
from django.core.cache import cache
from django.urls import reverse

from optout import services
from provenance.hashing import phash_hex
from tests.optout.conftest import client_for
from tests.provenance.factories import AssetFactory

CHECK = "/api/check/"


@pytest.fixture(autouse=True, params=["memory", "database"])
def exact_key_store(request, settings):
    """Every check test runs twice: exact keys held in memory, and a registry too big for that (PostgreSQL)."""
    settings.OPTOUT_CHECK_MEMORY_KEYS = 2_000_000 if request.param == "memory" else 0
    return request.param


@pytest.fixture
def active_work(artist, operator):
    work = AssetFactory(url="https://art.example.org/works/cat.png")
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work.pk])
    services.optout_approve(optout=optout, operator=operator)
    return work, optout


def _check(user, items):
    return client_for(user).post(CHECK, {"items": items}, format="json")


def test_check_denies_each_key_kind_and_names_the_optout(active_work, other_artist):
    work, optout = active_work
    flipped_two_bits = work.phash ^ 0b101
    items = [
        {"sha256": work.sha256.upper(), "key": "by-sha"},
        {"url": "http://www.ART.example.org/works/cat.png/", "key": "by-url"},
        {"phash": flipped_two_bits, "key": "by-phash"},
        {"phash": phash_hex(work.phash), "key": "by-phash-hex"},
        {"url": "https://art.example.org/works/dog.png", "key": "free"},
        {"phash": work.phash ^ 0xFFFF, "key": "far"},
    ]
    response = _check(other_artist, items)
    assert response.status_code == 200
    results = {r["key"]: r for r in response.json()["results"]}
    assert [results[k]["match"] for k in ("by-sha", "by-url", "by-phash", "by-phash-hex")] == [
        "sha256", "url", "phash", "phash"
    ]  # fmt: skip
    assert all(results[k]["optout_id"] == optout.pk for k in ("by-sha", "by-url", "by-phash"))
    assert results["free"]["allowed"] and results["far"]["allowed"]
    assert response.json()["denied"] == 4


def test_domain_optout_denies_every_url_under_it(artist, other_artist):
    from optout.models import ClaimStatus
    from tests.optout.factories import DomainClaimFactory

    DomainClaimFactory(artist=artist, domain="art.example.org", status=ClaimStatus.VERIFIED)
    optout, _ = services.optout_create(artist=artist, scope="domain", domain="art.example.org")
    results = _check(
        other_artist,
        [{"url": "https://cdn.art.example.org/new/upload.jpg"}, {"url": "https://example.org/x"}],
    )
    assert [(r["allowed"], r["optout_id"]) for r in results.json()["results"]] == [
        (False, optout.pk),
        (True, None),
    ]


def test_revoked_optout_is_allowed_again_at_once(active_work, artist, other_artist):
    work, optout = active_work
    assert not _check(other_artist, [{"phash": work.phash}]).json()["results"][0]["allowed"]
    services.optout_revoke(optout=optout, artist=artist)
    started = time.perf_counter()
    assert _check(other_artist, [{"phash": work.phash}, {"sha256": work.sha256}]).json()["denied"] == 0
    assert time.perf_counter() - started < 1.0


def test_a_request_waiting_for_review_keeps_the_loaded_keys_and_its_approval_adds_its_own(
    active_work, artist, operator, other_artist
):
    from optout.published_keys import published_keys

    work, _optout = active_work
    _check(other_artist, [{"phash": work.phash}])
    loaded = published_keys()
    waiting = AssetFactory(url="https://art.example.org/works/dog.png")
    request, _ = services.optout_create(artist=artist, scope="works", asset_ids=[waiting.pk])
    assert request.status == "pending"
    assert published_keys() is loaded  # nothing read again
    assert _check(other_artist, [{"sha256": waiting.sha256}]).json()["denied"] == 0
    services.optout_approve(optout=request, operator=operator)
    applied = published_keys()
    assert (
        applied is not loaded and applied.phashes.index is loaded.phashes.index
    )  # from the log, not rebuilt
    assert _check(other_artist, [{"sha256": waiting.sha256}]).json()["denied"] == 1
    assert _check(other_artist, [{"phash": waiting.phash}]).json()["denied"] == 1


def test_more_than_the_limit_is_a_clear_400(other_artist, settings):
    settings.OPTOUT_CHECK_MAX_ITEMS = 10_000
    response = _check(other_artist, [{"sha256": "0" * 64}] * 10_001)
    assert response.status_code == 400
    assert "At most 10,000 items" in response.json()["message"]


@pytest.mark.parametrize(
    ("item", "index_message"),
    [({"sha256": "xyz"}, "sha256"), ({"url": "ftp://x"}, "url"), ({"phash": 2**70}, "phash"), ({}, "needs")],
)
def test_bad_items_name_their_index(other_artist, item, index_message):
    response = _check(other_artist, [{"sha256": "0" * 64}, item])
    assert response.status_code == 400
    assert response.json()["extra"] == {"index": 1} and index_message in response.json()["message"]


def test_check_is_throttled_per_token(other_artist, settings):
    settings.PROVENANT_THROTTLE_ENABLED = True
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"check": "2/minute"}}
    cache.clear()
    pipeline, second_pipeline = client_for(other_artist), client_for(other_artist)
    body = {"items": [{"sha256": "0" * 64}]}
    codes = [pipeline.post(CHECK, body, format="json").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    assert second_pipeline.post(CHECK, body, format="json").status_code == 200  # its own budget


def test_signup_and_login_are_throttled(settings, db):
    settings.PROVENANT_THROTTLE_ENABLED = True
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"signup": "1/hour", "login": "1/hour"},
    }
    cache.clear()
    client = client_for(None)
    body = {"username": "newartist", "email": "n@example.org", "password": "a long passphrase 42"}
    assert client.post(reverse("artist-signup"), body, format="json").status_code == 201
    assert client.post(reverse("artist-signup"), {**body, "username": "x2"}, format="json").status_code == 429
    login = {"username": "newartist", "password": "a long passphrase 42"}
    assert client.post(reverse("artist-login"), login, format="json").status_code == 200
    assert client.post(reverse("artist-login"), login, format="json").status_code == 429


def test_signup_gives_a_token_that_authenticates(db):
    client = client_for(None)
    body = {"username": "painter", "email": "p@example.org", "password": "a long passphrase 42"}
    token = client.post(reverse("artist-signup"), body, format="json").json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(reverse("optout-list")).status_code == 200
    wrong = client_for(None).post(
        reverse("artist-login"), {"username": "painter", "password": "nope"}, format="json"
    )
    assert wrong.status_code == 401
