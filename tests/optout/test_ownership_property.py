"""The ownership property, over every scope x every activation path x owner / non-owner: no key published by a
non-owner's opt-out denies a work a verified artist owns, in the check API, search, thumbnails, the asset API or a
manifest build; the owner's own opt-out of the same works is honoured by all of them.

Alice owns `alice.example.com` and the identity `alice_id` (her works `hosted`, on her domain, and `signed`,
under her identity on `shared.example.com`). Bob holds the identity `bob_id`, whose `rehost` has the very bytes and
pHash of Alice's `hosted`, and tries every path. `free` and `sub` belong to nobody."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.urls import reverse

from optout import services, verification
from optout.models import OptOut, SignerBinding
from optout.services import optouts as optouts_services
from tests.optout.conftest import client_for
from tests.optout.consumers import (
    check_url,
    denied_by_check,
    hidden_from_anonymous,
    kept_by_manifest_build,
    work,
)
from tests.provenance.factories import ContributorFactory

pytestmark = pytest.mark.usefixtures("consumer_files")


@dataclass
class World:
    alice: object
    bob: object
    operator: object
    monkeypatch: object
    works: dict
    ids: dict

    def verify_alice(self) -> None:
        domain_claim, _ = services.domain_claim_create(artist=self.alice, domain="alice.example.com")
        services.domain_claim_verify(
            claim=domain_claim, fetcher=lambda url: domain_claim.token, resolver=lambda n: []
        )
        claim, _ = services.contributor_claim_create(
            artist=self.alice, contributor_id=self.ids["alice_id"].pk
        )
        services.contributor_claim_review(claim=claim, reviewer=self.operator, approve=True)

    def post(self, user, body: dict) -> dict:
        response = client_for(user).post(reverse("optout-list"), body, format="json")
        assert response.status_code in (200, 201, 409), response.content
        return response.json()

    def approve(self, optout_id: int) -> int:
        return (
            client_for(self.operator)
            .post(reverse("optout-approve", kwargs={"optout_id": optout_id}))
            .status_code
        )

    def verify_domain(self, user, domain: str) -> None:
        claim, _ = services.domain_claim_create(artist=user, domain=domain)
        self.monkeypatch.setattr(verification, "fetch_http", lambda url: claim.token)
        assert (
            client_for(user).post(reverse("domain-claim-verify", kwargs={"claim_id": claim.pk})).status_code
            == 200
        )

    def near_copies(self, *names: str) -> None:
        self.monkeypatch.setattr(
            optouts_services, "near_copies_of", lambda asset_id: [self.works[n].pk for n in names]
        )


@pytest.fixture
def world(artist, other_artist, operator, monkeypatch):
    ids = {
        "alice_id": ContributorFactory(display_name="Alice"),
        "bob_id": ContributorFactory(display_name="Bob"),
    }
    hosted = work(domain="alice.example.com")
    works = {
        "hosted": hosted,
        "signed": work(domain="shared.example.com", contributor=ids["alice_id"]),
        "rehost": work(domain="mirror.example.net", contributor=ids["bob_id"], sha256=hosted.sha256,
                       phash=hosted.phash),
        "bobs": work(domain="mirror.example.net", contributor=ids["bob_id"]),
        "free": work(domain="free.example.net"),
        "sub": work(domain="b.example.com"),
    }  # fmt: skip
    return World(artist, other_artist, operator, monkeypatch, works, ids)


# --- Bob's attacks: (scope, activation path) -> the works his opt-out should still deny ----------------------------


def works_by_operator_approval(w: World) -> set[str]:
    created = w.post(
        w.bob, {"scope": "works", "asset_ids": [w.works[n].pk for n in ("free", "hosted", "signed")]}
    )
    w.verify_alice()
    assert w.approve(created["id"]) == 409
    return set()


def works_owned_after_activation(w: World) -> set[str]:
    created = w.post(
        w.bob, {"scope": "works", "asset_ids": [w.works[n].pk for n in ("free", "hosted", "signed")]}
    )
    assert w.approve(created["id"]) == 200
    w.verify_alice()
    return {"free"}


def near_copies_expanded_at_creation(w: World) -> set[str]:
    w.verify_alice()
    services.contributor_claim_review(
        claim=services.contributor_claim_create(artist=w.bob, contributor_id=w.ids["bob_id"].pk)[0],
        reviewer=w.operator, approve=True,
    )  # fmt: skip
    w.near_copies("rehost", "hosted", "signed", "free")
    assert w.post(w.bob, {"scope": "near_copies", "asset_id": w.works["bobs"].pk})["status"] == "active"
    return {"bobs", "rehost", "free"}


def near_copies_by_operator_approval(w: World) -> set[str]:
    w.near_copies("hosted", "signed", "rehost")
    created = w.post(w.bob, {"scope": "near_copies", "asset_id": w.works["free"].pk})
    w.verify_alice()
    assert w.approve(created["id"]) == 200
    return {"free", "rehost"}


def contributor_by_identity_approval(w: World) -> set[str]:
    w.verify_alice()
    w.post(w.bob, {"scope": "contributor", "contributor_id": w.ids["bob_id"].pk})
    claim = w.bob.contributor_claims.get()
    services.contributor_claim_review(claim=claim, reviewer=w.operator, approve=True)
    return {"bobs", "rehost"}


def contributor_by_c2pa_signer(w: World) -> set[str]:
    from optout import c2pa_signer

    w.verify_alice()
    SignerBinding.objects.create(artist=w.bob, signer="CN=Bob")
    w.monkeypatch.setattr(c2pa_signer, "read_signer", lambda path: "CN=Bob")
    assert w.post(w.bob, {"scope": "contributor", "contributor_id": w.ids["bob_id"].pk})["status"] == "active"
    return {"bobs", "rehost"}


def domain_by_verification(w: World) -> set[str]:
    w.verify_alice()
    assert w.post(w.bob, {"scope": "domain", "domain": "example.com"})["status"] == "pending"
    w.verify_domain(w.bob, "example.com")
    return {"sub"}


def domain_verified_at_creation(w: World) -> set[str]:
    w.verify_alice()
    w.verify_domain(w.bob, "example.com")
    assert w.post(w.bob, {"scope": "domain", "domain": "example.com"})["status"] == "active"
    return {"sub"}


def domain_owned_after_activation(w: World) -> set[str]:
    w.verify_domain(w.bob, "example.com")
    assert w.post(w.bob, {"scope": "domain", "domain": "example.com"})["status"] == "active"
    w.verify_alice()
    return {"sub"}


ATTACKS = [
    works_by_operator_approval, works_owned_after_activation, near_copies_expanded_at_creation,
    near_copies_by_operator_approval, contributor_by_identity_approval, contributor_by_c2pa_signer,
    domain_by_verification, domain_verified_at_creation, domain_owned_after_activation,
]  # fmt: skip
ALICES = ("hosted", "signed")


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.__name__ for a in ATTACKS])
def test_a_non_owners_optout_denies_no_owned_work_anywhere(world, attack, django_capture_on_commit_callbacks):
    still_denied = attack(world)
    kept = kept_by_manifest_build(django_capture_on_commit_callbacks)
    for name in ALICES:
        owned = world.works[name]
        assert not denied_by_check(owned), name
        assert hidden_from_anonymous(owned) == {"asset_api": False, "thumbnail": False, "search": False}, name
        assert owned.pk in kept, name
    assert check_url("https://alice.example.com/not-ingested-yet.png")["allowed"]
    # the attack did publish Bob's legitimate keys: the property is not vacuous
    for name in still_denied:
        assert denied_by_check(world.works[name]) and world.works[name].pk not in kept, name


# --- Alice's own opt-outs of the same works, by each scope: honoured by every consumer ----------------------------


OWNER_REQUESTS = {
    "works": lambda w: {"scope": "works", "asset_ids": [w.works["hosted"].pk, w.works["signed"].pk]},
    "near_copies": lambda w: {"scope": "near_copies", "asset_id": w.works["hosted"].pk},
    "contributor": lambda w: {"scope": "contributor", "contributor_id": w.ids["alice_id"].pk},
    "domain": lambda w: {"scope": "domain", "domain": "alice.example.com"},
}
OWNER_COVERS = {
    "works": ALICES,
    "near_copies": ("hosted",),
    "contributor": ("signed",),
    "domain": ("hosted",),
}


@pytest.mark.parametrize("scope", list(OWNER_REQUESTS))
def test_the_owners_optout_is_honoured_by_every_consumer(world, scope, django_capture_on_commit_callbacks):
    world.verify_alice()
    world.near_copies()
    assert world.post(world.alice, OWNER_REQUESTS[scope](world))["status"] == "active"
    kept = kept_by_manifest_build(django_capture_on_commit_callbacks)
    for name in OWNER_COVERS[scope]:
        owned = world.works[name]
        assert denied_by_check(owned), name
        assert hidden_from_anonymous(owned) == {"asset_api": True, "thumbnail": True, "search": True}, name
        assert owned.pk not in kept, name
    assert OptOut.objects.get(artist=world.alice).status == "active"
