"""Domain verification's fetch, attacked through the HTTP API (issue: resolve once, public addresses only, no
port, no transport detail, a total deadline)."""

import time

import pytest

from optout import verification
from optout.models import ClaimStatus, DomainClaim
from tests.core import sites as sites_module
from tests.core.sites import Page
from tests.optout.conftest import client_for

WELL_KNOWN = "/.well-known/provenant-verify.txt"


@pytest.fixture(autouse=True)
def no_dns(monkeypatch):
    # the DNS TXT path is not under test, and tests never query real DNS
    monkeypatch.setattr(verification, "resolve_txt", lambda name: [])


def _verify(artist, domain: str):
    claim = DomainClaim.objects.create(artist=artist, domain=domain, token="tok-123")
    response = client_for(artist).post(f"/api/claims/domains/{claim.pk}/verify/")
    claim.refresh_from_db()
    return response, claim


def _errors(response) -> str:
    return " ".join(response.json()["extra"].get("errors", []))


def test_verification_reads_the_token_from_the_checked_address(artist, sites, connects):
    sites_module.ANSWERS["art.example.test"] = [["127.0.0.1"]]
    sites.add("art.example.test", WELL_KNOWN, "tok-123\n")
    response, claim = _verify(artist, "art.example.test")
    assert response.status_code == 200 and claim.status == ClaimStatus.VERIFIED
    assert set(connects) == {"127.0.0.1"}


def test_dns_rebinding_cannot_redirect_the_fetch(artist, sites, connects):
    """The first answer passes the check; a later one points outside the allowed set. Resolved once, the
    second answer is never asked for, let alone connected to."""
    sites_module.ANSWERS["rebind.example.test"] = [["127.0.0.1"], ["127.0.0.7"]]
    sites.add("rebind.example.test", WELL_KNOWN, "wrong-token")
    response, claim = _verify(artist, "rebind.example.test")
    assert response.status_code == 400 and claim.status == ClaimStatus.PENDING
    assert sites_module.CALLS.count("rebind.example.test") == 1 and set(connects) == {"127.0.0.1"}


@pytest.mark.parametrize("address", ["100.64.0.1", "100.127.255.254", "10.0.0.1", "169.254.169.254", "::1"])
def test_non_global_addresses_cgnat_included_are_refused(artist, sites, connects, address):
    sites_module.ANSWERS["inside.example.test"] = [[address]]
    response, claim = _verify(artist, "inside.example.test")
    assert response.status_code == 400 and claim.status == ClaimStatus.PENDING
    assert "not public" in _errors(response) and connects == []


def test_a_domain_with_a_port_is_never_fetched(artist, sites, connects):
    sites_module.ANSWERS["art.example.test"] = [["127.0.0.1"]]
    sites.add("art.example.test", WELL_KNOWN, "tok-123")
    response, claim = _verify(artist, f"art.example.test:{sites.port}")
    assert response.status_code == 400 and claim.status == ClaimStatus.PENDING
    assert "only the default port" in _errors(response) and connects == [] and sites.fetched() == []


def test_errors_carry_no_transport_detail_so_ports_cannot_be_told_apart(artist, sites, settings):
    """A closed port and a TLS handshake with a plain-HTTP server answer with the same words."""
    settings.OPTOUT_VERIFY_SCHEME = "https"
    sites_module.ANSWERS["a.example.test"] = [["127.0.0.1"]]
    sites_module.ANSWERS["b.example.test"] = [["127.0.0.1"]]
    tls_failure, _ = _verify(artist, "a.example.test")  # https to the plain-HTTP server
    settings.FETCH_PORT_MAP = {"https": 9}
    closed, _ = _verify(artist, "b.example.test")
    texts = [
        _errors(tls_failure).replace("a.example.test", "X"),
        _errors(closed).replace("b.example.test", "X"),
    ]
    assert texts[0] == texts[1] and "could not be fetched: the server could not be reached" in texts[0]
    for word in ("SSL", "ssl", "Errno", "refused", "WRONG_VERSION", "certificate"):
        assert word not in texts[0]


def test_a_slow_drip_is_cut_at_the_total_deadline(artist, sites, settings):
    settings.OPTOUT_VERIFY_TIMEOUT_S = 1.0
    sites_module.ANSWERS["drip.example.test"] = [["127.0.0.1"]]
    sites.add("drip.example.test", WELL_KNOWN, Page(b"x" * 200 + b"tok-123", drip_s=0.05))  # ~10 s in all
    start = time.monotonic()
    response, claim = _verify(artist, "drip.example.test")
    assert time.monotonic() - start < 3.0
    assert response.status_code == 400 and "no complete answer in time" in _errors(response)


def test_a_redirect_is_not_followed(artist, sites):
    sites_module.ANSWERS["art.example.test"] = [["127.0.0.1"]]
    sites.add("art.example.test", WELL_KNOWN, Page(b"", 302, {"Location": "/elsewhere"}))
    sites.add("art.example.test", "/elsewhere", "tok-123")
    response, claim = _verify(artist, "art.example.test")
    assert response.status_code == 400 and "HTTP 302" in _errors(response)
    assert [r.path for r in sites.fetched()] == [WELL_KNOWN]
