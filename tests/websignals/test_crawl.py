"""The signals crawl against loopback sites serving files as the specs and real sites write them."""

import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from tests.core.conftest import serve
from tests.core.sites import Page
from websignals import selectors, services
from websignals.models import SignalCrawl, SiteEvidence

ROBOTS = """\ufeff# robots.txt as large sites write it
User-agent: *
Allow: /

User-agent: GPTBot
User-agent: CCBot
Disallow: /gallery/
Allow: /gallery/public/

this line is malformed
Disalow: /typo-is-ignored
User-agent: Google-Extended
Disallow: /*.png$

Sitemap: http://robots.example.test/sitemap.xml
"""
AI_TXT = """# Spawning AI
# Prevent datasets from using the following file types

User-Agent: *
Disallow: *.png
Disallow: *.jpg
Allow: /press/
"""
TDMREP = json.dumps(
    [
        {"location": "/*", "tdm-reservation": 0},
        {"location": "/photos/*", "tdm-reservation": 1, "tdm-policy": "https://tdm.example.test/policy.json"},
    ]
)


@pytest.fixture
def web(sites):
    serve(sites, "robots.example.test", "ai.example.test", "tdm.example.test", "big.example.test",
          "gone.example.test", "broken.example.test", "slow.example.test", "moved.example.test",
          "other.example.test", "headers.example.test")  # fmt: skip
    sites.add("robots.example.test", "/robots.txt", ROBOTS)
    sites.add("ai.example.test", "/ai.txt", AI_TXT)
    sites.add("tdm.example.test", "/.well-known/tdmrep.json", TDMREP)
    # 5 MB: the first 512 KiB are read (RFC 9309's minimum), the CCBot group sits inside them
    sites.add("big.example.test", "/robots.txt", "User-agent: CCBot\nDisallow: /\n" + "# filler\n" * 600_000)
    sites.add("broken.example.test", "/robots.txt", Page(b"oops", 500))
    sites.add("slow.example.test", "/robots.txt", Page(b"User-agent: CCBot\nDisallow: /\n", drip_s=0.2))
    sites.add(
        "moved.example.test", "/robots.txt", Page(b"", 301, {"Location": "http://other.example.test/r"})
    )
    sites.add("other.example.test", "/r", "User-agent: CCBot\nDisallow: /\n")
    sites.add(
        "headers.example.test", "/noai.png", Page(b"png", headers={"X-Robots-Tag": "noindex, noimageai"})
    )
    sites.add("headers.example.test", "/tdm.png", Page(b"png", headers={
        "tdm-reservation": "1", "tdm-policy": "https://headers.example.test/policy.json"}))  # fmt: skip
    sites.add("headers.example.test", "/page.html", Page(
        b'<html><head><meta name="tdm-reservation" content="1"></head></html>', head_status=405,
        headers={"Content-Type": "text/html"}))  # fmt: skip
    sites.add("headers.example.test", "/plain.png", Page(b"png"))
    return sites


def _manifest(urls) -> str:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from django.conf import settings

    path = settings.MEDIA_ROOT / "signals-input.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"url": urls}), path)
    return str(path)


def crawl(urls, **kwargs):
    crawl = services.signal_crawl_create(input_path=_manifest(urls), enqueue=False, **kwargs)
    for batch in crawl.batches.order_by("index"):
        services.signal_crawl_batch_run(crawl_id=crawl.pk, index=batch.index, worker="test")
    crawl.refresh_from_db()
    return crawl


URLS = [
    "http://robots.example.test/gallery/cat.png",
    "http://robots.example.test/gallery/public/cat.gif",
    "http://robots.example.test/blog/dog.png",
    "http://robots.example.test/blog/dog.png?size=2",
    "http://ai.example.test/art/cat.png",
    "http://ai.example.test/art/cat.gif",
    "http://ai.example.test/press/cat.png",
    "http://tdm.example.test/photos/cat.jpg",
    "http://tdm.example.test/drawings/cat.jpg",
    "http://big.example.test/a.jpg",
    "http://gone.example.test/a.jpg",
    "http://broken.example.test/a.jpg",
    "http://slow.example.test/a.jpg",
    "http://moved.example.test/a.jpg",
]
EXPECTED = {
    URLS[0]: ("robots-txt", "robots.txt CCBot Disallow: /gallery/"),
    URLS[1]: None,  # Allow: /gallery/public/ is longer, for both named groups
    URLS[2]: ("robots-txt", "robots.txt Google-Extended Disallow: /*.png$"),
    URLS[3]: None,  # `$`: the query follows .png, so the pattern does not match
    URLS[4]: ("ai-txt", "ai.txt Disallow: *.png for User-Agent *"),
    URLS[5]: None,
    URLS[6]: None,  # Allow: /press/ is longer than *.png
    URLS[7]: ("tdmrep", "tdmrep.json location /photos/* tdm-reservation 1 (tdm-policy https://tdm.example.test/policy.json)"),
    URLS[8]: None,
    URLS[9]: ("robots-txt", "robots.txt CCBot Disallow: /"),
    URLS[10]: None,
    URLS[11]: None,
    URLS[12]: None,
    URLS[13]: None,
}  # fmt: skip


@pytest.mark.django_db
def test_each_decision_is_named_with_the_rule_that_made_it(web, settings, connects):
    settings.FETCH_DEADLINE_S = 2.5
    result = crawl(URLS)
    assert result.status == SignalCrawl.Status.DONE and result.hosts_total == 8
    decisions = selectors.url_decisions(URLS)
    got = {url: (d.rule, d.reason) if d else None for url, d in zip(URLS, decisions, strict=True)}
    assert got == EXPECTED
    assert set(connects) == {"127.0.0.1"}  # no fetch left the allowed address set


@pytest.mark.django_db
def test_outcomes_are_recorded_as_they_happened(web, settings):
    settings.FETCH_DEADLINE_S = 2.5
    crawl(URLS)
    robots = {e.host: e for e in SiteEvidence.objects.filter(document="robots_txt")}
    assert robots["gone.example.test"].outcome == "absent" and robots["gone.example.test"].http_status == 404
    assert (
        robots["broken.example.test"].outcome == "error" and robots["broken.example.test"].http_status == 500
    )
    assert (
        robots["slow.example.test"].outcome == "unreachable" and robots["slow.example.test"].allowed is None
    )
    moved = robots["moved.example.test"]
    assert moved.outcome == "refused" and "another host" in moved.reason
    big = robots["big.example.test"]
    assert big.truncated and len(big.body) <= 512 * 1024 and big.rule == "robots.txt CCBot Disallow: /"
    ok = robots["robots.example.test"]
    assert ok.http_status == 200 and len(ok.body_sha256) == 64 and not ok.body.startswith("\ufeff")
    # the slow host did not answer: its other documents were not tried, and none reads as "allowed"
    slow = SiteEvidence.objects.filter(host="slow.example.test")
    assert {e.outcome for e in slow} == {"unreachable"} and len(web.fetched("slow.example.test")) == 1


@pytest.mark.django_db
def test_nothing_is_fetched_twice_within_max_age_and_reruns_are_conditional(web, settings):
    settings.FETCH_DEADLINE_S = 2.5
    web.add("ai.example.test", "/ai.txt", Page(AI_TXT.encode(), headers={"ETag": '"v1"'}))
    first = crawl(URLS[4:7], max_age_s=3600)
    assert first.fetches == 3 and len(web.fetched()) == 3
    second = crawl(URLS[4:7], max_age_s=3600)
    assert second.fetches == 0 and second.hosts_fresh == 1 and len(web.fetched()) == 3
    third = crawl(URLS[4:7], max_age_s=0)
    assert third.fetches == 3
    conditional = [r for r in web.fetched() if r.path == "/ai.txt"][-1]
    assert conditional.headers.get("If-None-Match") == '"v1"'
    latest = SiteEvidence.objects.filter(host="ai.example.test", document="ai_txt").order_by("-id")
    assert latest[0].http_status == 304 and latest[0].body == latest[1].body and latest[0].body_sha256
    assert selectors.url_decisions(URLS[4:5])[0].evidence_at == latest[0].fetched_at


@pytest.mark.django_db
def test_unreachable_host_is_retried_and_earlier_evidence_stays_in_force(web, settings):
    crawl(["http://robots.example.test/gallery/a.png"], max_age_s=0)
    web.add("robots.example.test", "/robots.txt", Page(ROBOTS.encode(), drip_s=0.5))
    settings.FETCH_DEADLINE_S = 0.5
    again = crawl(["http://robots.example.test/gallery/a.png"], max_age_s=0)
    assert again.hosts_unreachable == 1
    decision = selectors.url_decisions(["http://robots.example.test/gallery/a.png"])[0]
    assert decision.reason == "robots.txt CCBot Disallow: /gallery/"
    # a build frozen before the first crawl knows nothing of it
    assert selectors.url_decisions(["http://robots.example.test/gallery/a.png"],
                                   as_of=timezone.now() - timedelta(days=1)) == [None]  # fmt: skip


@pytest.mark.django_db
def test_work_headers_and_html_meta_deny_that_work_only(web):
    urls = [
        f"http://headers.example.test/{name}" for name in ("noai.png", "tdm.png", "page.html", "plain.png")
    ]
    crawl(urls, headers=True)
    reasons = [d.reason if d else None for d in selectors.url_decisions(urls)]
    assert reasons == [
        "X-Robots-Tag: noindex, noimageai",
        "tdm-reservation header: 1 (tdm-policy https://headers.example.test/policy.json)",
        "tdm-reservation HTML meta: 1",
        None,
    ]
    page = [r for r in web.fetched("headers.example.test") if r.path == "/page.html"]
    assert [r.method for r in page] == ["HEAD", "GET"] and page[1].headers["Range"] == "bytes=0-16383"


@pytest.mark.django_db
def test_robots_agent_list_is_a_setting(web, settings):
    crawl(URLS[:1])
    settings.WEBSIGNALS_AI_AGENTS = ["SomeOtherBot"]
    assert selectors.url_decisions(URLS[:1]) == [None]


@pytest.mark.django_db
def test_fetch_signals_command_runs_a_collection_and_resumes(web, capsys):
    from tests.provenance.factories import AssetFactory

    asset = AssetFactory(url=URLS[0])
    call_command("fetch_signals", "--collection", asset.collection.name, "--max-age", "7d")
    out = capsys.readouterr().out
    assert "1 hosts (0 fresh, 0 unreachable), 3 fetches" in out
    crawl_ = SignalCrawl.objects.get()
    assert crawl_.status == "done" and crawl_.max_age_s == 7 * 86400
    call_command("fetch_signals", "--resume", str(crawl_.pk))
    assert len(web.fetched()) == 3


@pytest.mark.django_db
def test_a_crawl_batch_run_twice_stores_its_evidence_once(web):
    crawl(URLS[:1])
    crawl_ = SignalCrawl.objects.get()
    assert services.signal_crawl_batch_run(crawl_id=crawl_.pk, index=0, worker="other") == "already-done"
    assert SiteEvidence.objects.count() == 3


@pytest.mark.django_db
def test_a_batch_held_by_a_worker_that_stopped_heartbeating_is_taken_over(web):
    from core.models import Lease

    crawl_ = services.signal_crawl_create(collection="", input_path=_manifest(URLS[:1]), enqueue=False)
    assert services.signal_crawl_batch_claim(crawl_id=crawl_.pk, index=0, worker="dead")
    assert services.signal_crawl_batch_run(crawl_id=crawl_.pk, index=0, worker="alive") == "busy"
    Lease.objects.filter(job=services.job_key(crawl_.pk)).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert services.signal_crawl_batch_run(crawl_id=crawl_.pk, index=0, worker="alive") == "done"
    crawl_.refresh_from_db()
    assert crawl_.status == "done" and SiteEvidence.objects.count() == 3
    assert Lease.objects.get(job=services.job_key(crawl_.pk)).holder == "alive"
