"""What a site operator sees: GET /api/signals/?host= and the /signals/ page; a crawl's state through the API."""

import pytest
from django.test import Client

from tests.core.conftest import serve
from tests.core.factories import UserFactory
from tests.core.sites import Page
from tests.optout.conftest import client_for
from tests.websignals.test_crawl import crawl
from websignals import services
from websignals.models import SignalCrawl

pytestmark = pytest.mark.django_db


@pytest.fixture
def fetched(sites):
    serve(sites, "art.example.test")
    sites.add("art.example.test", "/robots.txt", "User-agent: GPTBot\nDisallow: /\n")
    sites.add("art.example.test", "/ai.txt", Page(b"down", 503))
    crawl(["http://art.example.test/a.png"])
    return sites


def test_anyone_can_read_what_was_fetched_about_a_site(fetched):
    response = Client().get("/api/signals/", {"host": "Art.Example.test"})
    assert response.status_code == 200
    data = response.json()
    assert data["host"] == "art.example.test"
    in_force = {row["document"]: row for row in data["in_force"]}
    assert set(in_force) == {"robots_txt"}
    assert in_force["robots_txt"]["rule"] == "robots.txt GPTBot Disallow: /"
    assert in_force["robots_txt"]["allowed"] is False and len(in_force["robots_txt"]["body_sha256"]) == 64
    latest = {row["document"]: row for row in data["latest"]}
    assert (latest["ai_txt"]["outcome"], latest["ai_txt"]["http_status"]) == ("error", 503)
    assert (latest["tdmrep"]["outcome"], latest["tdmrep"]["http_status"]) == ("absent", 404)
    assert len(data["history"]) == 3


def test_a_host_is_required_and_a_url_is_not_a_host(db):
    assert Client().get("/api/signals/").status_code == 400
    response = Client().get("/api/signals/", {"host": "http://x.test/a"})
    assert response.status_code == 400 and "host name" in response.json()["message"]


def test_the_page_shows_the_evidence_and_the_decision(fetched):
    page = Client().get("/signals/", {"host": "art.example.test"}).content.decode()
    assert "robots.txt GPTBot Disallow: /" in page and "server error" in page and "Provenant/" in page


def test_crawl_progress_is_visible_to_accounts(fetched):
    crawl_ = SignalCrawl.objects.get()
    response = client_for(UserFactory()).get(f"/api/signals/crawls/{crawl_.pk}/")
    assert response.status_code == 200 and response.json()["status"] == "done"
    assert response.json()["hosts_done"] == 1 and response.json()["fetches"] == 3
    assert Client().get(f"/api/signals/crawls/{crawl_.pk}/").status_code in (401, 403)


def test_an_async_crawl_runs_one_task_per_batch_after_commit(
    sites, settings, django_capture_on_commit_callbacks
):
    from tests.provenance.factories import AssetFactory

    serve(sites, "a.example.test", "b.example.test")
    settings.WEBSIGNALS_BATCH_HOSTS = 1
    first = AssetFactory(url="http://a.example.test/1.png")
    AssetFactory(url="https://b.example.test/2.png", collection=first.collection)
    settings.FETCH_PORT_MAP = {"http": sites.port, "https": sites.port}
    with django_capture_on_commit_callbacks(execute=True):
        crawl_ = services.signal_crawl_create(collection=first.collection.name)
    crawl_.refresh_from_db()
    assert (crawl_.status, crawl_.batches_total, crawl_.batches_done) == ("done", 2, 2)
    # b is served over https only: the plain-HTTP test server cannot answer TLS, so it is unreachable
    assert crawl_.hosts_unreachable == 1 and {r.host for r in sites.fetched()} == {"a.example.test"}


def test_schema_documents_the_signals_endpoints():
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    assert "/api/signals/" in schema["paths"] and "/api/signals/crawls/{crawl_id}/" in schema["paths"]
    check = schema["components"]["schemas"]["CheckResult"]["properties"]
    assert {"rule", "evidence_url", "evidence_at"} <= set(check)
    assert "site_signal" in str(schema["components"]["schemas"])


def test_search_results_flag_a_work_whose_site_opts_out(fetched):
    from embeddings.search.hits import Hit
    from embeddings.selectors import hit_rows
    from tests.provenance.factories import AssetFactory

    refused = AssetFactory(url="http://art.example.test/a.png")
    elsewhere = AssetFactory(url="http://elsewhere.example.test/b.png")
    rows = hit_rows([Hit(refused.pk, 1.0, "caption", "title"), Hit(elsewhere.pk, 0.5, "caption", "title")])
    assert [r["site_opt_out"] for r in rows] == ["robots.txt GPTBot Disallow: /", ""]
