"""Search exclusions follow registry changes from the change log: after any run of approvals, revocations, domain
opt-outs, overlapping opt-outs and deletes, the owners a process holds equal a fresh reload's, and only the first
call loaded everything."""

import random

import pytest

from optout import exclusions, services
from optout.models import ClaimStatus, OptOutKey
from tests.core.factories import UserFactory
from tests.optout.factories import DomainClaimFactory
from tests.provenance.factories import AssetFactory


def _near_copy(work, bits: int = 2):
    """Another file of the same picture: its own bytes and URL, a pHash `bits` away."""
    return AssetFactory(domain="mirror.example.net", phash=work.phash ^ ((1 << bits) - 1))


_real_reload = exclusions._reload


@pytest.fixture
def reloads(monkeypatch):
    """The full reloads the product makes (the comparisons below call the real one directly)."""
    calls = []

    def counted(*args):
        calls.append(args)
        return _real_reload(*args)

    monkeypatch.setattr(exclusions, "_reload", counted)
    return calls


def _fresh_owners() -> dict:
    return _real_reload(0, 0, 0).owners


def test_approval_and_revocation_hide_and_show_a_work_and_its_near_copy(
    artist, operator, other_artist, reloads
):
    work = AssetFactory()
    copy = _near_copy(work)
    assert exclusions.optout_exclusions(other_artist) == (set(), set())
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work.pk])
    services.optout_approve(optout=optout, operator=operator)
    assert exclusions.optout_exclusions(other_artist) == ({work.pk, copy.pk}, set())
    assert exclusions.optout_exclusions(artist) == (set(), {work.pk, copy.pk})
    services.optout_revoke(optout=optout, artist=artist)
    assert exclusions.optout_exclusions(other_artist) == (set(), set())
    assert len(reloads) == 1  # the first call only


def test_any_run_of_changes_leaves_what_a_fresh_reload_finds(artist, operator, reloads):
    rng = random.Random(5)
    artists = [artist, UserFactory(username="second"), UserFactory(username="third")]
    works = [AssetFactory() for _ in range(12)] + [
        AssetFactory(domain="studio.example.com") for _ in range(4)
    ]
    works += [_near_copy(w) for w in works[:3]]
    DomainClaimFactory(artist=artists[2], domain="studio.example.com", status=ClaimStatus.VERIFIED)
    live = []
    exclusions.active_optout_owners()
    for step in range(14):
        action = rng.choice(["works", "works", "domain", "revoke", "delete-key"] if live else ["works"])
        if action == "works":
            who = rng.choice(artists[:2])
            picked = [w.pk for w in rng.sample(works[:12], rng.randint(1, 3))]
            optout, _ = services.optout_create(artist=who, scope="works", asset_ids=picked)
            live.append(services.optout_approve(optout=optout, operator=operator))
        elif action == "domain":
            optout, _ = services.optout_create(artist=artists[2], scope="domain", domain="studio.example.com")
            live.append(optout)
        elif action == "revoke":
            optout = live.pop(rng.randrange(len(live)))
            services.optout_revoke(optout=optout, artist=optout.artist)
        else:
            key = OptOutKey.objects.filter(optout__in=live, kind="sha256").order_by("?").first()
            if key is not None:
                key.delete()
        held = exclusions.active_optout_owners()
        assert held == _fresh_owners(), (step, action)
    assert any(held.values()) and len(reloads) == 1  # every change came from the log


def test_a_domain_optout_verified_later_hides_the_works_ingested_while_it_waited(
    artist, other_artist, reloads
):
    from optout.verification import VerificationFailed

    claim, _ = services.domain_claim_create(artist=artist, domain="studio.example.com")
    optout, _ = services.optout_create(artist=artist, scope="domain", domain="studio.example.com")
    assert optout.status == "pending"
    exclusions.active_optout_owners()
    later = AssetFactory(domain="cdn.studio.example.com")  # named by no key of the opt-out: only its domain
    assert later.pk not in exclusions.active_optout_owners()  # seen while the opt-out waits

    def refused(url):
        raise VerificationFailed("connection refused")

    records = {"_provenant.studio.example.com": [f'"provenant-verify={claim.token}"']}
    services.domain_claim_verify(claim=claim, fetcher=refused, resolver=lambda name: records.get(name, []))
    optout.refresh_from_db()
    assert optout.status == "active"
    assert later.pk in exclusions.optout_exclusions(other_artist)[0] and len(reloads) == 1
