"""POST /api/check/ judges a URL by the host a browser would fetch (WHATWG parsing), so spellings that fool
Python's urlsplit do not slip an opted-out work or domain through."""

import pytest

from optout import services
from optout.models import ClaimStatus
from tests.optout.conftest import client_for
from tests.optout.factories import DomainClaimFactory
from tests.provenance.factories import AssetFactory


@pytest.fixture
def victim_domain_optout(artist):
    DomainClaimFactory(artist=artist, domain="victim.org", status=ClaimStatus.VERIFIED)
    optout, _ = services.optout_create(artist=artist, scope="domain", domain="victim.org")
    assert optout.status == "active"
    return optout


def _verdicts(user, urls: list[str]) -> dict[str, bool]:
    items = [{"url": url, "key": url} for url in urls]
    response = client_for(user).post("/api/check/", {"items": items}, format="json")
    assert response.status_code == 200
    return {r["key"]: r["allowed"] for r in response.json()["results"]}


def test_spellings_of_an_opted_out_domain_are_denied(victim_domain_optout, other_artist):
    tricks = [
        "http://victim.org\\@evil.com/x",  # urlsplit reads evil.com; a browser fetches victim.org
        "http://victim.org%2e/x",
        "http://evil.com@victim.org/x",
        "http://ｖｉｃｔｉｍ．ｏｒｇ/x",
        "http://vic\ttim.org/x",
        "https://cdn.victim.org\\@evil.com/x",
    ]
    assert _verdicts(other_artist, tricks) == dict.fromkeys(tricks, False)


def test_a_url_that_only_mentions_the_domain_in_its_user_info_is_allowed(victim_domain_optout, other_artist):
    urls = ["http://victim.org:80@evil.com/x", "http://victim.org@evil.com/x"]
    assert _verdicts(other_artist, urls) == dict.fromkeys(urls, True)


def test_an_opted_out_work_is_denied_under_user_info_and_dot_segments(artist, other_artist, operator):
    work = AssetFactory(url="https://victim.org/art/cat.png")
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work.pk])
    services.optout_approve(optout=optout, operator=operator)
    urls = ["http://evil.com@victim.org/art/cat.png", "https://victim.org/art/x/../cat.png",
            "https://victim.org/art/%2e/cat.png", "http://victim.org\\art\\cat.png"]  # fmt: skip
    assert _verdicts(other_artist, urls) == dict.fromkeys(urls, False)
