"""core.fetch against real servers on loopback: one resolution, public addresses only, default ports, same-host
redirects, a total deadline, a byte cap, a per-host rate limit, errors without transport detail."""

import time

import pytest

from core.fetch import Fetcher, Outcome, fetch_one
from tests.core import sites as sites_module
from tests.core.conftest import serve
from tests.core.sites import Page


def test_fetch_connects_to_the_checked_address_with_host_header_and_user_agent(sites, connects, settings):
    serve(sites, "art.example.test")
    sites.add("art.example.test", "/robots.txt", "User-agent: *\nDisallow:\n")
    result = fetch_one("http://art.example.test/robots.txt")
    assert result.ok and result.body.startswith(b"User-agent")
    request = sites.fetched()[0]
    assert request.host == "art.example.test" and request.headers["User-Agent"] == settings.FETCH_USER_AGENT
    assert result.address == "127.0.0.1" and set(connects) == {"127.0.0.1"}


@pytest.mark.parametrize(
    "address",
    ["100.64.0.1", "10.0.0.5", "172.16.0.1", "192.168.1.1", "169.254.169.254", "127.0.0.2", "::1", "fd00::1",
     "0.0.0.0", "198.18.0.1", "224.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a00:1", "2002:a00:1::"],
)  # fmt: skip
def test_non_global_addresses_are_refused_before_any_connection(sites, connects, address):
    sites_module.ANSWERS["internal.example.test"] = [[address]]
    result = fetch_one("http://internal.example.test/robots.txt")
    assert result.outcome == Outcome.REFUSED and "not public" in result.reason
    assert connects == [] and sites.fetched() == []


def test_one_public_and_one_private_answer_is_refused(sites, connects):
    sites_module.ANSWERS["mixed.example.test"] = [["127.0.0.1", "10.1.2.3"]]
    assert fetch_one("http://mixed.example.test/").outcome == Outcome.REFUSED
    assert connects == []


def test_dns_is_resolved_once_so_a_rebinding_answer_is_never_used(sites, connects):
    # first answer: the allowed address; any later answer: one outside the allowed set
    sites_module.ANSWERS["rebind.example.test"] = [["127.0.0.1"], ["127.0.0.9"], ["127.0.0.9"]]
    sites.add("rebind.example.test", "/a", Page(b"", 302, {"Location": "/b"}))
    sites.add("rebind.example.test", "/b", Page(b"", 302, {"Location": "http://rebind.example.test/c"}))
    sites.add("rebind.example.test", "/c", "final")
    result = fetch_one("http://rebind.example.test/a")
    assert result.body == b"final" and [r.path for r in sites.fetched()] == ["/a", "/b", "/c"]
    assert sites_module.CALLS == ["rebind.example.test"]
    assert set(connects) == {"127.0.0.1"}


@pytest.mark.parametrize(
    "url",
    ["http://art.example.test:8080/x", "https://art.example.test:22/x", "http://user:pw@art.example.test/x",
     "ftp://art.example.test/x", "file:///etc/passwd", "http:///x"],
)  # fmt: skip
def test_other_ports_user_info_and_schemes_are_refused(sites, connects, url):
    serve(sites, "art.example.test")
    assert fetch_one(url).outcome == Outcome.REFUSED
    assert connects == []


def test_redirect_to_another_host_is_refused_and_never_followed(sites):
    serve(sites, "a.example.test", "b.example.test")
    sites.add(
        "a.example.test", "/robots.txt", Page(b"", 301, {"Location": "http://b.example.test/robots.txt"})
    )
    sites.add("b.example.test", "/robots.txt", "User-agent: *\nDisallow: /\n")
    result = fetch_one("http://a.example.test/robots.txt")
    assert result.outcome == Outcome.REFUSED and "another host (b.example.test)" in result.reason
    assert [r.host for r in sites.fetched()] == ["a.example.test"]


def test_same_host_redirects_stop_after_three(sites):
    serve(sites, "loop.example.test")
    for i in range(5):
        sites.add("loop.example.test", f"/{i}", Page(b"", 302, {"Location": f"/{i + 1}"}))
    result = fetch_one("http://loop.example.test/0")
    assert result.outcome == Outcome.REFUSED and "more than 3 redirects" in result.reason
    assert len(sites.fetched()) == 4


def test_total_deadline_stops_a_slow_drip(sites, settings):
    serve(sites, "slow.example.test")
    sites.add("slow.example.test", "/robots.txt", Page(b"x" * 100, drip_s=0.1))  # 10 s in all
    start = time.monotonic()
    result = fetch_one("http://slow.example.test/robots.txt", deadline_s=1.0)
    assert result.outcome == Outcome.UNREACHABLE and time.monotonic() - start < 2.0
    assert result.reason == "no complete answer in time"


def test_body_is_capped(sites):
    serve(sites, "big.example.test")
    sites.add("big.example.test", "/robots.txt", b"#" * 2_000_000)
    result = fetch_one("http://big.example.test/robots.txt", max_bytes=100_000)
    assert result.ok and result.truncated and len(result.body) == 100_000


def test_transport_failures_read_the_same_whatever_the_cause(sites, settings):
    """No port oracle: a closed port and a TLS handshake with a plain-HTTP server give the same words."""
    serve(sites, "closed.example.test", "plain.example.test")
    settings.FETCH_PORT_MAP = {"http": 9, "https": sites.port}
    closed = fetch_one("http://closed.example.test/")
    tls = fetch_one("https://plain.example.test/")
    assert closed.outcome == tls.outcome == Outcome.UNREACHABLE
    assert closed.reason == tls.reason == "the server could not be reached"


def test_per_host_rate_limit_spaces_requests_to_one_host_but_not_across_hosts(sites):
    import asyncio

    serve(sites, "one.example.test", "two.example.test")

    async def run():
        fetcher = Fetcher(host_interval_s=0.3)
        urls = [f"http://one.example.test/{i}" for i in range(4)] + ["http://two.example.test/0"]
        return await asyncio.gather(*(fetcher.fetch(u) for u in urls))

    asyncio.run(run())
    one = sorted(r.at for r in sites.fetched("one.example.test"))
    gaps = [b - a for a, b in zip(one, one[1:], strict=False)]
    assert len(one) == 4 and min(gaps) >= 0.25
    assert sites.fetched("two.example.test")[0].at - one[0] < 0.25
