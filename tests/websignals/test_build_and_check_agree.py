"""Sites that publish each kind of signal: a manifest build removes exactly the rows those signals cover, each
with its reason, and POST /api/check/ answers the same for every row."""

import json
from datetime import timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from django.utils import timezone

from tests.core.conftest import serve
from tests.core.factories import UserFactory
from tests.core.sites import Page
from tests.optout.conftest import client_for
from tests.training_filter.conftest import write_manifest
from websignals import services

SITES = {
    "robots.example.test": {"/robots.txt": "User-agent: CCBot\nDisallow: /private/\n"},
    "ai.example.test": {"/ai.txt": "User-Agent: *\nDisallow: *.png\n"},
    "tdm.example.test": {"/.well-known/tdmrep.json": json.dumps([{"location": "/reserved/*", "tdm-reservation": 1}])},
    "quiet.example.test": {"/robots.txt": "User-agent: *\nDisallow: /admin/\n"},
}  # fmt: skip
ROWS = [
    ("r1", "http://robots.example.test/private/a.jpg", ("robots-txt", "robots.txt CCBot Disallow: /private/")),
    ("r2", "http://robots.example.test/public/a.jpg", None),
    ("a1", "http://ai.example.test/x/a.png", ("ai-txt", "ai.txt Disallow: *.png for User-Agent *")),
    ("a2", "http://ai.example.test/x/a.jpg", None),
    ("t1", "http://tdm.example.test/reserved/a.jpg", ("tdmrep", "tdmrep.json location /reserved/* tdm-reservation 1")),
    ("t2", "http://tdm.example.test/open/a.jpg", None),
    ("h1", "http://quiet.example.test/noai.jpg", ("x-robots-tag", "X-Robots-Tag: noai")),
    ("h2", "http://quiet.example.test/tdm.jpg", ("tdmrep", "tdm-reservation header: 1")),
    ("h3", "http://quiet.example.test/admin/a.jpg", None),  # a `*` group is not an AI opt-out
    ("n1", "http://nowhere.example.test/a.jpg", None),  # does not resolve: unreachable, not a denial
    # judged by the host and path a browser fetches (WHATWG): `\\` ends the host, `%2e%2e` is a dot segment
    ("x1", "http://ai.example.test\\@evil.example.test/x/a.png", ("ai-txt", "ai.txt Disallow: *.png for User-Agent *")),
    ("x2", "http://tdm.example.test/open/%2e%2e/reserved/a.jpg", ("tdmrep", "tdmrep.json location /reserved/* tdm-reservation 1")),
]  # fmt: skip


@pytest.fixture
def published(sites, tmp_path, settings):
    serve(sites, *SITES)
    for host, pages in SITES.items():
        for path, body in pages.items():
            sites.add(host, path, body)
    sites.add("quiet.example.test", "/noai.jpg", Page(b"j", headers={"X-Robots-Tag": "noai"}))
    sites.add("quiet.example.test", "/tdm.jpg", Page(b"j", headers={"tdm-reservation": "1"}))
    settings.MANIFEST_DIR = tmp_path / "manifests"
    return write_manifest(tmp_path / "in" / "manifest.parquet", [{"key": k, "url": u} for k, u, _ in ROWS])


def _build(manifest: Path, as_of):
    from training_filter import services as builds
    from training_filter.tasks import manifest_build_run

    build = builds.manifest_build_create(input_path=str(manifest), as_of=as_of, enqueue=False)
    manifest_build_run.apply(args=[build.pk])
    build.refresh_from_db()
    assert build.status == "published", build.error
    return pq.read_table(Path(build.output_path) / "removals.parquet").to_pylist()


@pytest.mark.django_db
def test_build_removes_exactly_the_rows_the_sites_refuse_and_check_agrees(published):
    crawl = services.signal_crawl_create(input_path=str(published), headers=True, enqueue=False)
    services.signal_crawl_batch_run(crawl_id=crawl.pk, index=0, worker="test")
    removals = {r["key"]: r for r in _build(published, timezone.now())}
    expected = {key: why for key, _, why in ROWS if why}
    assert {k: (r["rule"], r["detail"]) for k, r in removals.items()} == expected
    assert {r["reason"] for r in removals.values()} == {"signal"}

    response = client_for(UserFactory()).post(
        "/api/check/", {"items": [{"url": url, "key": key} for key, url, _ in ROWS]}, format="json"
    )
    assert response.status_code == 200
    answers = {a["key"]: a for a in response.json()["results"]}
    for key, _, why in ROWS:
        answer = answers[key]
        assert answer["allowed"] is (why is None), key
        if why:
            assert (answer["match"], answer["rule"], answer["reason"]) == ("site_signal", *why)
            assert answer["evidence_at"] and answer["evidence_url"].startswith("http://")


@pytest.mark.django_db
def test_a_build_cut_off_before_the_crawl_ignores_its_evidence(published):
    before = timezone.now() - timedelta(seconds=1)
    crawl = services.signal_crawl_create(input_path=str(published), headers=True, enqueue=False)
    services.signal_crawl_batch_run(crawl_id=crawl.pk, index=0, worker="test")
    assert _build(published, before) == []
