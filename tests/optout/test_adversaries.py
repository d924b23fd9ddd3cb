"""Opt-outs tried as an attacker would, through the HTTP API and the admin: each test is one way a non-owner
could hide or release a verified artist's works (issue #20, items 1-5, 8 and 10), and must fail on the old code.

Alice is the verified owner (a domain `alice.example.com` and a contributor identity); Bob is another artist."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from optout import services
from optout.models import AuditEntry, ClaimStatus, DomainClaim, OptOut, OptOutKey
from optout.services import optouts as optouts_services
from tests.core.factories import UserFactory
from tests.optout.conftest import client_for
from tests.optout.consumers import (
    check_url,
    denied_by_check,
    hidden_from_anonymous,
    kept_by_manifest_build,
    verify_domain,
    work,
)
from tests.optout.factories import ContributorClaimFactory, DomainClaimFactory
from tests.provenance.factories import ContributorFactory

pytestmark = pytest.mark.usefixtures("consumer_files")
SOME_PHASH = 0x0F0F_3C3C_5A5A_9696


# --- item 1: a parent-domain opt-out over a verified owner's host ---------------------------------------------


def test_parent_domain_optout_never_denies_the_verified_owner_of_a_subdomain(
    artist, other_artist, monkeypatch, django_capture_on_commit_callbacks
):
    alice, bob = artist, other_artist
    verify_domain(alice, "art.example.com", monkeypatch)
    hers = work(domain="art.example.com")
    bobs = work(domain="www2.example.com")
    verify_domain(bob, "example.com", monkeypatch)
    response = client_for(bob).post(
        reverse("optout-list"), {"scope": "domain", "domain": "example.com"}, format="json"
    )
    assert response.status_code == 201 and response.json()["status"] == "active"
    assert response.json()["asset_ids"] == [bobs.pk]

    assert check_url("https://art.example.com/anything-new.png")["allowed"]
    assert not denied_by_check(hers)
    assert hidden_from_anonymous(hers) == {"asset_api": False, "thumbnail": False, "search": False}
    assert hers.pk in kept_by_manifest_build(django_capture_on_commit_callbacks)
    # Bob's own work is still opted out, by its per-work keys now that the domain key is withdrawn
    assert denied_by_check(bobs) and hidden_from_anonymous(bobs)["asset_api"]
    assert OptOutKey.objects.get(kind="domain", key="example.com").withdrawn_at is not None


def test_a_subdomain_verified_after_activation_is_taken_out_of_the_parent_domain_optout(
    artist, other_artist, monkeypatch
):
    alice, bob = artist, other_artist
    hers = work(domain="art.example.com")
    verify_domain(bob, "example.com", monkeypatch)
    client_for(bob).post(reverse("optout-list"), {"scope": "domain", "domain": "example.com"}, format="json")
    assert denied_by_check(hers)  # nobody owned it yet
    verify_domain(alice, "art.example.com", monkeypatch)
    assert not denied_by_check(hers)
    assert check_url("https://art.example.com/later.png")["allowed"]
    assert not hidden_from_anonymous(hers)["asset_api"]
    assert AuditEntry.objects.filter(event="optout.narrowed").exists()


# --- item 2: a pending opt-out activated later passes the gate then -------------------------------------------


def test_pending_domain_optout_activated_by_verification_leaves_out_works_verified_since(
    artist, other_artist, operator, monkeypatch
):
    alice, bob = artist, other_artist
    contributor = ContributorFactory()
    hers = work(domain="example.com", contributor=contributor)
    free = work(domain="example.com")
    pending = client_for(bob).post(
        reverse("optout-list"), {"scope": "domain", "domain": "example.com"}, format="json"
    )
    assert pending.json()["status"] == "pending" and hers.pk in pending.json()["asset_ids"]
    claim = (
        client_for(alice)
        .post(reverse("contributor-claim-list"), {"contributor_id": contributor.pk}, format="json")
        .json()
    )
    client_for(operator).post(
        reverse("contributor-claim-review", kwargs={"claim_id": claim["id"]}),
        {"approve": True},
        format="json",
    )
    verify_domain(bob, "example.com", monkeypatch)

    detail = client_for(bob).get(reverse("optout-detail", kwargs={"optout_id": pending.json()["id"]})).json()
    assert detail["status"] == "active" and detail["asset_ids"] == [free.pk]
    assert not denied_by_check(hers) and denied_by_check(free)
    assert check_url("https://example.com/not-yet-ingested.png")["allowed"]  # the domain key stays withdrawn


def test_pending_contributor_optout_activated_by_identity_approval_leaves_out_a_copy_of_an_owned_work(
    artist, other_artist, operator
):
    alice, bob = artist, other_artist
    DomainClaimFactory(artist=alice, domain="alice.example.com", status=ClaimStatus.VERIFIED)
    hers = work(domain="alice.example.com")
    bobs_identity = ContributorFactory()
    rehost = work(
        domain="mirror.example.net", contributor=bobs_identity, sha256=hers.sha256, phash=hers.phash
    )
    own = work(domain="mirror.example.net", contributor=bobs_identity)
    created = (
        client_for(bob)
        .post(
            reverse("optout-list"),
            {"scope": "contributor", "contributor_id": bobs_identity.pk},
            format="json",
        )
        .json()
    )
    claim = bob.contributor_claims.get()
    client_for(operator).post(
        reverse("contributor-claim-review", kwargs={"claim_id": claim.pk}), {"approve": True}, format="json"
    )
    assert OptOut.objects.get(pk=created["id"]).status == "active"
    # the re-host is Bob's (his verified identity), but its bytes and pHash are Alice's work's: those keys are not
    # published, so the check API, which knows only keys, cannot deny her work through his opt-out
    assert not denied_by_check(hers) and not hidden_from_anonymous(hers)["asset_api"]
    assert denied_by_check(rehost) and denied_by_check(own)


def test_approving_works_another_artist_verified_since_the_request_is_refused(artist, other_artist, operator):
    alice, bob = artist, other_artist
    hers = work(domain="alice.example.com")
    created = client_for(bob).post(
        reverse("optout-list"), {"scope": "works", "asset_ids": [hers.pk]}, format="json"
    )
    DomainClaimFactory(artist=alice, domain="alice.example.com", status=ClaimStatus.VERIFIED)
    response = client_for(operator).post(
        reverse("optout-approve", kwargs={"optout_id": created.json()["id"]})
    )
    assert response.status_code == 409
    assert not denied_by_check(hers)


# --- item 3: the near-copy rule is bounded --------------------------------------------------------------------


def test_near_copies_by_phash_alone_only_within_a_tight_radius(artist, search_stack):
    ContributorClaimFactory(
        artist=artist, contributor=(mine := ContributorFactory()), status=ClaimStatus.VERIFIED
    )
    seed = work(contributor=mine, phash=SOME_PHASH)
    close = work(phash=SOME_PHASH ^ 0b111, local_path="")  # 3 bits, no pixels to verify: a re-encoded copy
    copy = work(phash=SOME_PHASH ^ 0b1)
    copy.local_path = seed.local_path  # the same picture: geometric verification agrees
    copy.save(update_fields=["local_path"])
    lookalike = work(phash=SOME_PHASH ^ 0b11)  # pHash agrees, the pixels do not
    unrelated = [work(phash=SOME_PHASH ^ (((1 << bits) - 1) << 32), local_path="") for bits in (6, 7, 8)]
    response = client_for(artist).post(
        reverse("optout-list"), {"scope": "near_copies", "asset_id": seed.pk}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["asset_ids"] == sorted([seed.pk, close.pk, copy.pk])
    assert not any(denied_by_check(w) for w in unrelated)
    assert lookalike.pk not in response.json()["asset_ids"]


def test_a_flat_images_phash_is_no_key(artist, operator):
    """One opted-out blank drawing must not deny every other blank drawing (123 fixture works share its pHash)."""
    blank, other_blank = work(phash=-(1 << 63)), work(phash=-(1 << 63))
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[blank.pk])
    services.optout_approve(optout=optout, operator=operator)
    assert denied_by_check(blank) and not denied_by_check(other_blank)
    assert not hidden_from_anonymous(other_blank)["asset_api"]


def test_near_copies_past_the_cap_wait_for_review(artist, settings, monkeypatch):
    settings.OPTOUT_NEAR_COPY_AUTO_MAX = 2
    ContributorClaimFactory(
        artist=artist, contributor=(mine := ContributorFactory()), status=ClaimStatus.VERIFIED
    )
    seed = work(contributor=mine)
    copies = [work() for _ in range(5)]
    monkeypatch.setattr(optouts_services, "near_copies_of", lambda asset_id: [c.pk for c in copies])
    response = client_for(artist).post(
        reverse("optout-list"), {"scope": "near_copies", "asset_id": seed.pk}, format="json"
    )
    assert response.json()["status"] == "active"
    assert response.json()["asset_ids"] == sorted([seed.pk, copies[0].pk, copies[1].pk])
    review = OptOut.objects.exclude(pk=response.json()["id"]).get()
    assert review.status == "pending" and review.scope == "works"
    assert sorted(review.items.values_list("asset_id", flat=True)) == [c.pk for c in copies[2:]]
    assert not any(denied_by_check(c) for c in copies[2:])


# --- items 4 and 8: domains are host names ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain",
    ["%.com", "_.example.com", "a%b.example.com", "*.example.com", "example.com:8443", "user@example.com",
     "example.com/path", "127.0.0.1", "[::1]", "a" * 70 + ".example.com", "co.uk", "github.io", "com",
     "localhost", "-bad.example.com"],
)  # fmt: skip
def test_a_claim_or_domain_optout_of_anything_but_a_claimable_host_name_is_a_400(artist, domain):
    client = client_for(artist)
    claim = client.post(reverse("domain-claim-list"), {"domain": domain}, format="json")
    optout = client.post(reverse("optout-list"), {"scope": "domain", "domain": domain}, format="json")
    assert (claim.status_code, optout.status_code) == (400, 400), (claim.content, optout.content)
    assert "domain" in claim.json()["message"]
    assert not DomainClaim.objects.exists() and not OptOut.objects.exists()


def test_an_internationalised_domain_is_stored_as_its_a_label(artist):
    response = client_for(artist).post(
        reverse("domain-claim-list"), {"domain": "Bücher.Example"}, format="json"
    )
    assert response.status_code == 201 and response.json()["domain"] == "xn--bcher-kva.example"


def test_a_percent_in_a_stored_domain_key_is_no_wildcard_and_search_agrees_with_check(artist, operator):
    """A legacy row that bypassed validation: search, thumbnails and the check API still answer alike."""
    victim = work(domain="shop.victim.com")
    optout = OptOut.objects.create(artist=artist, scope="domain", domain="%.com", status="pending")
    OptOutKey.objects.create(optout=optout, kind="domain", key="%.com")
    services.optout_approve(optout=optout, operator=operator)
    assert not denied_by_check(victim)
    assert hidden_from_anonymous(victim) == {"asset_api": False, "thumbnail": False, "search": False}


# --- item 5: nothing erased unrecorded ------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, db):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    return client


def test_admin_cannot_delete_an_optout_or_a_claim(admin_client, artist, operator):
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work().pk])
    claim = DomainClaimFactory(artist=artist, status=ClaimStatus.VERIFIED)
    for name, pk in (("optout_optout", optout.pk), ("optout_domainclaim", claim.pk)):
        response = admin_client.post(reverse(f"admin:{name}_delete", args=[pk]), {"post": "yes"})
        assert response.status_code == 403
    assert OptOut.objects.filter(pk=optout.pk).exists() and DomainClaim.objects.filter(pk=claim.pk).exists()


def test_admin_cannot_delete_a_user_or_contributor_an_optout_or_claim_depends_on(
    admin_client, artist, operator
):
    contributor = ContributorFactory()
    ContributorClaimFactory(artist=artist, contributor=contributor, status=ClaimStatus.VERIFIED)
    optout, _ = services.optout_create(artist=artist, scope="contributor", contributor_id=contributor.pk)
    admin_client.post(reverse("admin:auth_user_delete", args=[artist.pk]), {"post": "yes"})
    admin_client.post(reverse("admin:provenance_contributor_delete", args=[contributor.pk]), {"post": "yes"})
    assert type(artist).objects.filter(pk=artist.pk).exists()
    assert OptOut.objects.get(pk=optout.pk).contributor_id == contributor.pk
    assert artist.contributor_claims.get().status == ClaimStatus.VERIFIED


def test_claim_status_is_read_only_in_the_admin(admin_client, artist):
    claim = DomainClaimFactory(artist=artist, domain="alice.example.com")
    url = reverse("admin:optout_domainclaim_change", args=[claim.pk])
    admin_client.post(url, {"artist": artist.pk, "domain": "alice.example.com", "token": claim.token,
                            "status": "verified", "method": "dns"})  # fmt: skip
    claim.refresh_from_db()
    assert claim.status == ClaimStatus.PENDING
    assert b'name="status"' not in admin_client.get(url).content


def test_a_deleted_key_stops_denying_at_once_and_leaves_an_audit_row(artist, operator):
    target = work()
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[target.pk])
    services.optout_approve(optout=optout, operator=operator)
    assert denied_by_check(target)  # the running process now caches the registry
    OptOutKey.objects.filter(optout=optout).delete()
    assert not denied_by_check(target)
    assert AuditEntry.objects.filter(event="deleted", payload__model="optout.OptOutKey").count() == 4


def test_an_admin_deleted_signer_binding_is_audited(admin_client, artist):
    from optout.models import SignerBinding

    binding = SignerBinding.objects.create(artist=artist, signer="CN=Alice")
    admin_client.post(reverse("admin:optout_signerbinding_delete", args=[binding.pk]), {"post": "yes"})
    assert not SignerBinding.objects.exists()
    entry = AuditEntry.objects.get(event="deleted")
    assert entry.payload["model"] == "optout.SignerBinding" and "CN=Alice" in entry.payload["row"]


# --- item 10 (ours): decided opt-outs stay decided; the asset API hides opted-out works ---------------------------


def test_approving_a_rejected_optout_is_a_409_and_changes_nothing(artist, operator):
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work().pk])
    client = client_for(operator)
    assert client.post(reverse("optout-reject", kwargs={"optout_id": optout.pk})).status_code == 200
    response = client.post(reverse("optout-approve", kwargs={"optout_id": optout.pk}))
    assert response.status_code == 409 and response.json()["extra"]["status"] == "rejected"
    assert OptOut.objects.get(pk=optout.pk).status == "rejected"
    again = client.post(reverse("optout-reject", kwargs={"optout_id": optout.pk}))
    assert again.status_code == 200  # a replayed decision is a no-op


def test_the_asset_api_lists_opted_out_works_to_their_owner_only(artist, other_artist, operator):
    hidden, shown = work(), work()
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[hidden.pk])
    services.optout_approve(optout=optout, operator=operator)
    for client in (APIClient(), client_for(other_artist)):
        listed = {a["id"] for a in client.get("/api/assets/").json()["results"]}
        assert listed == {shown.pk}
        assert client.get(f"/api/assets/{hidden.pk}/").status_code == 404
    assert {a["id"] for a in client_for(artist).get("/api/assets/").json()["results"]} == {
        hidden.pk,
        shown.pk,
    }
