"""Permission matrix: owner, another artist, anonymous and an operator against every opt-out endpoint.
Nobody reads or writes another artist's opt-outs or claims; review is for operators only."""

import pytest
from django.urls import reverse

from optout import services
from optout.models import OptOut
from tests.optout.conftest import client_for
from tests.provenance.factories import AssetFactory, ContributorFactory

ROLES = ["owner", "other", "anonymous", "operator"]


@pytest.fixture
def world(artist, other_artist, operator):
    work = AssetFactory()
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work.pk])
    domain_claim, _ = services.domain_claim_create(artist=artist, domain="owner.example.org")
    contributor_claim, _ = services.contributor_claim_create(
        artist=artist, contributor_id=ContributorFactory().pk
    )
    users = {"owner": artist, "other": other_artist, "anonymous": None, "operator": operator}
    return {"optout": optout, "work": work, "domain_claim": domain_claim,
            "contributor_claim": contributor_claim, "users": users}  # fmt: skip


# (method, url name, kwargs key, body, expected status per role)
CASES = [
    ("get", "optout-list", None, None, {"owner": 200, "other": 200, "anonymous": 401, "operator": 200}),
    ("get", "optout-detail", "optout", None, {"owner": 200, "other": 404, "anonymous": 401, "operator": 200}),
    ("get", "optout-history", "optout", None, {"owner": 200, "other": 404, "anonymous": 401, "operator": 200}),
    ("post", "optout-revoke", "optout", {}, {"owner": 200, "other": 404, "anonymous": 401, "operator": 403}),
    ("post", "optout-approve", "optout", {}, {"owner": 403, "other": 404, "anonymous": 401, "operator": 200}),
    ("post", "optout-reject", "optout", {}, {"owner": 403, "other": 404, "anonymous": 401, "operator": 200}),
    ("get", "domain-claim-list", None, None, {"owner": 200, "other": 200, "anonymous": 401, "operator": 200}),
    ("get", "domain-claim-detail", "domain_claim", None,
     {"owner": 200, "other": 404, "anonymous": 401, "operator": 200}),
    ("post", "domain-claim-verify", "domain_claim", {},
     {"owner": 400, "other": 404, "anonymous": 401, "operator": 404}),
    ("get", "contributor-claim-list", None, None, {"owner": 200, "other": 200, "anonymous": 401, "operator": 200}),
    ("get", "contributor-claim-detail", "contributor_claim", None,
     {"owner": 200, "other": 404, "anonymous": 401, "operator": 200}),
    ("post", "contributor-claim-review", "contributor_claim", {"approve": True},
     {"owner": 403, "other": 403, "anonymous": 401, "operator": 200}),
    ("post", "optout-list", None, "create", {"owner": 201, "other": 201, "anonymous": 401, "operator": 201}),
    ("post", "optout-check", None, {"items": [{"sha256": "0" * 64}]},
     {"owner": 200, "other": 200, "anonymous": 401, "operator": 200}),
]  # fmt: skip


def _url(name, key, world):
    if key is None:
        return reverse(name)
    kwarg = "optout_id" if key == "optout" else "claim_id"
    return reverse(name, kwargs={kwarg: world[key].pk})


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("method", "name", "key", "body", "expected"), CASES, ids=[f"{c[0]} {c[1]}" for c in CASES]
)
def test_permission_matrix(world, role, method, name, key, body, expected, monkeypatch):
    from optout import verification

    # verification against a domain nobody serves: fails fast and clearly instead of waiting for DNS
    monkeypatch.setattr(verification, "fetch_http", lambda url: "")
    monkeypatch.setattr(verification, "resolve_txt", lambda name: [])
    if body == "create":
        body = {"scope": "works", "asset_ids": [AssetFactory(domain="free.example.net").pk]}
    client = client_for(world["users"][role])
    response = getattr(client, method)(_url(name, key, world), body, format="json")
    assert response.status_code == expected[role], response.content


def test_list_shows_only_the_callers_own_optouts(world):
    listed = client_for(world["users"]["other"]).get(reverse("optout-list")).json()
    assert listed["count"] == 0
    assert client_for(world["users"]["operator"]).get(reverse("optout-list")).json()["count"] == 1


def test_other_artist_cannot_revoke_and_state_is_unchanged(world):
    response = client_for(world["users"]["other"]).post(
        reverse("optout-revoke", kwargs={"optout_id": world["optout"].pk})
    )
    assert response.status_code == 404
    assert OptOut.objects.get(pk=world["optout"].pk).status == OptOut.Status.PENDING
