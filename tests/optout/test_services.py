"""Claims, ownership and the opt-out state machine, through the services."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from core.exceptions import ApplicationError
from optout import registry, services
from optout import signals as optout_signals
from optout.exclusions import optout_exclusions
from optout.models import ClaimStatus, OptOut, OptOutStateChange
from optout.services import optouts as optouts_services
from tests.optout.factories import ContributorClaimFactory, DomainClaimFactory
from tests.provenance.factories import AssetFactory, ContributorFactory

pytestmark = pytest.mark.django_db(transaction=False)


@pytest.fixture
def well_known_server(sites):
    """A real HTTP server on 127.0.0.1 serving /.well-known/provenant-verify.txt with `body["text"]`, reached as
    art.example.test through the injected resolver."""
    from tests.core.conftest import serve
    from tests.core.sites import Page

    body = {"text": ""}

    class Live(Page):
        @property
        def body(self):  # read at request time, so tests can change it
            return body["text"].encode()

        @body.setter
        def body(self, value):
            pass

    serve(sites, "art.example.test")
    sites.add("art.example.test", "/.well-known/provenant-verify.txt", Live())
    return "art.example.test", body


def _routed_to(address: str):
    """The real fetcher, with the claimed host's address looked up here: claims are host names, never ports."""
    from optout.verification import fetch_http

    return lambda url: fetch_http(url.replace("verify.example.org", address))


def test_domain_verified_by_token_on_a_real_http_server(artist, well_known_server):
    address, body = well_known_server
    claim, _ = services.domain_claim_create(artist=artist, domain="verify.example.org")
    body["text"] = f"{claim.token}\n"
    claim = services.domain_claim_verify(claim=claim, fetcher=_routed_to(address), resolver=lambda name: [])
    assert claim.status == ClaimStatus.VERIFIED and claim.method == "http"


def test_domain_with_the_wrong_token_stays_pending(artist, well_known_server):
    address, body = well_known_server
    claim, _ = services.domain_claim_create(artist=artist, domain="verify.example.org")
    body["text"] = "someone-elses-token"
    with pytest.raises(ApplicationError):
        services.domain_claim_verify(claim=claim, fetcher=_routed_to(address), resolver=lambda name: [])
    claim.refresh_from_db()
    assert claim.status == ClaimStatus.PENDING


def test_domain_verified_by_dns_txt_record(artist):
    claim, _ = services.domain_claim_create(artist=artist, domain="Art.Example.org")
    records = {"_provenant.art.example.org": [f'"provenant-verify={claim.token}"']}

    def failing_fetch(url):
        from optout.verification import VerificationFailed

        raise VerificationFailed("connection refused")

    claim = services.domain_claim_verify(
        claim=claim, fetcher=failing_fetch, resolver=lambda n: records.get(n, [])
    )
    assert (claim.domain, claim.status, claim.method) == ("art.example.org", "verified", "dns")


def test_private_addresses_are_refused_outside_tests(settings):
    from optout.verification import VerificationFailed, fetch_http

    settings.FETCH_EXTRA_ALLOWED_NETWORKS = []
    with pytest.raises(VerificationFailed, match="not public"):
        fetch_http("http://127.0.0.1/.well-known/provenant-verify.txt")


def test_domain_optout_waits_for_verification_then_activates(artist):
    work = AssetFactory(domain="img.art.example.org")
    optout, created = services.optout_create(artist=artist, scope="domain", domain="art.example.org")
    assert created and optout.status == OptOut.Status.PENDING
    assert list(optout.items.values_list("asset_id", flat=True)) == [work.pk]
    claim = optout.artist.domain_claims.get()
    services.domain_claim_verify(claim=claim, fetcher=lambda url: claim.token, resolver=lambda n: [])
    optout.refresh_from_db()
    assert optout.status == OptOut.Status.ACTIVE


def test_nobody_opts_out_a_work_another_verified_artist_owns(artist, other_artist):
    DomainClaimFactory(artist=other_artist, domain="art.example.org", status=ClaimStatus.VERIFIED)
    work = AssetFactory()
    with pytest.raises(ApplicationError) as err:
        services.optout_create(artist=artist, scope="works", asset_ids=[work.pk])
    assert err.value.status_code == 409
    assert not OptOut.objects.exists()


def test_near_copy_optout_of_a_verified_work_is_active_at_once_and_skips_others_copies(
    artist, other_artist, monkeypatch
):
    contributor = ContributorFactory()
    ContributorClaimFactory(artist=artist, contributor=contributor, status=ClaimStatus.VERIFIED)
    seed = AssetFactory(contributor=contributor, domain="mine.example")
    copy = AssetFactory(domain="rehost.example")
    theirs = AssetFactory(domain="theirs.example")
    DomainClaimFactory(artist=other_artist, domain="theirs.example", status=ClaimStatus.VERIFIED)
    monkeypatch.setattr(optouts_services, "near_copies_of", lambda asset_id: [copy.pk, theirs.pk])
    optout, _ = services.optout_create(artist=artist, scope="near_copies", asset_id=seed.pk)
    assert optout.status == OptOut.Status.ACTIVE
    assert sorted(optout.items.values_list("asset_id", flat=True)) == sorted([seed.pk, copy.pk])


def test_works_optout_of_unclaimed_works_waits_for_an_operator(artist, operator):
    work = AssetFactory()
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work.pk])
    assert optout.status == OptOut.Status.PENDING
    services.optout_approve(optout=optout, operator=operator)
    assert optout.status == OptOut.Status.ACTIVE


def test_contributor_optout_activates_when_an_operator_approves_the_identity(artist, operator):
    contributor = ContributorFactory()
    works = AssetFactory.create_batch(3, contributor=contributor)
    optout, _ = services.optout_create(artist=artist, scope="contributor", contributor_id=contributor.pk)
    assert optout.status == OptOut.Status.PENDING and optout.items.count() == len(works)
    claim = artist.contributor_claims.get()
    services.contributor_claim_review(claim=claim, reviewer=operator, approve=True)
    optout.refresh_from_db()
    assert optout.status == OptOut.Status.ACTIVE


def test_identity_verified_by_a_bound_c2pa_signer(artist):
    from optout.models import SignerBinding

    SignerBinding.objects.create(artist=artist, signer="CN=Ada Lovelace")
    contributor = ContributorFactory()
    AssetFactory(contributor=contributor, local_path="/art/signed.jpg")
    claim, _ = services.contributor_claim_create(
        artist=artist, contributor_id=contributor.pk, signer_reader=lambda path: "CN=Ada Lovelace"
    )
    assert claim.status == ClaimStatus.VERIFIED and claim.method == "c2pa"


def test_every_state_change_is_history_and_mail_and_signal(
    artist, operator, django_capture_on_commit_callbacks
):
    work = AssetFactory()
    received = []

    def on_activated(sender, asset_ids, optout_id, **kwargs):
        received.append(("activated", asset_ids, optout_id))

    def on_revoked(sender, asset_ids, optout_id, **kwargs):
        received.append(("revoked", asset_ids, optout_id))

    optout_signals.optout_activated.connect(on_activated)
    optout_signals.optout_revoked.connect(on_revoked)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work.pk])
            services.optout_approve(optout=optout, operator=operator)
            services.optout_revoke(optout=optout, artist=artist)
    finally:
        optout_signals.optout_activated.disconnect(on_activated)
        optout_signals.optout_revoked.disconnect(on_revoked)
    history = list(OptOutStateChange.objects.filter(optout=optout).values_list("from_status", "to_status"))
    assert history == [("", "pending"), ("pending", "active"), ("active", "revoked")]
    assert received == [("activated", [work.pk], optout.pk), ("revoked", [work.pk], optout.pk)]
    assert [m.to for m in mail.outbox] == [[artist.email]] * 2
    assert "active" in mail.outbox[0].subject


def test_replayed_create_and_revoke_change_nothing(artist):
    work = AssetFactory()
    first, created = services.optout_create(
        artist=artist, scope="works", asset_ids=[work.pk], idempotency_key="k1"
    )
    again, created_again = services.optout_create(
        artist=artist, scope="works", asset_ids=[work.pk], idempotency_key="k1"
    )
    assert created and not created_again and first.pk == again.pk
    services.optout_revoke(optout=first, artist=artist)
    changes = OptOutStateChange.objects.count()
    services.optout_revoke(optout=first, artist=artist)
    assert OptOutStateChange.objects.count() == changes


def test_registry_as_of_replays_the_state_history(artist, operator):
    work = AssetFactory(url="https://WWW.Art.Example.org/works/a.png/")
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work.pk])
    before = timezone.now()
    services.optout_approve(optout=optout, operator=operator)
    active_at = timezone.now()
    services.optout_revoke(optout=optout, artist=artist)
    assert list(registry.registry_rows(as_of=before)) == []
    assert list(registry.registry_rows(as_of=timezone.now() + timedelta(seconds=1))) == []
    rows = {(r.kind, r.key) for r in registry.registry_rows(as_of=active_at)}
    assert rows == {
        ("asset", str(work.pk)),
        ("sha256", work.sha256),
        ("phash", str(work.phash)),
        ("url", "art.example.org/works/a.png"),
    }


def test_registry_lists_a_domain_key_for_domain_optouts(artist):
    DomainClaimFactory(artist=artist, domain="art.example.org", status=ClaimStatus.VERIFIED)
    optout, _ = services.optout_create(artist=artist, scope="domain", domain="art.example.org")
    rows = list(registry.registry_rows(as_of=timezone.now()))
    assert ("domain", "art.example.org", optout.pk) in {(r.kind, r.key, r.optout_id) for r in rows}


def test_search_exclusions_hide_from_others_and_flag_for_the_owner(artist, other_artist, operator):
    work, untouched = AssetFactory(), AssetFactory()
    optout, _ = services.optout_create(artist=artist, scope="works", asset_ids=[work.pk])
    assert optout_exclusions(other_artist) == (set(), set())
    services.optout_approve(optout=optout, operator=operator)
    assert optout_exclusions(other_artist) == ({work.pk}, set())
    assert optout_exclusions(artist) == (set(), {work.pk})
    services.optout_revoke(optout=optout, artist=artist)
    assert untouched.pk not in optout_exclusions(None)[0]
    assert optout_exclusions(None) == (set(), set())


def test_works_ingested_later_under_an_active_domain_optout_are_hidden(artist):
    DomainClaimFactory(artist=artist, domain="art.example.org", status=ClaimStatus.VERIFIED)
    services.optout_create(artist=artist, scope="domain", domain="art.example.org")
    later = AssetFactory(domain="cdn.art.example.org")
    assert later.pk in optout_exclusions(None)[0]
